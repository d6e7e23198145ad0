"""Merge labelling outputs with the candidate structures into the committed materials table.

Rows that fail a physical-plausibility rule (``ecdflow.validation.plausibility``) are not
written to the table but to a quarantine file beside it, each with the rules it failed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from ecdflow.config import PlausibilityConfig

QUARANTINE_NAME = "quarantine-plausibility.jsonl"
"""Rows that failed the plausibility gate, beside the table (row + ``failed_rules``)."""

EXTERNAL_REFERENCES = Path(__file__).resolve().parents[2] / "data/references/dcdft_fcc.jsonl"
"""Materials kept out of the benchmark so the external check (ecdflow.external) stays unseen."""

QUICK_SIZE = 500
"""Rows of the quick profile's seeded subset (data/fcc/materials-quick.jsonl)."""

PROVENANCE_KEYS = ("potential", "sevenn_version", "torch_version", "strain", "fmax_eV_A",
                   "max_steps", "max_strain_steps", "seed", "device")


def iter_jsonl(path: Path) -> Iterable[dict]:
    """Objects of a JSON-lines file; a torn line (interrupted writer) is skipped."""
    for line in path.read_text().splitlines():
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line of an interrupted labelling run


def _status(r: dict, held_out: set[str], formula: str | None) -> str:
    """Labelling status, refined: unconverged, non-finite or non-positive (``implausible``) and
    held-out rows are not kept. Upper bounds are the plausibility gate's (``merge_labels``)."""
    status = r.get("status", "failed")
    if status != "ok":
        return status
    if not r.get("relax_converged", True):
        return "unconverged"
    if not all(isinstance(r.get(k), (int, float)) and 0.0 < r[k] < float("inf")
               for k in ("K_VRH", "G_VRH")):
        return "implausible"
    if formula in held_out:
        return "external_reference"
    return "ok"


def merge_labels(candidates: Path, label_files: list[Path], out: Path,
                 references: Path | None = EXTERNAL_REFERENCES,
                 plausibility: PlausibilityConfig | None = None,
                 quarantine: Path | None = None) -> dict[str, int]:
    """Write the Born-stable, converged, plausible labelled materials as ``out`` (JSON lines).

    The relaxed cell and positions from the labeller replace the candidate's starting guess.
    Formulas of the external reference set (``references``) are left out so that the external
    validation never scores materials seen in training. Rows failing a plausibility rule
    (``plausibility``: thresholds, default ``PlausibilityConfig()``) go to ``quarantine``
    (default ``out``'s folder / ``quarantine-plausibility.jsonl``), each with
    ``failed_rules``, and are logged one line each.
    Returns counts per labelling status (``written`` for rows kept, ``quarantined`` for rows
    failing the gate, ``rule:<name>`` for rows failing each rule).
    """
    from ecdflow.data.quarantine import Quarantine
    from ecdflow.validation.plausibility import split_plausible

    cand = {r["material_id"]: r for r in iter_jsonl(candidates)}
    held_out = {r["formula"] for r in iter_jsonl(references)} if references else set()
    counts: dict[str, int] = {}
    kept: dict[str, dict] = {}
    for f in label_files:
        for r in iter_jsonl(f):
            c = cand.get(r["material_id"])
            status = _status(r, held_out, c["formula"] if c else None)
            counts[status] = counts.get(status, 0) + 1
            if status != "ok" or c is None:
                continue
            from pymatgen.core import Element

            row = {
                "material_id": r["material_id"], "formula": c["formula"], "family": c["family"],
                "elements": sorted({Element.from_Z(z).symbol for z in r["numbers"]}),
                "cell": r["cell"], "numbers": r["numbers"], "positions": r["positions"],
                **{k: r[k] for k in ("C11", "C12", "C44", "K_VRH", "G_VRH")},
                **{k: r.get(k) for k in PROVENANCE_KEYS},
                # rows labelled before the cap was recorded used max(max_steps // 3, 20)
                "max_strain_steps": r.get("max_strain_steps",
                                          max(int(r.get("max_steps") or 150) // 3, 20)),
            }
            kept[row["material_id"]] = row
    good, bad = split_plausible((kept[mid] for mid in sorted(kept)),
                                plausibility or PlausibilityConfig())
    q = Quarantine("plausibility")
    for r in bad:
        q.add(r["material_id"], str(out), "implausible: " + ", ".join(r["failed_rules"]))
        for rule in r["failed_rules"]:
            counts[f"rule:{rule}"] = counts.get(f"rule:{rule}", 0) + 1
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in good))
    quarantine = quarantine or out.parent / QUARANTINE_NAME
    quarantine.write_text("".join(json.dumps(r) + "\n" for r in bad))
    counts["written"] = len(good)
    counts["quarantined"] = len(q)
    return counts


def write_subset(table: Path, out: Path, size: int, seed: int = 0) -> int:
    """Write a seeded subset of ``size`` rows of ``table`` to ``out``; returns rows written.

    A row's rank is the sha256 of ``"<seed>:<material_id>"``, so the choice does not depend on
    row order, and a grown table keeps most of the earlier subset. Rows stay sorted by id.
    The quick profile trains on this subset so that ``make run`` fits in minutes on 2 cores.
    """
    rows = list(iter_jsonl(table))

    def rank(r: dict) -> str:
        return hashlib.sha256(f"{seed}:{r['material_id']}".encode()).hexdigest()

    keep = sorted(sorted(rows, key=rank)[:size], key=lambda r: r["material_id"])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(r) + "\n" for r in keep))
    return len(keep)
