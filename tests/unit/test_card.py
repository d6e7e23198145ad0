"""The data card's counts block is computed from the files and replaces only its own text."""

import json
from pathlib import Path

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


def test_refresh_replaces_only_the_marked_block(tmp_path: Path):
    card = tmp_path / "card.md"
    card.write_text(f"# head\n{START}\nold\n{END}\ntail\n")
    assert refresh_card(card, f"{START}\nnew\n{END}")
    assert card.read_text() == f"# head\n{START}\nnew\n{END}\ntail\n"
    plain = tmp_path / "plain.md"
    plain.write_text("no markers\n")
    assert not refresh_card(plain, "x") and plain.read_text() == "no markers\n"
