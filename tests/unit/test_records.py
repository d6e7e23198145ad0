"""TFRecord schema 1: encode, write, manifest, tf.data reader and index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecdflow import records as R
from ecdflow import records_reader as RD

GRID = 8


@pytest.fixture(scope="module")
def syn32(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("rec32")
    R.write_synthetic_records(str(d), n=10, grid=GRID, seed=3, dtype="float32", num_shards=3)
    return d


def _by_id(ds) -> dict[str, dict]:
    out = {}
    for feats, y in ds:
        for i, mid in enumerate(feats["material_id"].numpy()):
            out[mid.decode()] = {k: v[i].numpy() for k, v in feats.items()} | {"y": y[i].numpy()}
    return out


def test_reader_is_byte_exact_for_float32(syn32: Path):
    items = {r["material_id"]: (r, e, m) for r, e, m in R.synthetic_materials(10, GRID, 3)}
    got = _by_id(RD.make_dataset(str(syn32), target="K_VRH", batch_size=4))
    assert set(got) == set(items)
    for mid, (row, ecd, mag) in items.items():
        g = got[mid]
        assert g["ecd"].shape == (GRID, GRID, GRID, 1) and g["ecd"].dtype == np.float32
        assert g["ecd"][..., 0].tobytes() == ecd.tobytes()
        assert g["magpie"].tobytes() == mag.tobytes()
        assert g["y"].shape == (1,) and g["y"][0] == np.float32(row["K_VRH"])


@pytest.mark.parametrize("compression", ["", "GZIP", "ZLIB"])
def test_float16_storage_roundtrips_with_each_codec(tmp_path: Path, compression: str):
    R.write_synthetic_records(str(tmp_path), n=5, grid=GRID, seed=1, dtype="float16",
                              compression=compression)
    man = R.read_manifest(str(tmp_path))
    assert man["count"] == 5 and man["compression"] == compression and man["dtype"] == "float16"
    items = {r["material_id"]: e for r, e, _ in R.synthetic_materials(5, GRID, 1)}
    got = _by_id(RD.make_dataset(str(tmp_path), target="G_VRH", batch_size=2))
    for mid, ecd in items.items():
        np.testing.assert_array_equal(got[mid]["ecd"][..., 0],
                                      ecd.astype(np.float16).astype(np.float32))


def test_ids_filter_log_target_and_inputs(syn32: Path):
    rows = {r["material_id"]: r for r, _, _ in R.synthetic_materials(10, GRID, 3)}
    keep = ["syn-0002", "syn-0007", "not-there"]
    ds = RD.make_dataset(str(syn32), target="G_VRH", inputs=("magpie",), ids=keep,
                        batch_size=8, log_target=True)
    feats, y = next(iter(ds))
    assert set(feats) == {"material_id", "magpie"}
    ids = [m.decode() for m in feats["material_id"].numpy()]
    assert sorted(ids) == ["syn-0002", "syn-0007"]
    for mid, val in zip(ids, y.numpy()[:, 0], strict=True):
        assert val == pytest.approx(np.log10(rows[mid]["G_VRH"]), rel=1e-5)
    assert list(RD.make_dataset(str(syn32), target="K_VRH", ids=[], batch_size=4)) == []


def test_nan_target_is_skipped_and_unbatched_features_only(tmp_path: Path):
    items = R.synthetic_materials(4, GRID, 0)
    items[1][0]["G_VRH"] = None
    ex = [R.encode_example(r, e, m, "float32") for r, e, m in items]
    shards = R.write_records(ex, str(tmp_path), 2, "")
    R.write_manifest(str(tmp_path), R.build_manifest(str(tmp_path), shards, count=4, grid=GRID,
                                                      dtype="float32", compression=""))
    got = [f["material_id"].numpy().decode()
           for f, _ in RD.make_dataset(str(tmp_path), target="G_VRH", batch_size=0)]
    assert sorted(got) == ["syn-0000", "syn-0002", "syn-0003"]
    feats = list(RD.make_dataset(str(tmp_path), target=None, batch_size=0, cache=False))
    assert len(feats) == 4 and feats[0]["ecd"].shape == (GRID, GRID, GRID, 1)
    idx = RD.read_index(str(tmp_path))
    assert np.isnan(idx.set_index("material_id").loc["syn-0001", "G_VRH"])


def test_shuffle_is_seeded_and_repeat_repeats(syn32: Path):
    def order(seed):
        ds = RD.make_dataset(str(syn32), target="K_VRH", batch_size=0, shuffle_seed=seed)
        return [f["material_id"].numpy() for f, _ in ds]
    assert order(5) == order(5)
    assert sorted(order(5)) == sorted(order(None))
    rep = RD.make_dataset(str(syn32), target="K_VRH", batch_size=4, repeat=True)
    assert sum(int(f["material_id"].shape[0]) for f, _ in rep.take(6)) == 24  # > 10 examples


def test_index_and_manifest(syn32: Path):
    man = R.read_manifest(str(syn32))
    assert man["schema_version"] == R.SCHEMA_VERSION and man["count"] == 10 and man["grid"] == GRID
    assert len(man["shards"]) == 3
    paths = R.list_shards(str(syn32))
    assert man["data_hash"] == R.data_hash(paths, "") and man["data_hash"].startswith("sha256:")
    assert R.count_records(paths, "") == 10
    idx = RD.read_index(str(syn32))
    assert list(idx.columns) == ["material_id", "formula", "elements", "K_VRH", "G_VRH"]
    rows = {r["material_id"]: r for r, _, _ in R.synthetic_materials(10, GRID, 3)}
    assert sorted(idx["material_id"]) == sorted(rows)
    r0 = idx.set_index("material_id").loc["syn-0004"]
    assert r0["elements"] == rows["syn-0004"]["elements"]
    assert r0["K_VRH"] == pytest.approx(rows["syn-0004"]["K_VRH"], rel=1e-6)


def test_data_hash_changes_with_content(tmp_path: Path):
    a, b = tmp_path / "a", tmp_path / "b"
    R.write_synthetic_records(str(a), 3, GRID, seed=0)
    R.write_synthetic_records(str(b), 3, GRID, seed=1)
    assert R.read_manifest(str(a))["data_hash"] != R.read_manifest(str(b))["data_hash"]


def test_provenance_and_bad_inputs():
    import tensorflow as tf

    row, ecd, mag = R.synthetic_materials(1, GRID, 0)[0]
    row["potential"] = "7net-l3i5"
    ex = tf.train.Example.FromString(R.encode_example(row, ecd, mag, "float16"))
    f = ex.features.feature
    prov = json.loads(f["provenance"].bytes_list.value[0])
    assert prov["potential"] == "7net-l3i5" and prov["schema_version"] == 1
    assert list(f["ecd_shape"].int64_list.value) == [GRID] * 3
    assert len(f["ecd"].bytes_list.value[0]) == 2 * GRID**3
    with pytest.raises(ValueError, match="132"):
        R.encode_example(row, ecd, mag[:10], "float32")
    with pytest.raises(ValueError, match="dtype"):
        R.encode_example(row, ecd, mag, "int8")


def test_missing_manifest_is_input_error(tmp_path: Path):
    from ecdflow.errors import InputError

    with pytest.raises(InputError, match="manifest"):
        R.read_manifest(str(tmp_path))


def test_chgcar_species_order_follows_the_structure_not_the_sorted_elements():
    from ecdflow.preprocess import species_order

    row = {"elements": ["Cl", "Na"], "numbers": [11, 11, 17, 17]}
    assert species_order(row) == ["Na", "Cl"]
    assert species_order({"elements": ["Cl", "Na"]}) is None
