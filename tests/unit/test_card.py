"""The data card's counts block is computed from the files and replaces only its own text."""

import json
from pathlib import Path

import pytest

from ecdflow.data.card import END, START, counts_block, refresh_card


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_counts_block_counts_families_status_and_loeo_elements(tmp_path: Path):
    cands = _write(tmp_path / "c.jsonl", [{"material_id": m} for m in
                                          ["rs:NaCl", "rs:KCl", "rs:LiF", "fl:CaF2"]])
    labels = _write(tmp_path / "l.jsonl", [
        {"material_id": "rs:NaCl", "status": "ok"},
        {"material_id": "rs:KCl", "status": "born_unstable"},
        {"material_id": "rs:NaCl", "status": "ok"},          # a repeat is counted once
        {"material_id": "fl:CaF2", "status": "ok"}])
    table = _write(tmp_path / "m.jsonl", [
        {"material_id": "rs:NaCl", "family": "rs", "elements": ["Cl", "Na"]},
        {"material_id": "fl:CaF2", "family": "fl", "elements": ["Ca", "F"]}])
    block = counts_block(cands, [labels], table, loeo_target=(1, 1))
    assert "| 4 (rs 3, fl 1) |" in block
    assert "| 3 (ok 2, born_unstable 1) |" in block
    assert "rs 1/2, fl 1/1" in block and "**2**" in block
    assert "F 1, K 0" in block and "Na 1" in block and "Cl 1" in block
    assert "3 of 11 (F, Na, Cl)" in block
    assert "| unlabelled candidates | 1 |" in block
    assert "| 0 (max_bulk_modulus 0," in block  # no quarantine file: nothing quarantined


def test_counts_block_counts_quarantined_rows_per_rule_and_marginal_rows(tmp_path: Path):
    cands = _write(tmp_path / "c.jsonl", [{"material_id": "rs:NaCl"}])
    labels = _write(tmp_path / "l.jsonl", [{"material_id": "rs:NaCl", "status": "ok"}])
    stiff = {"C11": 50.0, "C12": 12.0, "C44": 13.0}
    table = _write(tmp_path / "m.jsonl", [
        {"material_id": "rs:NaCl", "family": "rs", "elements": ["Cl", "Na"], **stiff},
        {"material_id": "rs:KCl", "family": "rs", "elements": ["Cl", "K"], **stiff,
         "C12": 49.5},                                              # C' = 0.25 GPa
        {"material_id": "rs:KBr", "family": "rs", "elements": ["Br", "K"], **stiff,
         "C44": 0.1}])
    _write(tmp_path / "quarantine-plausibility.jsonl", [
        {"material_id": "rs:NaCu", "failed_rules": ["max_bulk_modulus", "short_contact"]},
        {"material_id": "rs:KNb", "failed_rules": ["short_contact"]}])
    block = counts_block(cands, [labels], table)
    assert ("| 2 (max_bulk_modulus 1, max_shear_modulus 0, max_elastic_const 0, "
            "born_stability 0, poisson_ratio 0, c44_over_c11 0, short_contact 2) |") in block
    assert "| of which marginal (C' or C44 < 0.5 GPa; kept) | 2 |" in block


def test_refresh_replaces_only_the_marked_block(tmp_path: Path):
    card = tmp_path / "card.md"
    card.write_text(f"# head\n{START}\nold\n{END}\ntail\n")
    assert refresh_card(card, f"{START}\nnew\n{END}")
    assert card.read_text() == f"# head\n{START}\nnew\n{END}\ntail\n"
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not refresh_card(plain, "x") and plain.read_text() == "no markers\n"


def test_card_figures_block_matches_the_committed_figures():
    """The card's figures block is exactly what ``ecdflow data card`` writes from
    card-figures.json (no hand-edited number), and the measured claims hold."""
    from ecdflow.data.figures import END as FEND
    from ecdflow.data.figures import START as FSTART
    from ecdflow.data.figures import figures_block, label_checks

    data = Path(__file__).resolve().parents[2] / "data/fcc"
    fig = json.loads((data / "card-figures.json").read_text())
    card = (data / "DATA_CARD.md").read_text()
    assert figures_block(fig) in card and card.count(FSTART) == card.count(FEND) == 1
    g = label_checks()["G_vs_experiment_pct"]
    assert g["mean"] == pytest.approx(fig["labels"]["G_vs_experiment_pct"]["mean"], abs=0.01)
    assert -30 < g["mean"] < -15 and g["min"] < -60
    pairs = fig["procrystal"]["pairs"]
    assert pairs["KCl-RbCl"]["correlation"] > 0.99 > pairs["KCl-KBr"]["correlation"]


def test_scf_check_without_pyscf_is_one_line_and_exit_code_1(monkeypatch, capsys):
    import sys

    from ecdflow.data import scf_check

    monkeypatch.setitem(sys.modules, "pyscf", None)  # import pyscf -> ImportError
    assert scf_check.main() == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "requirements/dft.txt" in err
