"""Universal perturbations: a known optimum, eps, image-agnosticism, seeding, resuming, the report's PNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from metricattack.experiment.setting import AttackSetting, NamedModel
from metricattack.attacks.universal import UniversalPerturbation, apply_perturbation
from metricattack.errors import InputError
from metricattack.evaluation.pipeline import Pipeline
from metricattack.experiment.examples import write_examples
from metricattack.experiment.registry import check_setting
from campaigns import attack, evaluate_outcome, make_campaign


@pytest.fixture(scope="module")
def exact_campaign(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    return make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=0,
                    quantize_images=False, progress=False)  # fmt: skip


def test_a_linear_objective_reaches_the_corner_of_the_ball():
    # objective sum(w * x): the gradient is w everywhere, so sign ascent ends at eps * sign(w) (where x + delta is not clipped).
    weights = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(0))
    images = torch.full((10, 3, 4, 2), 0.5)
    learner = UniversalPerturbation(eps=3 / 255, step_size=1 / 255, epochs=2, batch_size=4)
    delta = learner.fit(images, lambda x, _: (x * weights).flatten(1).sum(dim=1))
    torch.testing.assert_close(delta, 3 / 255 * weights.sign())


def test_l2_perturbation_stays_in_the_l2_ball():
    images = torch.rand(6, 3, 4, 2, generator=torch.Generator().manual_seed(1))
    learner = UniversalPerturbation(eps=0.2, step_size=0.5, epochs=3, norm="l2", batch_size=2)
    delta = learner.fit(images, lambda x, _: x.flatten(1).pow(2).sum(dim=1))
    assert delta.norm() <= 0.2 + 1e-6 and delta.norm() > 0.19


def test_resuming_after_an_epoch_equals_an_uninterrupted_fit():
    images = torch.rand(9, 3, 4, 2, generator=torch.Generator().manual_seed(2))
    weights = torch.randn(9, 3, 4, 2, generator=torch.Generator().manual_seed(3))

    def objective(x, indices):  # depends on which images are in the batch, so the batch order matters
        return (x * weights[indices]).flatten(1).sum(dim=1).pow(2)

    saved = {}
    whole = UniversalPerturbation(4 / 255, epochs=3, batch_size=4).fit(images, objective, seed=5,
                                                                      on_epoch=lambda e, d: saved.setdefault(e, d.clone()))
    resumed = UniversalPerturbation(4 / 255, epochs=3, batch_size=4).fit(images, objective, seed=5, delta=saved[1], start_epoch=1)
    torch.testing.assert_close(whole, resumed)
    other_seed = UniversalPerturbation(4 / 255, epochs=3, batch_size=4).fit(images, objective, seed=6)
    assert not torch.equal(whole, other_seed)


def test_campaign_uap_is_one_perturbation_within_eps_that_lowers_map(exact_campaign):
    eps = 6.0
    outcome = attack(exact_campaign, AttackSetting("uap", eps, "gallery", steps=2))
    delta = outcome.perturbation
    assert delta.shape == exact_campaign.gallery.images.shape[1:]
    assert delta.abs().max() <= eps / 255 + 1e-7 and delta.abs().max() > 0
    assert len(outcome.query_indices) == 0 and len(outcome.gallery_indices) > 0
    originals = exact_campaign.gallery.images[outcome.gallery_indices].float() / 255
    change = outcome.gallery_images - originals
    assert change.abs().max() <= eps / 255 + 1e-6
    unclipped = ((originals + delta) >= 0) & ((originals + delta) <= 1)
    torch.testing.assert_close(change[unclipped], delta.expand_as(change)[unclipped])  # the same delta for every image
    attacked, _ = evaluate_outcome(exact_campaign, outcome, exact_campaign.targets[0])
    assert attacked["mAP"] < exact_campaign.clean_metrics(exact_campaign.targets[0]).mAP


def test_campaign_uap_is_seeded_cached_and_resumed(tiny_data, tiny_model, exact_campaign, tmp_path, monkeypatch):
    setting = AttackSetting("uap", 4, "query", steps=2)
    first = attack(exact_campaign, setting)
    cached = attack(exact_campaign, setting)  # read back from the cache
    torch.testing.assert_close(first.perturbation, cached.perturbation)
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path / "empty-cache"))
    named = NamedModel("tiny", tiny_model)
    fresh = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=0, quantize_images=False, progress=False)
    torch.testing.assert_close(attack(fresh, setting).perturbation, first.perturbation)  # recomputed: the same
    other = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, seed=1, quantize_images=False, progress=False)
    assert not torch.equal(attack(other, setting).perturbation, first.perturbation)


def test_the_perturbation_png_reloads_exactly(exact_campaign, tmp_path):
    outcome = attack(exact_campaign, AttackSetting("uap", 5, "gallery", steps=1))
    evaluate_outcome(exact_campaign, outcome, exact_campaign.targets[0])
    example = write_examples(exact_campaign, outcome, tmp_path, count=1)
    with Image.open(tmp_path / example["perturbation"]["raw"]) as image:
        pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32)).permute(2, 0, 1)
    torch.testing.assert_close((pixels - 128) / 255, outcome.perturbation)
    assert (tmp_path / example["perturbation"]["image"]).is_file()


@pytest.mark.parametrize(
    "setting,message",
    [
        (AttackSetting("uap", 4, goal="targeted"), "non-targeted only"),
        (AttackSetting("uap", 4, restarts=2), "does not take --restarts"),
        (AttackSetting("uap", 4, steps=0), "UAP epochs"),
        (AttackSetting("uap", 300), "--eps must be in"),
    ],
)
def test_bad_uap_settings(setting, message):
    with pytest.raises(InputError, match=message):
        check_setting(setting)


def test_a_perturbation_of_another_size_is_refused():
    with pytest.raises(InputError, match="does not fit images"):
        apply_perturbation(torch.zeros(1, 3, 8, 4), torch.zeros(3, 4, 2))


def test_a_flip_averaged_and_a_mixed_precision_deployment_do_not_share_a_cached_perturbation(tiny_data, tiny_model, tmp_path,
                                                                                            monkeypatch):  # fmt: skip
    # Both wrap the same weights, so their state_dicts are equal: the cache key must tell the deployments apart.
    monkeypatch.setenv("METRICATTACK_CACHE", str(tmp_path))
    named = NamedModel("tiny", tiny_model)
    setting = AttackSetting("uap", 4, "query", steps=1)
    flipped = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, quantize_images=False, progress=False,
                       pipelines=[Pipeline(flip=True)])  # fmt: skip
    mixed = make_campaign(tiny_data, [named], [named], torch.device("cpu"), batch_size=16, quantize_images=False, progress=False,
                     amp="bf16")  # fmt: skip
    attack(flipped, setting)
    attack(mixed, setting)
    assert len(list((tmp_path / "uap").glob("*.safetensors"))) == 2
