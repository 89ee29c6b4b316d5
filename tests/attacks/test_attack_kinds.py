"""The ``--attack`` kinds: checked by the registry, and what each keeps in a setting's folder (``stores_chunks``)."""

from __future__ import annotations

import pytest

from metricattack.errors import InputError
from metricattack.experiment.registry import ATTACKS, check_setting
from metricattack.experiment.setting import AttackSetting, NamedModel
from campaigns import attack, make_campaign


@pytest.fixture(scope="module")
def campaign(tiny_data, tiny_model):
    named = NamedModel("tiny", tiny_model)
    return make_campaign(tiny_data, [named], [named], batch_size=16, quantize_images=False, progress=False)


@pytest.mark.parametrize("setting", [AttackSetting("ifgsm", 4, "gallery", steps=1), AttackSetting("auto", 4, "gallery", steps=1)])
def test_a_kind_that_stores_chunks_stores_them_in_the_settings_folder(campaign, setting, tmp_path):
    assert ATTACKS[setting.attack].stores_chunks
    attack(campaign, setting, folder=tmp_path / "setting")
    assert list((tmp_path / "setting").rglob("*.safetensors"))


@pytest.mark.parametrize("setting", [AttackSetting("uap", 4, "query", steps=1), AttackSetting("blackbox", 8, side="query", steps=3)])
def test_uap_and_blackbox_leave_the_settings_folder_alone_as_their_kind_states(campaign, setting, tmp_path):
    # The stated limitation: neither resumes inside a setting nor shares work under torchrun.
    assert not ATTACKS[setting.attack].stores_chunks
    attack(campaign, setting, folder=tmp_path / "setting")
    assert not (tmp_path / "setting").exists()


def test_a_setting_checks_its_own_fields_and_the_registry_the_attacks_options():
    setting = AttackSetting("uap", 4, restarts=2)
    setting.validate()  # restarts is a field every setting may hold; uap does not take it
    with pytest.raises(InputError, match="does not take --restarts"):
        check_setting(setting)
    with pytest.raises(InputError, match="--side: unknown side"):
        AttackSetting("ifgsm", 4, side="left").validate()
    with pytest.raises(InputError, match="--attack-loss margin is for the gradient step rules"):
        check_setting(AttackSetting("blackbox", 8, side="query", attack_loss="margin"))
