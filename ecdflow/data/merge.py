"""Merge labelling outputs with the candidate structures into the committed materials table."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

PROVENANCE_KEYS = ("potential", "sevenn_version", "torch_version", "strain", "fmax_eV_A",
                   "max_steps", "seed", "device")


def _rows(path: Path) -> Iterable[dict]:
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of an interrupted labelling run


def merge_labels(candidates: Path, label_files: list[Path], out: Path) -> dict[str, int]:
    """Write the Born-stable, converged labelled materials as ``out`` (JSON lines).

    The relaxed cell and positions from the labeller replace the candidate's starting guess.
    Returns counts per labelling status (``written`` for rows kept).
    """
    cand = {r["material_id"]: r for r in _rows(candidates)}
    counts: dict[str, int] = {}
    kept: dict[str, dict] = {}
    for f in label_files:
        for r in _rows(f):
            status = r.get("status", "failed")
            if status == "ok" and not r.get("relax_converged", True):
                status = "unconverged"
            counts[status] = counts.get(status, 0) + 1
            if status != "ok" or r["material_id"] not in cand:
                continue
            c = cand[r["material_id"]]
            from pymatgen.core import Element

            row = {
                "material_id": r["material_id"], "formula": c["formula"], "family": c["family"],
                "elements": sorted({Element.from_Z(z).symbol for z in r["numbers"]}),
                "cell": r["cell"], "numbers": r["numbers"], "positions": r["positions"],
                **{k: r[k] for k in ("C11", "C12", "C44", "K_VRH", "G_VRH")},
                **{k: r.get(k) for k in PROVENANCE_KEYS},
            }
            kept[row["material_id"]] = row
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as fh:
        for mid in sorted(kept):
            fh.write(json.dumps(kept[mid]) + "\n")
    counts["written"] = len(kept)
    return counts
