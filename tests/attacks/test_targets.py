"""Target identities: a --target-pid that is not among the reference images names the ones that are."""

from __future__ import annotations

import pytest
import torch

from metricattack.errors import InputError
from metricattack.experiment.targets import assign_targets, describe_identities


def test_a_missing_target_names_the_identities_of_the_default_data():
    gallery_pids = torch.tensor([-1, 0, *range(301, 501), 301])  # junk, distractors, the 200 test identities
    with pytest.raises(InputError, match=r"^--target-pid 4242: no such identity among the reference images "
                                         r"\(they hold 200 identities: 301-500\)$"):  # fmt: skip
        assign_targets(torch.tensor([302, 303]), gallery_pids, torch.Generator(), fixed=4242)
    assert assign_targets(torch.tensor([302, 303]), gallery_pids, torch.Generator(), fixed=350) == {302: 350, 303: 350}


def test_identities_are_described_by_their_runs():
    assert describe_identities([1, 2, 3, 7, 9, 10, 20, 30]) == "8 identities: 1-3, 7, 9-10, 20, ..."
    assert describe_identities([5]) == "1 identity: 5"
    assert describe_identities([]) == "no identity"
