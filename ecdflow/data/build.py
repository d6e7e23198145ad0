"""Build inspection/standalone data products from the materials table.

``build_dataset`` writes, under ``<work_dir>/data/``: ``ecd_<N>.npy`` (float32, (n, N, N, N),
e/Å^3, conventional cube), ``magpie.npy`` ((n, 132) float32), ``index.json`` (material ids,
formulas, targets in GPa, in array order), ``quarantine.json`` and ``counts.json``.
Bad rows and materials whose ECD fails are quarantined with their reason; the rest goes on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecdflow.data.quarantine import Quarantine
from ecdflow.data.table import TARGETS, load_materials, structure_of
from ecdflow.density import procrystal_density
from ecdflow.errors import EcdflowError
from ecdflow.features import featurize
from ecdflow.log import get_logger, progress

log = get_logger("ecdflow.data.build")


@dataclass(frozen=True)
class BuildResult:
    """Where ``build_dataset`` wrote its outputs and how many materials each step kept."""

    out_dir: Path
    counts: dict[str, int]
    quarantine: Path


def build_dataset(
    table: Path, out_dir: Path, grid: int = 60, smearing_A: float = 0.1, limit: int = 0
) -> BuildResult:
    """Table -> Magpie features + procrystal ECD grids (see module docstring).

    Args:
        table: materials JSONL (composition-only tables get features but no ECD).
        out_dir: output folder (created).
        grid: ECD points per cube edge.
        smearing_A: Gaussian smearing (Å).
        limit: build only the first ``limit`` good rows (0: all).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    df, quarantine = load_materials(table)
    if limit:
        df = df.head(limit)
    has_structure = "cell" in df.columns
    keep, grids = [], []
    q_ecd = Quarantine(name="ecd")
    for i, row in progress(df.iterrows(), desc="ECD", total=len(df), unit="mat"):
        if has_structure:
            try:
                grids.append(procrystal_density(structure_of(row), grid, smearing_A))
            except EcdflowError as exc:
                q_ecd.add(row["material_id"], f"{table}:{row['row']}", f"ecd failed: {exc}")
                continue
        keep.append(i)
    quarantine.extend(q_ecd)
    df = df.loc[keep].reset_index(drop=True)
    # the one check (features.featurize): rows without usable features are quarantined
    feats, errors = featurize(list(df["formula"]), where=[str(m) for m in df["material_id"]])
    bad = [i for i, e in enumerate(errors) if e]
    if bad:
        q_mag = Quarantine(name="magpie")
        for i in bad:
            q_mag.add(df["material_id"][i], f"{table}:{df['row'][i]}",
                      f"magpie: {errors[i].split(': ', 1)[-1]}")
        quarantine.extend(q_mag)
        log.warning("magpie: %d of %d materials quarantined (first: %s)", len(bad), len(df),
                    errors[bad[0]])
        good = [i for i, e in enumerate(errors) if not e]
        df, feats = df.iloc[good].reset_index(drop=True), feats[good]
        grids = [grids[i] for i in good] if has_structure else grids
    np.save(out_dir / "magpie.npy", feats)
    if has_structure:
        arr = np.stack(grids) if grids else np.zeros((0, grid, grid, grid), np.float32)
        np.save(out_dir / f"ecd_{grid}.npy", arr)
    index = {"material_id": list(df["material_id"]), "formula": list(df["formula"]),
             **{t: [float(v) for v in df[t]] for t in TARGETS if t in df.columns},
             "grid": grid, "smearing_A": smearing_A, "units": "ECD e/A^3, moduli GPa"}
    (out_dir / "index.json").write_text(json.dumps(index) + "\n")
    counts = {"rows_good": len(df), "quarantined": len(quarantine), **quarantine.counts()}
    (out_dir / "counts.json").write_text(json.dumps(counts, indent=1) + "\n")
    qpath = quarantine.write(out_dir / "quarantine.json")
    log.info("built %d materials (%d quarantined) in %s", len(df), len(quarantine), out_dir)
    return BuildResult(out_dir, counts, qpath)


def material_structure(table: Path, material_id: str):
    """The Structure of one material of the table; EcdflowError when absent or bad."""
    from ecdflow.errors import InputError

    df, quarantine = load_materials(table)
    hit = df[df["material_id"] == material_id]
    if hit.empty:
        bad = [e for e in quarantine.entries if e["item_id"] == material_id]
        why = f"quarantined: {bad[0]['reason']}" if bad else "no such material_id"
        raise InputError(f"{table}: {material_id}", why)
    if "cell" not in hit.columns:
        raise InputError(str(table), "composition-only table: no structures")
    return structure_of(hit.iloc[0])
