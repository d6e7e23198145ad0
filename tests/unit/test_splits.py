"""Splits: determinism, disjointness, CV partition, LOEO membership, persistence."""

from __future__ import annotations

import pandas as pd
import pytest

from ecdflow.config import load_settings
from ecdflow.errors import EcdflowError
from ecdflow.splits import (
    get_splits,
    load_splits,
    make_splits,
    save_splits,
    split_names,
    validation_ids,
)


@pytest.fixture
def index_df() -> pd.DataFrame:
    els = [["Na", "Cl"], ["K", "Br"], ["Cs", "Cl"], ["Li", "F"], ["Cs", "Br"], ["Mg", "O"]]
    rows = [{"material_id": f"m-{i:03d}", "elements": els[i % len(els)]} for i in range(40)]
    return pd.DataFrame(rows).sample(frac=1.0, random_state=3)  # row order must not matter


def test_same_seed_same_folds_regardless_of_row_order(index_df):
    a = make_splits(index_df, 5, ["Cs"], seed=7)
    b = make_splits(index_df.sort_values("material_id"), 5, ["Cs"], seed=7)
    c = make_splits(index_df, 5, ["Cs"], seed=8)
    assert a == b
    assert a["cv-0"]["test"] != c["cv-0"]["test"]


def test_cv_partitions_and_is_disjoint(index_df):
    s = make_splits(index_df, 5, [], seed=1)
    assert sorted(s) == [f"cv-{k}" for k in range(5)]
    all_ids = set(index_df["material_id"])
    tests = [set(s[f"cv-{k}"]["test"]) for k in range(5)]
    assert set().union(*tests) == all_ids and sum(map(len, tests)) == len(all_ids)
    for k in range(5):
        tr, te = set(s[f"cv-{k}"]["train"]), set(s[f"cv-{k}"]["test"])
        assert not tr & te and tr | te == all_ids


def test_loeo_test_is_every_material_with_the_element(index_df):
    s = make_splits(index_df, 5, ["Cs", "Cl", "Xe"], seed=1)
    assert "loeo-Xe" not in s
    for el in ("Cs", "Cl"):
        want = {m for m, e in zip(index_df.material_id, index_df.elements, strict=True)
                if el in e}
        assert set(s[f"loeo-{el}"]["test"]) == want
        assert not set(s[f"loeo-{el}"]["train"]) & want
        assert len(s[f"loeo-{el}"]["train"]) + len(want) == len(index_df)


def test_save_load_roundtrip_and_cache_by_data_hash(index_df, tmp_path):
    s = make_splits(index_df, 5, ["Cs"], seed=1)
    assert load_splits(save_splits(s, tmp_path / "s.json")) == s
    settings = load_settings(overrides={"paths": {"work_dir": str(tmp_path)}})
    first = get_splits(settings, index_df, "abc123")
    again = get_splits(settings, index_df.iloc[:30], "abc123")  # cached: same data version
    assert again == first
    assert (tmp_path / "splits").is_dir()


def test_split_names_honour_folds_and_present_elements(index_df):
    settings = load_settings(profile="quick")
    assert split_names(settings, index_df) == ["cv-0", "cv-1", "loeo-Cs"]
    settings = load_settings(overrides={"splits": {"folds": None, "loeo_elements": ["K", "Xe"]}})
    assert split_names(settings, index_df) == [f"cv-{k}" for k in range(5)] + ["loeo-K"]
    settings = load_settings(overrides={"splits": {"folds": [7]}})
    with pytest.raises(EcdflowError):
        split_names(settings, index_df)


def test_validation_ids_seeded_subset():
    ids = [f"m{i}" for i in range(50)]
    a = validation_ids(ids, 0.1, 3)
    assert a == validation_ids(list(reversed(ids)), 0.1, 3)
    assert len(a) == 5 and set(a) <= set(ids)
    assert a != validation_ids(ids, 0.1, 4)
