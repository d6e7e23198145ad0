"""Beam preprocessing end to end: count-exact output, dead letters, byte-exact read-back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ecdflow import records as R
from ecdflow import records_reader as RD
from ecdflow.config import load_settings
from ecdflow.errors import InputError
from ecdflow.preprocess import run_preprocess

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
GRID = 10


def tiny_rows() -> list[dict]:
    """Five good rows of the committed table: 2 elements, 2 rocksalts, 1 fluorite."""
    rows = [json.loads(ln) for ln in (REPO / "data/fcc/materials.jsonl").read_text().splitlines()]
    pick = {"fcc-element": 2, "rocksalt-ionic": 2, "fluorite": 1}
    out = []
    for r in rows:
        if pick.get(r["family"], 0) > 0:
            pick[r["family"]] -= 1
            out.append(r)
    return out


def _settings(tmp: Path, **records):
    return load_settings(overrides={
        "density": {"grid": GRID}, "paths": {"work_dir": str(tmp / "work")},
        "records": {"num_shards": 2, "dtype": "float32", "compression": "", **records}})


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> tuple[Path, list[dict]]:
    good = tiny_rows()
    bad = [dict(good[0], material_id="bad-nan-label", K_VRH=float("nan"), G_VRH=None),
           dict(good[1], material_id="bad-structure", positions=[[0.0, 0.0]])]
    path = tmp_path_factory.mktemp("tab") / "materials.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in good[:3] + bad + good[3:]))
    return path, good


def test_count_exact_with_quarantine_and_byte_exact_read(tmp_path: Path, table):
    from ecdflow.data.table import structure_of
    from ecdflow.density import procrystal_density
    from ecdflow.features import magpie_features

    path, good = table
    out = tmp_path / "rec"
    man = run_preprocess(_settings(tmp_path), materials_path=str(path), out_dir=str(out))
    assert man["counts"] == {"read": 7, "written": 5, "quarantined": 2, "quarantined_table": 2,
                             "quarantined_pipeline": 0}
    assert man["count"] == 5 and len(man["shards"]) == 2
    assert R.count_records(R.list_shards(str(out)), "") == 5
    assert man == R.read_manifest(str(out)) | {k: man[k] for k in ("seconds", "materials_per_s",
                                                                   "out_dir", "first_quarantined")}
    dead = [json.loads(ln) for ln in (out / "quarantine.jsonl").read_text().splitlines()]
    assert sorted(d["item_id"] for d in dead) == ["bad-nan-label", "bad-structure"]
    assert all(d["reason"] and "\n" not in d["reason"] for d in dead)
    got = {}
    for feats, y in RD.make_dataset(str(out), target="K_VRH", batch_size=0):
        got[feats["material_id"].numpy().decode()] = (feats["ecd"].numpy(),
                                                      feats["magpie"].numpy(), float(y[0]))
    assert set(got) == {r["material_id"] for r in good}
    mags = magpie_features([r["formula"] for r in good])
    for r, mag in zip(good, mags, strict=True):
        ecd, m, k = got[r["material_id"]]
        expect = procrystal_density(structure_of(r), grid=GRID, smearing_A=0.1)
        assert ecd[..., 0].tobytes() == expect.tobytes(), r["material_id"]
        assert m.tobytes() == np.asarray(mag, np.float32).tobytes()
        assert k == pytest.approx(r["K_VRH"], rel=1e-6)
    # a rerun gives the same data version and replaces the old shards
    man2 = run_preprocess(_settings(tmp_path, num_shards=3), materials_path=str(path),
                          out_dir=str(out))
    assert man2["data_hash"] == man["data_hash"] and len(R.list_shards(str(out))) == 3


def test_chgcar_route_quarantines_missing_file(tmp_path: Path, table):
    from ecdflow.chgcar import write_chgcar
    from ecdflow.data.table import structure_of
    from ecdflow.density import density_on_cell, procrystal_density

    path, good = table
    cdir = tmp_path / "chg"
    for i, r in enumerate(good[:4]):  # good[4] has no CHGCAR
        s = structure_of(r)
        rho = density_on_cell(s, (12, 12, 12))
        mid = r["material_id"]
        target = cdir / f"{mid}.CHGCAR" if i % 2 else cdir / mid / "CHGCAR"
        write_chgcar(target, s, rho)
    out = tmp_path / "rec"
    man = run_preprocess(_settings(tmp_path, dtype="float16", compression="GZIP"),
                         materials_path=str(path), chgcar_dir=str(cdir), out_dir=str(out))
    assert man["counts"]["written"] == 4 and man["counts"]["quarantined_pipeline"] == 1
    assert man["ecd_source"] == "chgcar" and man["shards"][0].endswith(".tfrecord.gz")
    dead = [json.loads(ln) for ln in (out / "quarantine.jsonl").read_text().splitlines()]
    miss = [d for d in dead if d["item_id"] == good[4]["material_id"]]
    assert len(miss) == 1 and "no CHGCAR" in miss[0]["reason"]
    feats = {f["material_id"].numpy().decode(): f["ecd"].numpy()[..., 0]
             for f in RD.make_dataset(str(out), batch_size=0, inputs=("ecd",))}
    r = good[0]
    pro = procrystal_density(structure_of(r), grid=GRID)
    corr = np.corrcoef(feats[r["material_id"]].ravel(), pro.ravel())[0, 1]
    assert corr > 0.95  # the resampled file shows the same crystal as the procrystal route


def test_multi_threading_is_refused_and_missing_table_is_input_error(tmp_path: Path, table):
    with pytest.raises(InputError, match="multi_threading"):
        run_preprocess(_settings(tmp_path), materials_path=str(table[0]),
                       out_dir=str(tmp_path / "r"), direct_running_mode="multi_threading")
    with pytest.raises(InputError, match="no such materials table"):
        run_preprocess(_settings(tmp_path), materials_path=str(tmp_path / "none.jsonl"),
                       out_dir=str(tmp_path / "r"))


def test_cli_prints_counts_and_writes_metrics(tmp_path: Path, table):
    from ecdflow.cli import cli
    from ecdflow.cli.common import run_main

    params = tmp_path / "params.yaml"
    params.write_text(f"density: {{grid: 8}}\npaths: {{work_dir: {tmp_path / 'w'}}}\n"
                      "records: {num_shards: 1}\nprofiles: {}\n")
    code = run_main(cli, ["--params", str(params), "preprocess", "--materials", str(table[0]),
                          "--out", str(tmp_path / "rec"), "--metrics", str(tmp_path / "m.json")])
    assert code == 1  # two rows of the table are quarantined; the other five are written
    assert json.loads((tmp_path / "m.json").read_text())["counts"]["written"] == 5
    assert run_main(cli, ["--params", str(params), "preprocess", "--materials",
                          str(tmp_path / "nope.jsonl")]) == 2
