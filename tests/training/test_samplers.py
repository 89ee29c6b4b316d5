"""The P x K identity sampler and the train label mapping."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from metricattack.errors import InputError
from metricattack.training.samplers import RandomIdentitySampler, relabel

PIDS = [pid for pid in range(11) for _ in range(pid % 5 + 1)]  # 11 identities with 1 to 5 images


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("batch_size,num_instances", [(8, 2), (12, 4), (3, 1)])
def test_every_batch_is_p_identities_by_k_images_and_every_identity_appears(seed, batch_size, num_instances):
    sampler = RandomIdentitySampler(PIDS, batch_size, num_instances, seed=seed)
    batches = sampler.batches()
    assert len(sampler) == batch_size * len(batches) == len(list(sampler))
    assert list(sampler) == [i for batch in batches for i in batch]
    for batch in batches:
        counts = Counter(PIDS[i] for i in batch)
        assert len(batch) == batch_size and len(counts) == batch_size // num_instances
        assert set(counts.values()) == {num_instances}
        for pid in counts:  # an identity with at least K images gives K different images
            if PIDS.count(pid) >= num_instances:
                assert len({i for i in batch if PIDS[i] == pid}) == num_instances
    assert {PIDS[i] for batch in batches for i in batch} == set(PIDS)


def test_identities_left_over_get_a_last_batch_topped_up_with_others():
    batches = RandomIdentitySampler(range(5), batch_size=2, num_instances=1, seed=0).batches()
    assert len(batches) == 3  # torchreid would stop after 2 and never show one identity
    assert {i for batch in batches for i in batch} == set(range(5))


def test_an_identity_with_fewer_than_k_images_is_drawn_with_replacement():
    batches = RandomIdentitySampler([0, 1, 1, 1, 1, 2, 2, 2, 2], 8, 4, seed=0).batches()
    with_zero = [batch for batch in batches if 0 in batch]
    assert with_zero and all(batch.count(0) == 4 for batch in with_zero)


def test_same_seed_same_order_and_set_epoch_changes_it():
    first = list(RandomIdentitySampler(PIDS, 8, 2, seed=1))
    assert first == list(RandomIdentitySampler(PIDS, 8, 2, seed=1))
    assert first != list(RandomIdentitySampler(PIDS, 8, 2, seed=2))
    sampler = RandomIdentitySampler(PIDS, 8, 2, seed=1)
    sampler.set_epoch(1)
    second = list(sampler)
    assert second != first
    sampler.set_epoch(0)
    assert list(sampler) == first
    assert torch.utils.data.DataLoader(range(len(PIDS)), batch_size=8, sampler=sampler).__len__() == len(first) // 8


def test_bad_sizes_are_input_errors():
    with pytest.raises(InputError, match="--batch-size 7 must be a multiple of --num-instances 2"):
        RandomIdentitySampler(PIDS, 7, 2)
    with pytest.raises(InputError, match="--batch-size 2 must be a multiple of --num-instances 4"):
        RandomIdentitySampler(PIDS, 2, 4)
    with pytest.raises(InputError, match="--num-instances must be at least 1"):
        RandomIdentitySampler(PIDS, 8, 0)
    with pytest.raises(InputError, match="needs 12 identities per batch, but the training split has only 11"):
        RandomIdentitySampler(PIDS, 24, 2)


def test_relabel_maps_sorted_pids_to_0_to_c_minus_1():
    assert relabel([7, 3, 7, 9]) == ([1, 0, 1, 2], {3: 0, 7: 1, 9: 2})
    assert relabel([]) == ([], {})
