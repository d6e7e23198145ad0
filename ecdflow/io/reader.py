"""What a user input is and what it holds: one reader for every entry point.

``sniff`` names the kind from the content; ``parse_text`` reads text of any kind into an
``Item``; ``read_input`` does the same for a file (decompression and decoding by
``ecdflow.io.raw``). A file name or a ``format`` column is only a hint: it picks the parser
for the error message when the content is not recognised, and never overrides recognised
content (a CHGCAR called ``Cu.vasp`` or ``x.cif`` is read as a density). Every failure is an
``InputError`` whose text is ``<where>: <reason>``, ``where`` being the user's file name or row.

Kinds: ``cif``, ``poscar`` (POSCAR/CONTCAR, VASP 4 and 5), ``chgcar`` (CHGCAR/CHG/AECCAR/
PARCHG/LOCPOT-like volumetric files, total block), ``json`` (pymatgen ``Structure.as_dict()``),
``table`` (CSV/TSV/semicolon/JSONL) and ``formula`` (one line such as ``NaCl``).
"""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecdflow.errors import InputError
from ecdflow.io import raw, vasp
from ecdflow.io.formula import looks_like_formula, parse_formula
from ecdflow.io.table import is_table, read_table_text

KINDS = ("cif", "poscar", "chgcar", "json", "table", "formula")
EXPECTED = "expected CIF, POSCAR/CONTCAR, CHGCAR, pymatgen structure JSON, a table or a formula"


@dataclass(frozen=True)
class Item:
    """One parsed input: the structure (pymatgen, None for a formula), the density of a
    volumetric file (e/Å^3 on the file's grid, index order x, y, z; None otherwise) and the
    composition. ``where`` is the user's name for it (file or row)."""

    where: str
    kind: str
    composition: object
    structure: object = None
    rho: np.ndarray | None = None
    blocks: int = 0
    note: str = ""

    @property
    def formula(self) -> str:
        """Reduced formula."""
        return self.composition.reduced_formula

    @property
    def electrons(self) -> float | None:
        """Electrons in the cell from the density (mean(rho) * V), None without a density."""
        if self.rho is None:
            return None
        return float(np.mean(self.rho, dtype=np.float64) * self.structure.volume)


def hint_of(name: str) -> str:
    """A kind hint from a file name (compression suffixes ignored), "" when none."""
    n = re.sub(r"\.(gz|bz2|xz)$", "", Path(name).name.lower())
    if n.endswith(".cif"):
        return "cif"
    if n.endswith(".json"):
        return "json"
    if n.endswith((".csv", ".tsv", ".jsonl")):
        return "table"
    if any(k in n for k in ("chgcar", "aeccar", "parchg", "locpot")) or n.startswith("chg"):
        return "chgcar"
    if "poscar" in n or "contcar" in n or n.endswith(".vasp"):
        return "poscar"
    return ""


def sniff(text: str) -> str:
    """The kind of ``text`` from its content, "" when it is none of ``KINDS``."""
    s = text.lstrip()
    if not s:
        return ""
    if s.startswith("{") or s.startswith("["):
        if is_table(text):
            return "table"
        return "table" if s.startswith("[") else "json"
    if re.search(r"^\s*data_", text, flags=re.M) or "_cell_length_a" in text:
        return "cif"
    lay = vasp.layout(text.splitlines())
    if lay is not None:
        return "chgcar" if lay.grid_row is not None else "poscar"
    if is_table(text):
        return "table"
    if looks_like_formula(text):
        return "formula"
    return ""


def _cif(text: str, where: str):
    from pymatgen.io.cif import CifParser

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            structures = CifParser.from_str(text).parse_structures(primitive=False,
                                                                   on_error="ignore")
    except Exception as exc:  # noqa: BLE001 - pymatgen raises many types for bad CIFs
        msg = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(where, f"not a readable CIF ({msg})") from None
    if not structures:
        raise InputError(where, "not a readable CIF: no structure with cell lengths, angles "
                                "and atom sites")
    if len(structures) > 1:
        raise InputError(where, f"CIF holds {len(structures)} structures; give one per file")
    return structures[0]


def _json(text: str, where: str):
    from pymatgen.core import Structure

    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(where, f"bad JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(obj, dict) or "lattice" not in obj or "sites" not in obj:
        raise InputError(where, "JSON is not a pymatgen Structure dict (needs 'lattice' and "
                                "'sites')")
    try:
        return Structure.from_dict(obj)
    except Exception as exc:  # noqa: BLE001
        msg = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise InputError(where, f"bad pymatgen Structure dict ({type(exc).__name__}: {msg})"
                         ) from None


def parse_text(text: str, where: str, hint: str = "", elements: Sequence[str] | None = None,
               path: Path | None = None) -> Item:
    """Read one input's text (any kind but ``table``, see ``read_table_text``).

    Args:
        text: decoded text (``raw.decode_text``).
        where: the user's name for it, used in every message.
        hint: kind suggested by a file name or a ``format`` column (used only when the
            content is not recognised).
        elements: species of a VASP 4 file, in file order.
        path: the file's path (a POSCAR beside a VASP 4 CHGCAR names its species; a VASP 4
            POSCAR itself is never completed from its neighbours).

    Raises:
        InputError: ``<where>: <reason>`` for anything that cannot be read exactly.
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError(where, "empty input")
    hint = (hint or "").strip().lower()
    if hint and hint not in KINDS:
        raise InputError(where, f"unknown format '{hint}' (use one of {', '.join(KINDS)})")
    kind = sniff(text)
    note = ""
    if not kind:
        if hint in ("cif", "json", "poscar", "chgcar", "formula"):
            kind = hint  # the parser of the hinted kind gives the precise reason below
        else:
            first = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")[:40]
            raise InputError(where, f"not a recognised input ({EXPECTED}); first line "
                                    f"'{first}'")
    elif hint and hint != kind:
        note = f"content is {kind}, not {hint} as named: read as {kind}"
    if kind == "table":
        raise InputError(where, "a table, not a single structure (read it as a table)")
    if kind == "formula":
        return Item(where, kind, parse_formula(text.strip(), where), note=note)
    if kind == "chgcar":
        vol = vasp.parse_volumetric(text, where, elements, path)
        return Item(where, kind, vol.structure.composition, vol.structure, vol.rho, vol.blocks,
                    note)
    if kind == "poscar":
        structure, _ = vasp.parse_header(text.splitlines(), where, elements)  # no look beside
    elif kind == "cif":
        structure = _cif(text, where)
    else:
        structure = _json(text, where)
    if len(structure) == 0:
        raise InputError(where, "structure has no atoms")
    return Item(where, kind, structure.composition, structure, note=note)


def read_input(path: str | Path, where: str | None = None,
               elements: Sequence[str] | None = None) -> Item:
    """Read one input file of any kind (compressed or not); see ``parse_text``."""
    path = Path(path)
    where = where or str(path)
    text = raw.read_text(path, where)
    return parse_text(text, where, hint_of(path.name), elements, path)


def read_table(path: str | Path, where: str | None = None) -> list[dict]:
    """Rows of a table file (CSV/TSV/semicolon/JSONL, compressed or not, any encoding)."""
    where = where or str(path)
    return read_table_text(raw.read_text(path, where), where)
