"""Merging labelling output into the materials table: only trustworthy rows are kept."""

import json
from pathlib import Path

import pytest

from ecdflow.data.merge import QUARANTINE_NAME, merge_labels


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _label(mid: str, status: str = "ok", k: float = 50.0, g: float = 20.0, **kw) -> dict:
    return {"material_id": mid, "status": status, "relax_converged": True, "C11": 80.0,
            "C12": 35.0, "C44": 25.0, "K_VRH": k, "G_VRH": g, "cell": [[0, 2, 2], [2, 0, 2],
            [2, 2, 0]], "numbers": [11, 17], "positions": [[0, 0, 0], [2, 2, 2]],
            "potential": "7net-l3i5", **kw}


def test_keeps_only_plausible_converged_stable_rows(tmp_path: Path):
    cands = _write(tmp_path / "c.jsonl", [
        {"material_id": f"rs:{m}", "formula": m, "family": "rocksalt-ionic"}
        for m in ["NaCl", "KCl", "LiF", "CsF", "Cu", "RbBr"]])
    labels = _write(tmp_path / "l.jsonl", [
        _label("rs:NaCl"),
        _label("rs:KCl", status="born_unstable"),
        _label("rs:LiF", k=1.6e9),                      # a runaway relaxation
        _label("rs:CsF", relax_converged=False),
        _label("rs:Cu"),                                # external reference: held out
    ])
    with labels.open("a") as fh:
        fh.write('{"material_id": "rs:RbBr", "sta')      # torn last line of a killed run
    refs = _write(tmp_path / "r.jsonl", [{"formula": "Cu", "K_ref": 141.0}])
    out = tmp_path / "m.jsonl"
    counts = merge_labels(cands, [labels], out, references=refs)
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert [r["material_id"] for r in rows] == ["rs:NaCl"]
    assert rows[0]["elements"] == ["Cl", "Na"] and rows[0]["potential"] == "7net-l3i5"
    assert counts == {"ok": 2, "born_unstable": 1, "unconverged": 1, "external_reference": 1,
                      "written": 1, "quarantined": 1, "rule:max_bulk_modulus": 1}
    bad = [json.loads(x) for x in (tmp_path / QUARANTINE_NAME).read_text().splitlines()]
    assert [(r["material_id"], r["failed_rules"]) for r in bad] == [
        ("rs:LiF", ["max_bulk_modulus"])]


@pytest.mark.parametrize(("change", "rule"), [
    ({"K_VRH": 450.0, "G_VRH": 300.0}, "max_bulk_modulus"),
    ({"K_VRH": 400.0, "G_VRH": 540.0}, "max_shear_modulus"),
    ({"C11": 1100.0}, "max_elastic_const"),
    ({"C12": 90.0}, "born_stability"),
    ({"G_VRH": 80.0}, "poisson_ratio"),
    ({"C44": 170.0}, "c44_over_c11"),
    ({"cell": [[0, 1.5, 1.5], [1.5, 0, 1.5], [1.5, 1.5, 0]], "positions": [[0, 0, 0],
                                                                     [1.5, 1.5, 1.5]]},
     "short_contact"),
])
def test_merge_quarantines_each_implausible_row_with_its_rule(tmp_path: Path, change, rule):
    cands = _write(tmp_path / "c.jsonl", [
        {"material_id": f"rs:{m}", "formula": m, "family": "rocksalt-ionic"}
        for m in ["NaCl", "KCl"]])
    labels = _write(tmp_path / "l.jsonl", [_label("rs:NaCl"), _label("rs:KCl", **change)])
    out, q = tmp_path / "m.jsonl", tmp_path / "q.jsonl"
    counts = merge_labels(cands, [labels], out, references=None, quarantine=q)
    assert [json.loads(x)["material_id"] for x in out.read_text().splitlines()] == ["rs:NaCl"]
    bad = [json.loads(x) for x in q.read_text().splitlines()]
    assert [(r["material_id"], r["failed_rules"]) for r in bad] == [("rs:KCl", [rule])]
    assert counts["quarantined"] == 1 and counts[f"rule:{rule}"] == 1


def test_quick_subset_is_seeded_sorted_and_stable_when_the_table_grows(tmp_path: Path):
    from ecdflow.data.merge import write_subset

    rows = [{"material_id": f"x:{i:03d}"} for i in range(200)]
    table = _write(tmp_path / "m.jsonl", rows)
    n = write_subset(table, tmp_path / "q.jsonl", 50, seed=1)
    first = [json.loads(x)["material_id"] for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert n == 50 and first == sorted(first) and len(set(first)) == 50
    write_subset(table, tmp_path / "q2.jsonl", 50, seed=2)
    assert (tmp_path / "q2.jsonl").read_text() != (tmp_path / "q.jsonl").read_text()
    grown = _write(tmp_path / "g.jsonl", rows + [{"material_id": f"y:{i}"} for i in range(20)])
    write_subset(grown, tmp_path / "q3.jsonl", 50, seed=1)
    again = {json.loads(x)["material_id"] for x in (tmp_path / "q3.jsonl").read_text().splitlines()}
    assert len(again & set(first)) >= 40   # new rows displace only a few earlier picks
