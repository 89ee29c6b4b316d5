"""Attack objects are built through their constructors, never changed afterwards: the constructors' checks hold."""

from __future__ import annotations

import torch

from metricattack.attacks.step_rule import StepRule
from metricattack.attacks.universal import UniversalPerturbation
from metricattack.experiment.auto import AutoEnsemble
from metricattack.experiment.sanity import ZeroBallSetting
from metricattack.experiment.setting import AttackSetting, NamedModel
from campaigns import attack, make_campaign


def seal(monkeypatch, cls: type) -> None:
    """Instances of ``cls`` (and its subclasses) refuse every attribute write once their constructor has returned."""
    constructor = cls.__init__

    def sealed_constructor(self, *args, **kwargs):
        constructor(self, *args, **kwargs)
        object.__setattr__(self, "_sealed", True)

    def guarded(self, name, value):
        if getattr(self, "_sealed", False):
            raise AssertionError(f"{type(self).__name__}.{name} set after its constructor checked it")
        object.__setattr__(self, name, value)

    monkeypatch.setattr(cls, "__init__", sealed_constructor)
    monkeypatch.setattr(cls, "__setattr__", guarded)


def test_the_zero_ball_rule_is_built_not_shrunk_after_construction(monkeypatch):
    seal(monkeypatch, StepRule)
    rule = ZeroBallSetting("pgd", 0.0, "gallery", steps=2, restarts=1).step_rule()
    images = torch.rand(2, 3, 8, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(rule.run(images, lambda x: x.flatten(1).sum(dim=1), torch.Generator().manual_seed(1)), images)


def test_the_universal_learner_gets_the_campaigns_batch_size_from_its_constructor(tiny_data, tiny_model, monkeypatch):
    seal(monkeypatch, UniversalPerturbation)
    built = []
    constructor = UniversalPerturbation.__init__

    def recorded(self, *args, **kwargs):
        constructor(self, *args, **kwargs)
        built.append(self)

    monkeypatch.setattr(UniversalPerturbation, "__init__", recorded)
    named = NamedModel("tiny", tiny_model)
    campaign = make_campaign(tiny_data, [named], [named], batch_size=7, quantize_images=False, progress=False)
    attack(campaign, AttackSetting("uap", 4, "query", steps=1))
    assert built and built[-1].batch_size == 7


def test_auto_builds_its_early_stopping_apgd_through_the_constructor(tiny_model, monkeypatch):
    seal(monkeypatch, StepRule)
    named = NamedModel("tiny", tiny_model)
    ensemble = AutoEnsemble(AttackSetting("auto", 8.0), [named], 8 / 255, 3, torch.arange(4), None, None)
    assert all(stage.step_rule.early_stop and stage.step_rule.keep_best for stage in ensemble.stages.values())
