"""VASP CHGCAR files: read the total density, resample it onto the model cube, write it back.

CHGCAR values are rho * V_cell (V in Å^3), x fastest. ``read_chgcar`` returns rho in e/Å^3 on
the file's own grid, index order (x, y, z); parsing lives in the input layer
(``ecdflow.io.vasp``: VASP 4/5 headers, total block of spin/non-collinear files, compressed
files, any name). Negative pseudo-density values are kept; any grid shape and cell is accepted.
Every defect is an InputError naming the file. Writing uses pymatgen's ``Chgcar``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np


def read_chgcar(
    path: str | Path, elements: Sequence[str] | None = None, where: str | None = None
) -> tuple[object, np.ndarray]:
    """Read a CHGCAR: its structure and the total density rho (e/Å^3) on the file's grid.

    The file may be gzip/bzip2/xz-compressed and named anything; its content must be a VASP
    volumetric file (``ecdflow.io.vasp``: first block = total density, spin/non-collinear
    blocks and augmentation occupancies after it are ignored).

    Args:
        path: CHGCAR (or PARCHG/AECCAR/CHG-like) file.
        elements: species for VASP 4 files without an element line (in file order).
        where: the name used in errors (default: ``path``).

    Returns:
        (pymatgen Structure, float32 array of shape (nx, ny, nz), index order x, y, z).

    Raises:
        InputError: missing/truncated file, not a volumetric file (e.g. a POSCAR), bad header
            or grid counts, NaN/inf values.
    """
    from ecdflow.io.raw import read_text
    from ecdflow.io.vasp import parse_volumetric

    path = Path(path)
    where = where or str(path)
    vol = parse_volumetric(read_text(path, where), where, elements, path)
    return vol.structure, vol.rho


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

    from ecdflow.cube import conventional_map

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
