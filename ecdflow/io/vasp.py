"""VASP text formats: POSCAR/CONTCAR and volumetric files (CHGCAR, CHG, AECCAR, PARCHG, ...).

One header parser for both (pymatgen's ``Poscar`` guesses species for VASP 4 files silently,
so it is not used for reading). VASP 5 files carry an element line; VASP 4 files do not, and
their species come from ``elements=`` (file order), a POSCAR/CONTCAR with an element line
beside the file, or the comment line when it is exactly a list of element symbols; otherwise
the file is refused. A negative scale is the cell volume (Å^3).

Volumetric files: the values after the grid line are rho * V_cell (V in Å^3), x fastest. The
FIRST block is always the total density (charge, up + down); spin-polarised files follow it
with the magnetisation block (up - down) and non-collinear files with three (m_x, m_y, m_z);
augmentation occupancies may sit between blocks. Only the total block is read; the number of
blocks is reported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ecdflow.errors import InputError


def _is_int_line(tokens: list[str]) -> bool:
    return bool(tokens) and all(t.lstrip("+-").isdigit() for t in tokens)


def _floats(line: str, n: int) -> list[float] | None:
    try:
        vals = [float(v) for v in line.split()[:n]]
    except ValueError:
        return None
    return vals if len(vals) == n else None


@dataclass(frozen=True)
class Layout:
    """Where the parts of a VASP header are (0-based line numbers)."""

    names_row: int | None  # None: VASP 4 (no element line)
    counts_row: int
    coords_row: int  # the Direct/Cartesian line
    n_atoms: int
    grid_row: int | None  # the volumetric grid line, None for a POSCAR


def layout(lines: list[str]) -> Layout | None:
    """The header layout when ``lines`` look like a VASP file, else None (for detection)."""
    if len(lines) < 8 or _floats(lines[1], 1) is None:
        return None
    if any(_floats(lines[i], 3) is None for i in (2, 3, 4)):
        return None
    row, names_row = 5, None
    if not _is_int_line(lines[5].split()):
        names_row, row = 5, 6
    tokens = lines[row].split() if row < len(lines) else []
    if not _is_int_line(tokens):
        return None
    n = sum(int(t) for t in tokens)
    coords = row + 1
    if coords < len(lines) and lines[coords].strip()[:1].lower() == "s":  # Selective dynamics
        coords += 1
    if coords >= len(lines) or n <= 0:
        return None
    g = coords + 1 + n
    while g < len(lines) and not lines[g].strip():
        g += 1
    grid_row = None
    if g < len(lines) and g > coords + n + 1 and len(lines[g].split()) == 3 \
            and _is_int_line(lines[g].split()):
        grid_row = g
    return Layout(names_row, row, coords, n, grid_row)


def _valid_symbols(tokens: list[str]) -> bool:
    from pymatgen.core.periodic_table import Element

    return bool(tokens) and all(Element.is_valid_symbol(t) for t in tokens)


def _species_beside(path: Path | None, counts: list[int]) -> list[str] | None:
    """Element symbols of a VASP 5 POSCAR/CONTCAR beside ``path`` (the run folder) whose atom
    counts are ``counts``; None when there is none or it describes another cell."""
    if path is None:
        return None
    for name in ("POSCAR", "CONTCAR"):
        p = path.parent / name
        if p.is_file() and p.resolve() != path.resolve():
            lines = p.read_text(errors="replace").splitlines()
            if (len(lines) > 6 and not _is_int_line(lines[5].split())
                    and lines[6].split() == [str(c) for c in counts]):
                return lines[5].split()
    return None


def parse_header(lines: list[str], where: str, elements: Sequence[str] | None = None,
                 path: Path | None = None):
    """(pymatgen Structure, Layout) of a POSCAR or of the POSCAR part of a volumetric file.

    Raises:
        InputError: not a VASP layout, VASP 4 without species, unknown element, bad positions.
    """
    from pymatgen.core import Lattice, Structure

    lay = layout(lines)
    if lay is None and 0 < len(lines) < 8 and _floats(lines[1] if len(lines) > 1 else "", 1):
        raise InputError(where, "truncated: too short for a VASP header")
    if lay is None:
        raise InputError(where, "not a VASP file: expected a comment, a scale, three lattice "
                                "lines, (element names,) atom counts and positions")
    scale = float(lines[1].split()[0])
    lat = np.array([_floats(lines[i], 3) for i in (2, 3, 4)])
    if abs(np.linalg.det(lat)) < 1e-8 or scale == 0:
        raise InputError(where, "lattice vectors span no volume")
    factor = (-scale / abs(np.linalg.det(lat))) ** (1.0 / 3.0) if scale < 0 else scale
    lat = lat * factor
    counts = [int(t) for t in lines[lay.counts_row].split()]
    if lay.names_row is not None:
        names = [t.split("_")[0].split("/")[0] for t in lines[lay.names_row].split()]
    else:
        comment = lines[0].split()
        names = (list(elements) if elements else _species_beside(path, counts)
                 or (comment if len(comment) == len(counts) and _valid_symbols(comment)
                     else None))
        if names is None:
            raise InputError(where, "VASP 4 file without element names: add the element line "
                                    "(VASP 5), put a POSCAR with one beside the file, or pass "
                                    "the species in file order (elements=)")
    if len(names) != len(counts):
        raise InputError(where, f"{len(names)} element names for {len(counts)} atom counts")
    if not _valid_symbols(names):
        raise InputError(where, f"unknown element in '{' '.join(names)}'")
    cart = lines[lay.coords_row].strip()[:1].lower() in ("c", "k")
    pos = [_floats(ln, 3) for ln in lines[lay.coords_row + 1:lay.coords_row + 1 + lay.n_atoms]]
    if len(pos) < lay.n_atoms or any(p is None for p in pos):
        raise InputError(where, f"truncated or bad atom positions (expected {lay.n_atoms})")
    xyz = np.array(pos) * (factor if cart else 1.0)
    species = [el for el, c in zip(names, counts, strict=True) for _ in range(c)]
    return Structure(Lattice(lat), species, xyz, coords_are_cartesian=cart), lay


@dataclass(frozen=True)
class Volumetric:
    """A volumetric file's structure, total density rho (e/Å^3, (nx, ny, nz), index order
    x, y, z) and block count (1 total only, 2 spin-polarised, 4 non-collinear)."""

    structure: object
    rho: np.ndarray
    blocks: int

    @property
    def electrons(self) -> float:
        """Integrated electron count: mean(rho) * V_cell."""
        return float(np.mean(self.rho, dtype=np.float64) * self.structure.volume)


def parse_volumetric(text: str, where: str, elements: Sequence[str] | None = None,
                     path: Path | None = None) -> Volumetric:
    """Read the total density block of CHGCAR-like text (see the module doc).

    Raises:
        InputError: bad header, no/bad grid line, truncated block, bad or NaN/inf values.
    """
    lines = text.splitlines()
    structure, lay = parse_header(lines, where, elements, path)
    if lay.grid_row is None:
        after = lay.coords_row + 1 + lay.n_atoms
        while after < len(lines) and not lines[after].strip():
            after += 1
        if after < len(lines) and after > lay.coords_row + 1 + lay.n_atoms:
            raise InputError(where, f"line {after + 1}: expected three positive grid counts, "
                                    f"got '{lines[after].strip()[:40]}'")
        raise InputError(where, "no density grid after the atom positions (a POSCAR, not a "
                                "CHGCAR)")
    tokens = lines[lay.grid_row].split()
    shape = tuple(int(t) for t in tokens)
    if min(shape) <= 0:
        raise InputError(where, f"line {lay.grid_row + 1}: grid counts must be positive")
    n = shape[0] * shape[1] * shape[2]
    rest = "\n".join(lines[lay.grid_row + 1:])
    values = rest.split(None, n)
    tail = values[n] if len(values) > n else ""
    values = values[:n]
    if len(values) < n:
        raise InputError(where, f"truncated: {len(values)} of {n} density values for grid "
                                f"{shape[0]}x{shape[1]}x{shape[2]}")
    try:
        data = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise InputError(where, f"bad density value '{bad[:20]}'") from None
    if not np.all(np.isfinite(data)):
        raise InputError(where, f"{int(np.sum(~np.isfinite(data)))} NaN/inf density values")
    pattern = r"^\s*" + r"\s+".join(tokens) + r"\s*$"
    blocks = 1 + len(re.findall(pattern, tail, flags=re.M))
    rho = data.reshape(shape[::-1]).transpose(2, 1, 0) / structure.volume
    return Volumetric(structure, np.ascontiguousarray(rho, dtype=np.float32), blocks)


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True
