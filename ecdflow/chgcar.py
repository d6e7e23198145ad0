"""VASP CHGCAR files: read the total density, resample it onto the model cube, write it back.

CHGCAR values are rho * V_cell (V in Å^3), x fastest. ``read_chgcar`` returns rho in e/Å^3 on
the file's own grid, index order (x, y, z). It reads VASP 5 files (element line) and VASP 4
files (no element line: species from ``elements=``, a POSCAR beside the file, or the comment
line), ignores what follows the total density (augmentation occupancies, spin/magnetisation
blocks), keeps negative pseudo-density values and accepts any grid shape and cell.
Every defect (truncated file, wrong grid counts, NaN/inf, unknown species) is an InputError
naming the file. The header is parsed here (pymatgen's Poscar guesses species for VASP 4
files silently); writing uses pymatgen's ``Chgcar``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ecdflow.errors import InputError


def _is_int_line(tokens: list[str]) -> bool:
    return bool(tokens) and all(t.lstrip("+-").isdigit() for t in tokens)


def _species_from_poscar(path: Path) -> list[str] | None:
    """Element symbols from the VASP 5 species line of a POSCAR/CONTCAR beside ``path``."""
    for name in ("POSCAR", "CONTCAR"):
        p = path.parent / name
        if p.is_file():
            lines = p.read_text().splitlines()
            if len(lines) > 6 and not _is_int_line(lines[5].split()):
                return lines[5].split()
    return None


def _valid_symbols(tokens: list[str]) -> bool:
    from pymatgen.core.periodic_table import Element

    return bool(tokens) and all(Element.is_valid_symbol(t.split("_")[0]) for t in tokens)


def _parse_header(lines: list[str], where: str, elements: Sequence[str] | None, path: Path):
    """Structure and the index of the grid line, from the POSCAR part of a CHGCAR."""
    from pymatgen.core import Lattice, Structure

    try:
        scale = float(lines[1].split()[0])
        lat = np.array([[float(v) for v in lines[i].split()[:3]] for i in (2, 3, 4)])
    except (IndexError, ValueError):
        raise InputError(where, "not a CHGCAR: bad scale or lattice lines") from None
    if lat.shape != (3, 3):
        raise InputError(where, "not a CHGCAR: lattice needs 3 numbers per line")
    # VASP: a negative scale is the cell volume
    factor = (-scale / abs(np.linalg.det(lat))) ** (1.0 / 3.0) if scale < 0 else scale
    lat *= factor
    row = 5
    tokens = lines[row].split() if len(lines) > row else []
    names: list[str] | None = None
    if not _is_int_line(tokens):
        names = [t.split("_")[0].split("/")[0] for t in tokens]
        row += 1
    try:
        counts = [int(t) for t in lines[row].split()]
    except (IndexError, ValueError):
        raise InputError(where, f"line {row + 1}: expected atom counts") from None
    if names is None:  # VASP 4
        comment = lines[0].split()
        names = (list(elements) if elements else _species_from_poscar(path)
                 or (comment if len(comment) == len(counts) and _valid_symbols(comment) else None))
        if names is None:
            raise InputError(where, "VASP 4 file without element names: pass elements= "
                                    "or put a POSCAR with an element line beside it")
    if len(names) != len(counts):
        raise InputError(where, f"{len(names)} element names for {len(counts)} atom counts")
    if not _valid_symbols(names):
        raise InputError(where, f"unknown element in {' '.join(names)}")
    row += 1
    if lines[row].strip()[:1].lower() == "s":  # Selective dynamics
        row += 1
    cart = lines[row].strip()[:1].lower() in ("c", "k")
    n = sum(counts)
    try:
        pos = np.array([[float(v) for v in lines[row + 1 + i].split()[:3]] for i in range(n)])
    except (IndexError, ValueError):
        raise InputError(where, f"truncated or bad atom positions (expected {n})") from None
    if cart:
        pos = pos * factor
    species = [el for el, c in zip(names, counts, strict=True) for _ in range(c)]
    structure = Structure(Lattice(lat), species, pos, coords_are_cartesian=cart)
    return structure, row + 1 + n


def read_chgcar(
    path: str | Path, elements: Sequence[str] | None = None
) -> tuple[object, np.ndarray]:
    """Read a CHGCAR: its structure and the total density rho (e/Å^3) on the file's grid.

    Args:
        path: CHGCAR (or PARCHG/AECCAR/CHG-like) file.
        elements: species for VASP 4 files without an element line (in file order).

    Returns:
        (pymatgen Structure, float32 array of shape (nx, ny, nz), index order x, y, z).

    Raises:
        InputError: missing/truncated file, bad header or grid counts, NaN/inf values.
    """
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise InputError(where, "no such file")
    text = path.read_text(errors="replace")
    lines = text.splitlines()
    if len(lines) < 9:
        raise InputError(where, "truncated: too short for a CHGCAR header")
    structure, row = _parse_header(lines, where, elements, path)
    while row < len(lines) and not lines[row].strip():
        row += 1
    if row >= len(lines):
        raise InputError(where, "truncated: no grid dimensions after the positions")
    tokens = lines[row].split()
    if len(tokens) != 3 or not _is_int_line(tokens) or min(int(t) for t in tokens) <= 0:
        raise InputError(where, f"line {row + 1}: expected three positive grid counts, "
                                f"got '{lines[row].strip()[:40]}'")
    shape = tuple(int(t) for t in tokens)
    n = shape[0] * shape[1] * shape[2]
    rest = "\n".join(lines[row + 1:])
    values = rest.split(None, n)[:n]
    if len(values) < n:
        raise InputError(where, f"truncated: {len(values)} of {n} density values "
                                f"for grid {shape[0]}x{shape[1]}x{shape[2]}")
    try:
        data = np.array(values, dtype=np.float64)
    except ValueError:
        bad = next(v for v in values if not _is_float(v))
        raise InputError(where, f"bad density value '{bad[:20]}'") from None
    if not np.all(np.isfinite(data)):
        raise InputError(where, f"{int(np.sum(~np.isfinite(data)))} NaN/inf density values")
    rho = data.reshape(shape[::-1]).transpose(2, 1, 0) / structure.volume
    return structure, np.ascontiguousarray(rho, dtype=np.float32)


def _is_float(v: str) -> bool:
    try:
        float(v)
    except ValueError:
        return False
    return True


def to_model_grid(structure, rho: np.ndarray, grid: int = 60, order: int = 3) -> np.ndarray:
    """Resample a density on ``structure``'s cell grid onto the conventional cube N^3.

    The cube frame is the one of ``ecdflow.density.procrystal_density`` (spglib standard
    setting): a primitive-cell and a conventional-cell file of the same crystal give the same
    picture. Interpolation is periodic (cubic B-spline for ``order=3``, trilinear for 1).

    Args:
        structure: the file's structure (any Fm-3m setting).
        rho: density (e/Å^3) on the file's grid, index order (x, y, z).
        grid: points per cube edge N.

    Returns:
        float32 array (N, N, N), e/Å^3, point i at cube fractional coordinate i/N.
    """
    from scipy.ndimage import map_coordinates

    from ecdflow.density import conventional_map

    P, p, _ = conventional_map(structure)
    u = np.arange(grid) / grid
    cube = np.stack(np.meshgrid(u, u, u, indexing="ij"), axis=0).reshape(3, -1)
    x = np.linalg.solve(P, cube - p[:, None])  # input-cell fractional coordinates
    coords = np.mod(x, 1.0) * np.array(rho.shape, dtype=float)[:, None]
    out = map_coordinates(np.asarray(rho, dtype=np.float64), coords, order=order,
                          mode="grid-wrap", prefilter=order > 1)
    return out.reshape(grid, grid, grid).astype(np.float32)


def write_chgcar(path: str | Path, structure, rho: np.ndarray) -> Path:
    """Write ``rho`` (e/Å^3, index order x, y, z, on ``structure``'s cell) as a VASP 5 CHGCAR
    (values rho * V), readable by VESTA and by ``read_chgcar``."""
    from pymatgen.io.vasp import Chgcar, Poscar

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(rho, dtype=np.float64) * structure.volume
    Chgcar(Poscar(structure), {"total": data}).write_file(str(path))
    return path
