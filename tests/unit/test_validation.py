"""Great Expectations suites: a good batch passes, each crafted defect fails its expectation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecdflow import records as R
from ecdflow.config import load_settings
from ecdflow.errors import ValidationFailed
from ecdflow.validation.frames import records_frame
from ecdflow.validation.suites import (
    _context,
    materials_check_frame,
    materials_expectations,
    records_expectations,
    run_validation,
    validate_frame,
)

REPO = Path(__file__).resolve().parents[2]
GRID = 8


def small_rows(n: int) -> list[dict]:
    """``n`` rows with small cells (fcc elements, rocksalts): smooth procrystals even at 8^3."""
    lines = (REPO / "data/fcc/materials.jsonl").read_text().splitlines()
    rows = [json.loads(ln) for ln in lines]
    return [r for r in rows if r["family"] in ("fcc-element", "rocksalt-ionic")][:n]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    return small_rows(4)


@pytest.fixture(scope="module")
def settings():
    return load_settings(overrides={"validation": {"min_rows": 3}})


def _failed(result: dict) -> dict[tuple[str, str | None], list[str]]:
    return {(e["expectation"], e["column"]): e["failed_ids"]
            for e in result["expectations"] if not e["success"]}


def _ecd(row: dict) -> tuple[np.ndarray, dict]:
    from ecdflow.cube import conventional_cell
    from ecdflow.data.table import structure_of
    from ecdflow.density import procrystal_density

    s = structure_of(row)
    prov = {"ecd_source": "procrystal", "cube_edge_A": conventional_cell(s).lattice.a}
    return procrystal_density(s, grid=GRID), prov


def _write(out: Path, items: list[tuple[dict, np.ndarray, np.ndarray]]) -> None:
    shards = R.write_records([R.encode_example(r, e, m, "float32") for r, e, m in items],
                             str(out), 1, "")
    R.write_manifest(str(out), R.build_manifest(str(out), shards, count=len(items), grid=GRID,
                                                dtype="float32", compression=""))


def test_materials_suite_flags_each_bad_row(tmp_path: Path, rows, settings):
    bad = [dict(r) for r in rows]
    bad.append(dict(rows[0]))  # duplicate id
    bad.append(dict(rows[1], material_id="lanth", formula="LaN", elements=["La", "N"]))
    bad.append(dict(rows[1], material_id="negK", K_VRH=-5.0))
    bad.append(dict(rows[1], material_id="huge", G_VRH=5000.0))
    bad.append(dict(rows[2], material_id="unstable", C44=-3.0))
    bad.append(dict(rows[2], material_id="nolabel", K_VRH=None, G_VRH=None))
    bad.append(dict(rows[2], material_id="noparse", formula="Xx2Qq"))
    tetra = np.array(rows[3]["cell"]) @ np.diag([1.0, 1.0, 1.2])
    bad.append(dict(rows[3], material_id="tetra", cell=tetra.tolist()))
    res = validate_frame(_context(tmp_path / "gx"), "materials",
                         materials_check_frame(pd.DataFrame(bad), settings),
                         materials_expectations(settings))
    failed = _failed(res)
    assert not res["success"]
    assert failed[("expect_column_values_to_be_unique", "material_id")] == [rows[0]["material_id"]]
    assert failed[("expect_column_values_to_be_in_set", "f_block")] == ["lanth"]
    assert failed[("expect_column_values_to_be_between", "K_VRH")] == ["negK"]
    assert failed[("expect_column_values_to_be_between", "G_VRH")] == ["huge"]
    assert failed[("expect_column_values_to_be_in_set", "plausible_born_stability")] == [
        "unstable"]
    assert failed[("expect_column_values_to_be_in_set", "has_label")] == ["nolabel"]
    assert failed[("expect_column_values_to_be_in_set", "formula_parses")] == ["noparse"]
    assert failed[("expect_column_values_to_be_in_set", "spacegroup")] == ["tetra"]
    good = validate_frame(_context(tmp_path / "gx"), "materials",
                          materials_check_frame(pd.DataFrame(rows), settings),
                          materials_expectations(settings))
    assert good["success"], _failed(good)


def test_row_count_minimum(tmp_path: Path, rows):
    s = load_settings(overrides={"validation": {"min_rows": 10}})
    res = validate_frame(_context(tmp_path / "gx"), "materials",
                         materials_check_frame(pd.DataFrame(rows), s), materials_expectations(s))
    assert ("expect_table_row_count_to_be_between", None) in _failed(res)


def test_records_suite_flags_each_bad_record(tmp_path: Path, rows, settings):
    rng = np.random.default_rng(0)
    items = []
    for r in rows:
        ecd, prov = _ecd(r)
        items.append((dict(r, provenance=prov), ecd, rng.normal(size=132).astype(np.float32)))
    bad = list(items)
    r0, e0, m0 = items[0]
    bad.append((dict(r0, material_id="double"), 2.0 * e0, m0))
    neg = e0.copy()
    neg[0, 0, 0] = -0.5
    bad.append((dict(r0, material_id="negative"), neg, m0))
    nan = e0.copy()
    nan[1, 2, 3] = np.nan
    bad.append((dict(r0, material_id="nan-ecd"), nan, m0))
    bad.append((dict(r0, material_id="nan-magpie"), e0, np.full(132, np.nan, np.float32)))
    bad.append((dict(r0, material_id="small-grid"), e0[:6, :6, :6], m0))
    table = pd.DataFrame(rows + [dict(rows[0], material_id=m) for m in
                                 ("double", "negative", "nan-ecd", "nan-magpie", "small-grid")])
    _write(tmp_path / "bad", bad)
    res = validate_frame(_context(tmp_path / "gx"), "records",
                         records_frame(str(tmp_path / "bad"), table),
                         records_expectations(settings, len(bad)))
    failed = _failed(res)
    assert "double" in failed[("expect_column_values_to_be_between", "charge_rel_err")]
    assert failed[("expect_column_values_to_be_between", "min_density")] == ["negative"]
    assert not next(e for e in res["expectations"] if e["column"] == "min_density")["blocking"]
    assert failed[("expect_column_values_to_be_in_set", "ecd_finite")] == ["nan-ecd"]
    assert failed[("expect_column_values_to_be_in_set", "magpie_finite")] == ["nan-magpie"]
    assert failed[("expect_column_values_to_be_in_set", "shape_ok")] == ["small-grid"]
    # the good records pass every expectation, charge within 1%
    _write(tmp_path / "good", items)
    frame = records_frame(str(tmp_path / "good"), pd.DataFrame(rows))
    assert frame["charge_rel_err"].max() < 1e-3
    good = validate_frame(_context(tmp_path / "gx"), "records", frame,
                          records_expectations(settings, len(items)))
    assert good["success"], _failed(good)
    wrong_count = validate_frame(_context(tmp_path / "gx"), "records", frame,
                                 records_expectations(settings, len(items) + 1))
    assert ("expect_table_row_count_to_equal", None) in _failed(wrong_count)


def test_run_validation_writes_docs_and_raises_one_line(tmp_path: Path, rows, settings):
    items = []
    for r in rows:
        ecd, prov = _ecd(r)
        items.append((dict(r, provenance=prov), ecd, np.zeros(132, np.float32)))
    _write(tmp_path / "rec", items)
    table = tmp_path / "m.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = run_validation(settings, records_dir=str(tmp_path / "rec"),
                             materials_path=str(table), out_dir=str(tmp_path / "val"))
    assert summary["success"] and summary["failed"] == 0 and summary["warnings"] == 0
    assert Path(summary["data_docs"]).is_file()
    on_disk = json.loads((tmp_path / "val" / "summary.json").read_text())
    assert on_disk["data_hash"] == R.read_manifest(str(tmp_path / "rec"))["data_hash"]
    table.write_text("".join(json.dumps(dict(r, K_VRH=-1.0)) + "\n" for r in rows))
    with pytest.raises(ValidationFailed) as exc:
        run_validation(settings, records_dir=str(tmp_path / "rec"), materials_path=str(table),
                       out_dir=str(tmp_path / "val"))
    msg = str(exc.value)
    assert "\n" not in msg and "expect_column_values_to_be_between(K_VRH)" in msg
    assert not json.loads((tmp_path / "val" / "summary.json").read_text())["success"]
    # a non-blocking failure (a negative voxel) is a warning, not an error
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r0, e0, m0 = items[0]
    neg = e0.copy()
    neg[0, 0, 0] = -0.01
    _write(tmp_path / "rec", [(r0, neg, m0)] + items[1:])
    warned = run_validation(settings, records_dir=str(tmp_path / "rec"),
                            materials_path=str(table), out_dir=str(tmp_path / "val"))
    assert warned["success"] and warned["warnings"] == 1 and warned["failed"] == 0
