"""Valence procrystal electronic charge density (ECD) on the conventional Fm-3m cube.

The procrystal is a superposition of neutral free-atom valence densities (docs/data.md):

* each atom's valence shells (outermost s/p shell plus open d/f shells) are Slater orbitals
  whose exponents come from Slater's screening rules (0.30/0.35/0.85/1.00, effective
  principal quantum numbers n* = 1, 2, 3, 3.7, 4.0, 4.2);
* a Slater orbital density rho(r) ~ r^(2n*-2) exp(-2 zeta r) has the normalised form factor
  f(q) = (a/sqrt(a^2+q^2))^m * a*sin(m*atan(q/a)) / (m*q), a = 2 zeta, m = 2 n*, f(0) = 1;
* rho(G) = sum over species of (occupation-weighted f) * structure factor, damped by a
  Gaussian of width ``smearing_A`` (Å) to remove ringing, then an inverse real FFT.

The result integrates exactly (to float rounding) to the valence electron count of the cell.
Units: lengths Å, wave vectors 1/Å (q = 2 pi |G|), densities e/Å^3. The cube and its origin
(the frame) come from ``ecdflow.cube.conventional_cell``.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np

from ecdflow.cube import conventional_cell
from ecdflow.errors import InputError

BOHR_A = 0.529177210903
"""Bohr radius in Å."""
N_EFF = {1: 1.0, 2: 2.0, 3: 3.0, 4: 3.7, 5: 4.0, 6: 4.2, 7: 4.2}
"""Slater's effective principal quantum number n* per n (n = 7 reuses 4.2)."""

Shell = tuple[int, str, float]
"""(n, l letter, occupation) of one orbital group."""


def _slater_group(n: int, lc: str) -> tuple[int, int]:
    """Ordering key of Slater's groups: [1s][2sp][3sp][3d][4sp][4d][4f][5sp][5d]..."""
    return (n, 0) if lc in "sp" else (n, 1 if lc == "d" else 2)


@cache
def valence_shells(symbol: str) -> tuple[tuple[float, float, float], ...]:
    """Valence orbital groups of a neutral free atom as (occupation, zeta in 1/Å, n*).

    Valence = the outermost s/p shell plus open d/f shells (Pd, 4d10 5s0, keeps only 4d10).
    Raises InputError for unknown symbols.
    """
    from pymatgen.core import Element

    try:
        el = Element(symbol)
    except (ValueError, KeyError):
        raise InputError(symbol, "unknown element") from None
    conf: list[Shell] = [(int(n), str(lc), float(o)) for n, lc, o in el.full_electronic_structure]
    # merge s and p of the same n into one Slater group
    groups: dict[tuple[int, int], float] = {}
    for n, lc, occ in conf:
        key = _slater_group(n, lc)
        groups[key] = groups.get(key, 0.0) + occ
    n_sp = max(n for n, lc, _ in conf if lc in "sp")
    # a filled d shell beyond the outermost s/p shell (Pd 4d10 5s0) is the valence by itself
    d_outer = any(kind == 1 and n >= n_sp for n, kind in groups)
    full = {"d": 10.0, "f": 14.0}
    out = []
    for (n, kind), occ in sorted(groups.items()):
        if kind == 0:
            valence = n == n_sp and not d_outer
        else:
            cap = full["d" if kind == 1 else "f"]
            valence = occ < cap - 1e-9 or n >= n_sp
        if not valence or occ <= 0:
            continue
        zeta_bohr = (el.Z - _shielding(groups, n, kind)) / N_EFF[n]
        out.append((occ, zeta_bohr / BOHR_A, N_EFF[n]))
    return tuple(out)


def _shielding(groups: dict[tuple[int, int], float], n: int, kind: int) -> float:
    """Slater screening constant for one electron of group (n, kind)."""
    s = 0.0
    for (m, k), occ in groups.items():
        if (m, k) == (n, kind):
            s += (occ - 1.0) * (0.30 if n == 1 else 0.35)
        elif kind == 0:  # s/p electron
            if m == n - 1:
                s += 0.85 * occ
            elif m < n - 1:
                s += 1.00 * occ
        elif (m, k) < (n, kind):  # d/f electron: every group to the left screens fully
            s += 1.00 * occ
    return s


def valence_electrons(symbol: str) -> float:
    """Number of valence electrons of a neutral free atom (as used by the procrystal)."""
    return float(sum(occ for occ, _, _ in valence_shells(symbol)))


def form_factor(q: np.ndarray, zeta: float, n_eff: float) -> np.ndarray:
    """Normalised form factor f(q) (f(0) = 1) of a Slater orbital density.

    Args:
        q: wave-vector magnitudes (1/Å, q = 2 pi |G|).
        zeta: orbital exponent (1/Å); the density decays as exp(-2 zeta r).
        n_eff: Slater effective principal quantum number n*.
    """
    a, m = 2.0 * zeta, 2.0 * n_eff
    q = np.asarray(q, dtype=np.float64)
    qs = np.where(q > 0, q, 1.0)
    f = (a / np.sqrt(a * a + qs * qs)) ** m * a * np.sin(m * np.arctan(qs / a)) / (m * qs)
    return np.where(q > 0, f, 1.0)


def species_form_factor(symbol: str, q: np.ndarray) -> np.ndarray:
    """Occupation-weighted valence form factor of one element (electrons; value at q=0)."""
    return sum(occ * form_factor(q, z, n) for occ, z, n in valence_shells(symbol))


@lru_cache(maxsize=16)
def _cube_index(grid: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Integer Miller indices on the rFFT grid: (h, l-half, h^2+k^2+l^2 as int32)."""
    h = np.fft.fftfreq(grid, 1.0 / grid).astype(np.int64)
    lh = np.arange(grid // 2 + 1, dtype=np.int64)
    hkl2 = (h[:, None, None] ** 2 + h[None, :, None] ** 2 + lh[None, None, :] ** 2)
    return h, lh, hkl2.astype(np.int32)


def _phases(frac: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """exp(-2 pi i idx * frac) per atom and index: shape (atoms, len(idx)), complex64."""
    return np.exp(-2j * np.pi * np.outer(frac, idx)).astype(np.complex64)


def _structure_factor(frac: np.ndarray, h: np.ndarray, lh: np.ndarray) -> np.ndarray:
    """sum_j exp(-2 pi i (h x_j + k y_j + l z_j)) on the rFFT grid (separable, one matmul)."""
    ex, ey, ez = _phases(frac[:, 0], h), _phases(frac[:, 1], h), _phases(frac[:, 2], lh)
    n, nl = len(h), len(lh)
    xy = (ex[:, :, None] * ey[:, None, :]).reshape(len(frac), n * n)
    return (xy.T @ ez).reshape(n, n, nl)


def density_on_cube(
    symbols: list[str], frac: np.ndarray, a: float, grid: int = 60, smearing_A: float = 0.1
) -> np.ndarray:
    """Procrystal valence density (e/Å^3) on an N^3 grid of a cube of edge ``a`` (Å).

    Args:
        symbols: element symbol of each atom.
        frac: fractional coordinates in the cube, shape (atoms, 3).
        a: cube edge (Å).
        grid: points per edge; point i at fractional i/grid, index order (x, y, z).
        smearing_A: Gaussian smearing width (Å).
    """
    import scipy.fft

    h, lh, hkl2 = _cube_index(grid)
    kmax = int(hkl2.max())
    q_tab = 2.0 * np.pi * np.sqrt(np.arange(kmax + 1, dtype=np.float64)) / a
    damp = np.exp(-0.5 * (q_tab * smearing_A) ** 2)
    frac = np.asarray(frac, dtype=np.float64)
    symbols = list(symbols)
    rho_g = np.zeros(hkl2.shape, dtype=np.complex64)
    for sym in sorted(set(symbols)):
        sel = np.array([s == sym for s in symbols])
        table = (species_form_factor(sym, q_tab) * damp).astype(np.float32)
        rho_g += table[hkl2] * _structure_factor(frac[sel], h, lh)
    volume = a**3
    rho = scipy.fft.irfftn(rho_g, s=(grid, grid, grid), workers=-1)
    return (rho * (grid**3 / volume)).astype(np.float32)


def density_on_cell(structure, shape: tuple[int, int, int], smearing_A: float = 0.1) -> np.ndarray:
    """Procrystal valence density (e/Å^3) on the structure's own cell and grid ``shape``.

    Works for any (also non-orthogonal) cell; grid point (i, j, k) sits at fractional
    (i/n1, j/n2, k/n3). Used to write CHGCAR-like data for primitive cells.
    """
    import scipy.fft

    n1, n2, n3 = (int(v) for v in shape)
    idx = [np.fft.fftfreq(n1, 1.0 / n1), np.fft.fftfreq(n2, 1.0 / n2), np.arange(n3 // 2 + 1)]
    recip = np.linalg.inv(structure.lattice.matrix).T  # rows b_i, cycles/Å
    g = (idx[0][:, None, None, None] * recip[0] + idx[1][None, :, None, None] * recip[1]
         + idx[2][None, None, :, None] * recip[2])
    q = 2.0 * np.pi * np.linalg.norm(g, axis=-1)
    damp = np.exp(-0.5 * (q * smearing_A) ** 2)
    symbols = [site.specie.symbol for site in structure]
    frac = structure.frac_coords
    rho_g = np.zeros(q.shape, dtype=np.complex128)
    for sym in sorted(set(symbols)):
        sel = np.array([s == sym for s in symbols])
        ph = np.exp(-2j * np.pi * (frac[sel, 0][:, None, None, None] * idx[0][:, None, None]
                                   + frac[sel, 1][:, None, None, None] * idx[1][None, :, None]
                                   + frac[sel, 2][:, None, None, None] * idx[2][None, None, :]))
        rho_g += species_form_factor(sym, q) * damp * ph.sum(axis=0)
    rho = scipy.fft.irfftn(rho_g, s=(n1, n2, n3))
    return (rho * (n1 * n2 * n3 / structure.volume)).astype(np.float32)


def procrystal_density(structure, grid: int = 60, smearing_A: float = 0.1) -> np.ndarray:
    """Valence procrystal ECD of a Fm-3m crystal on its conventional cube.

    Args:
        structure: pymatgen ``Structure`` (any setting: primitive or conventional cell).
        grid: points per cube edge N.
        smearing_A: Gaussian smearing width (Å).

    Returns:
        float32 array (N, N, N) in e/Å^3, index order (x, y, z), point i at fractional i/N;
        ``rho.sum() * a**3 / N**3`` equals the valence electron count of the cube.

    Raises:
        InputError: the structure is not Fm-3m or holds an unknown element.
    """
    return procrystal_on_cube(conventional_cell(structure), grid, smearing_A)


def procrystal_on_cube(conv, grid: int = 60, smearing_A: float = 0.1) -> np.ndarray:
    """:func:`procrystal_density` of a crystal whose conventional cube ``conv`` (pymatgen
    ``Structure``, cube-aligned, canonical origin: ``ecdflow.cube.conventional_cell``) is
    already known, e.g. found once while serving checks the input. Same units and shape."""
    symbols = [site.specie.symbol for site in conv]
    return density_on_cube(symbols, conv.frac_coords, conv.lattice.a, grid, smearing_A)


def density_realspace(structure, grid: int, cutoff_A: float = 8.0) -> np.ndarray:
    """Naive reference: unsmeared procrystal on the conventional cube by a real-space sum
    over periodic images (slow; the baseline of bench/bench_ecd.py and a test oracle)."""
    conv = conventional_cell(structure)
    a = conv.lattice.a
    u = np.arange(grid) / grid
    pts = np.stack(np.meshgrid(u, u, u, indexing="ij"), axis=-1).reshape(-1, 3) * a
    nimg = int(math.ceil(cutoff_A / a))
    shifts = np.array([(i, j, k) for i in range(-nimg, nimg + 1)
                       for j in range(-nimg, nimg + 1) for k in range(-nimg, nimg + 1)]) * a
    rho = np.zeros(len(pts))
    for site in conv:
        shells = valence_shells(site.specie.symbol)
        for shift in shifts:
            r = np.linalg.norm(pts - (site.coords + shift), axis=1)
            near = r < cutoff_A
            rn = r[near]
            for occ, zeta, n_eff in shells:
                aa, m = 2.0 * zeta, 2.0 * n_eff
                norm = aa ** (m + 1) / (4.0 * math.pi * math.gamma(m + 1))
                rho[near] += occ * norm * rn ** (m - 2) * np.exp(-aa * rn)
    return rho.reshape(grid, grid, grid).astype(np.float32)


def electron_count(rho: np.ndarray, volume_A3: float) -> float:
    """Integral of a density on a periodic grid: sum * voxel volume (electrons)."""
    return float(np.sum(rho, dtype=np.float64) * volume_A3 / rho.size)
