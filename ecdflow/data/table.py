"""Read and check the materials table; bad rows go to a Quarantine with a one-line reason.

Inputs (docs/architecture.md): the materials JSONL (structure + C11/C12/C44/K_VRH/G_VRH in
GPa + provenance) or a composition-only CSV/JSONL (``material_id``, ``formula``, ``K_VRH``
and/or ``G_VRH``). Per-row checks: required fields, formula parses, known elements, no
lanthanides/actinides, finite positive moduli, Born stability (when C11/C12/C44 are given),
duplicate ids and, for rows with a structure, space group Fm-3m (225, symprec 1e-3).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow.data.quarantine import Quarantine
from ecdflow.errors import InputError
from ecdflow.features import EXCLUDED_Z, parse_formula
from ecdflow.schema import TARGETS

STRUCTURE_KEYS = ("cell", "numbers", "positions")


def read_rows(path: Path, where: str | None = None) -> list[dict]:
    """Raw rows of a table file via the input layer (``ecdflow.io.read_table``): CSV, TSV,
    semicolon exports or JSONL, by content; gzip/bzip2/xz; UTF-8/BOM/cp1252/Latin-1. A
    malformed JSON line becomes an ``_error`` row.

    Raises:
        InputError: the file is missing, empty, binary or not splittable as a table; names
            ``where`` (default: ``path``).
    """
    from ecdflow.io import read_table

    return read_table(path, where or str(path))


def structure_of(row) -> object:
    """The pymatgen Structure of a table row (``cell``, ``numbers``, Cartesian ``positions``)."""
    from pymatgen.core import Lattice, Structure

    return Structure(Lattice(np.asarray(row["cell"], dtype=float)), list(row["numbers"]),
                     np.asarray(row["positions"], dtype=float), coords_are_cartesian=True)


def _modulus_problem(row: dict) -> str | None:
    present = [t for t in TARGETS if t in row and row[t] is not None]
    if not present:
        return "missing field: K_VRH and/or G_VRH"
    for t in present:
        try:
            v = float(row[t])
        except (TypeError, ValueError):
            return f"bad value: {t}={row[t]!r} is not a number"
        if not math.isfinite(v) or v <= 0:
            return f"bad value: {t}={v} must be finite and > 0 GPa"
    if all(k in row and row[k] is not None for k in ("C11", "C12", "C44")):
        c11, c12, c44 = (float(row[k]) for k in ("C11", "C12", "C44"))
        if not (c11 - c12 > 0 and c11 + 2 * c12 > 0 and c44 > 0):
            return f"born unstable: C11={c11:.1f} C12={c12:.1f} C44={c44:.1f} GPa"
    return None


def _structure_problem(row: dict) -> str | None:
    from ecdflow.data.generate import is_fm3m

    try:
        s = structure_of(row)
    except Exception as exc:  # malformed arrays, bad atomic numbers
        return f"bad structure: {type(exc).__name__}: {str(exc)[:80]}"
    if s.composition.reduced_formula != parse_formula(str(row["formula"])).reduced_formula:
        return f"bad structure: composition {s.composition.reduced_formula} != formula"
    if not is_fm3m(s):
        return "not Fm-3m: space group is not 225 at symprec 1e-3"
    return None


def check_row(row: dict) -> str | None:
    """The first problem of one row as a one-line reason, or None when it is fine."""
    if "_error" in row:
        return row["_error"]
    for key in ("material_id", "formula"):
        if key not in row or row[key] in (None, ""):
            return f"missing field: {key}"
    try:
        comp = parse_formula(row["formula"] if isinstance(row["formula"], str)
                             else str(row["formula"]))
    except InputError as exc:
        return f"bad formula: {exc.what.removeprefix('bad formula ')}"
    lanthanoid = [el.symbol for el in comp.elements if el.Z in EXCLUDED_Z]
    if lanthanoid:
        return f"excluded element: {', '.join(lanthanoid)} (lanthanides/actinides)"
    problem = _modulus_problem(row)
    if problem is None and any(k in row for k in STRUCTURE_KEYS):
        missing = [k for k in STRUCTURE_KEYS if k not in row]
        problem = f"missing field: {missing[0]}" if missing else _structure_problem(row)
    return problem


def split_duplicates(rows: list[dict], where: str) -> tuple[list[tuple[int, dict]], list[dict]]:
    """Number the rows (1-based) and set aside repeated ids: the first row of an id is kept.

    Returns ``([(row_number, row), ...], quarantine entries)``; entries name ``<where>:<row>``.
    The only whole-table check, so the per-row checks (``check_row``) can run in parallel.
    """
    q = Quarantine(name=f"table {Path(where).name}")
    kept: list[tuple[int, dict]] = []
    seen: set[str] = set()
    for i, row in enumerate(rows, start=1):
        item = row.get("material_id")
        if item not in (None, "") and "_error" not in row:
            if str(item) in seen:
                q.add(str(item), f"{where}:{i}", f"duplicate id: {item} already seen")
                continue
            seen.add(str(item))
        kept.append((i, row))
    return kept, q.entries


def clean_row(row: dict, number: int) -> dict:
    """A checked row, normalised: reduced ``formula``, ``elements`` filled from it, targets
    as floats in GPa (NaN when absent) and the 1-based file ``row`` number."""
    comp = parse_formula(str(row["formula"]))
    row = dict(row, formula=comp.reduced_formula, row=number)
    row.setdefault("elements", sorted(el.symbol for el in comp.elements))
    for t in TARGETS:
        row[t] = float(row[t]) if row.get(t) is not None else float("nan")
    return row


def load_materials(path: str | Path) -> tuple[pd.DataFrame, Quarantine]:
    """Read a materials table and split it into good rows and a Quarantine of bad ones.

    Args:
        path: materials JSONL, or a composition-only CSV/JSONL.

    Returns:
        (DataFrame of the good rows in file order, with ``elements`` filled from the formula
        and ``formula`` reduced; Quarantine naming each bad row as ``<file>:<row>``).

    Raises:
        InputError: the file is missing or unreadable as a whole.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(str(path), "no such materials table")
    quarantine = Quarantine(name=f"table {path.name}")
    numbered, duplicates = split_duplicates(read_rows(path), str(path))
    quarantine.entries.extend(duplicates)
    good: list[dict] = []
    for i, row in numbered:
        problem = check_row(row)
        if problem is not None:
            quarantine.add(str(row.get("material_id", f"row {i}")), f"{path}:{i}", problem)
            continue
        good.append(clean_row(row, i))
    df = pd.DataFrame(good)
    if df.empty:
        df = pd.DataFrame(columns=["material_id", "formula", "elements", *TARGETS])
    return df.reset_index(drop=True), quarantine
