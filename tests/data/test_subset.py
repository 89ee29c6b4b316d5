"""--subset: a seeded subset of query identities, the same for every seed-equal call."""

from __future__ import annotations

import pytest

from metricattack.data.subset import split_subset_name, subset_query_identities
from metricattack.errors import InputError


def query_ids(data) -> set[int]:
    return {s.pid for s in data.query}


def test_subset_keeps_every_query_of_n_identities_and_the_whole_gallery(tiny_data):
    subset = subset_query_identities(tiny_data, 3, seed=0)
    assert len(query_ids(subset)) == 3 and query_ids(subset) <= query_ids(tiny_data)
    assert subset.query == [s for s in tiny_data.query if s.pid in query_ids(subset)]  # order kept, none dropped
    assert subset.gallery == tiny_data.gallery and subset.train == tiny_data.train
    assert "subset: 3 query identities, seed 0" in subset.name


def test_subset_is_reproducible_by_seed(tiny_data):
    draws = {seed: query_ids(subset_query_identities(tiny_data, 3, seed)) for seed in range(6)}
    assert draws[0] == query_ids(subset_query_identities(tiny_data, 3, 0))
    assert len({frozenset(ids) for ids in draws.values()}) > 1  # other seeds, other identities


@pytest.mark.parametrize("count", [0, -1, 99])
def test_subset_rejects_a_count_outside_the_identities(tiny_data, count):
    with pytest.raises(InputError, match="--subset must be between 1 and the"):
        subset_query_identities(tiny_data, count, 0)


def test_the_name_of_a_subset_gives_back_the_data_set_and_the_count(tiny_data):
    assert split_subset_name(subset_query_identities(tiny_data, 3, seed=7).name) == (tiny_data.name, 3)
    assert split_subset_name("market1501") == ("market1501", None)
    assert split_subset_name("my (subset: lots) data") == ("my (subset: lots) data", None)
