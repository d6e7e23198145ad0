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
Units: lengths Å, wave vectors 1/Å (q = 2 pi |G|), densities e/Å^3.
"""

from __future__ import annotations

import math
from functools import cache, lru_cache

import numpy as np

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


def _fm3m_dataset(structure, symprec: float, require_fm3m: bool):
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer, SymmetryUndeterminedError

    name = structure.composition.reduced_formula
    try:
        ds = SpacegroupAnalyzer(structure, symprec=symprec).get_symmetry_dataset()
    except SymmetryUndeterminedError:
        raise InputError(name, "symmetry could not be determined") from None
    if ds is None:
        raise InputError(name, "symmetry could not be determined")
    cubic = 195 <= ds.number <= 230
    if (require_fm3m and ds.number != 225) or not cubic:
        raise InputError(name, f"space group {ds.international} ({ds.number}) is not Fm-3m (225)")
    return ds


_FCC_PRIMITIVE = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, 0.0]]) / 2.0
_FCC_SHIFTS = np.array([[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


@lru_cache(maxsize=1)
def _m3m_operations() -> np.ndarray:
    """The 48 point operations of m-3m about the origin (signed axis permutations)."""
    import itertools

    ops = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1.0, -1.0), repeat=3):
            m = np.zeros((3, 3))
            m[range(3), perm] = signs
            ops.append(m)
    return np.array(ops)


def _is_primitive(structure, tol: float = 1e-4) -> bool:
    """Whether no translation between two atoms of the same species (other than a lattice
    vector of the cell) maps the whole structure onto itself."""
    u = np.mod(structure.frac_coords, 1.0)
    z = np.array([site.specie.Z for site in structure])
    for j in np.flatnonzero(z == z[0])[1:]:
        moved = np.mod(u + (u[j] - u[0]), 1.0)
        d = np.abs(moved[:, None, :] - u[None, :, :])
        same = np.all(np.minimum(d, 1.0 - d) < tol, axis=2) & (z[:, None] == z[None, :])
        if same.any(axis=1).all():
            return False
    return True


def _standard_fast(structure, tol: float = 1e-4):
    """The same cube as ``_standard`` without spglib, for the common input: the cube-aligned
    primitive fcc cell (a/2 [[0,1,1],[1,0,1],[1,1,0]], rows in any order) with an atom at the
    origin, which is how the committed table stores every material. Returns None unless the
    cell is primitive (a 2x2x2 supercell of that cell has the same shape) and the
    expanded cube is verified invariant under all 48 m-3m operations about the origin (so the
    structure is Fm-3m with an m-3m site at the origin); the caller then uses spglib.
    Returns ``(P, p, a, species, frac)`` with the origin at the input's m-3m site; the
    canonical origin is chosen by the caller (:func:`canonical_origin`).
    """
    lat = structure.lattice.matrix
    a = 2.0 * float(np.abs(lat).max())
    unit = np.abs(lat) / a
    if not any(np.allclose(unit, _FCC_PRIMITIVE[list(p)], atol=tol)
               for p in ((0, 1, 2), (0, 2, 1), (1, 0, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0))):
        return None
    if not _is_primitive(structure, tol):
        return None  # a supercell of the fcc cell would pass as a cube of twice the edge
    u0 = np.mod(structure.cart_coords / a, 1.0)
    # snap float noise off special positions (multiples of 1/8: 4a, 4b, 8c, ...), as spglib's
    # symmetrised positions are exact: exact phases keep the density bitwise reproducible.
    # Free parameters (24e x near 1/4) differ from k/8 by far more than 1e-9 and stay.
    eighths = np.round(u0 * 8.0)
    u0 = np.mod(np.where(np.abs(u0 - eighths / 8.0) < 1e-9, eighths / 8.0, u0), 1.0)
    frac = np.mod((u0[:, None, :] + _FCC_SHIFTS[None, :, :]).reshape(-1, 3), 1.0)
    z = np.repeat([site.specie.Z for site in structure], 4)
    for op in _m3m_operations():
        moved = np.mod(frac @ op.T, 1.0)
        d = np.abs(moved[:, None, :] - frac[None, :, :])
        same = np.all(np.minimum(d, 1.0 - d) < tol, axis=2) & (z[:, None] == z[None, :])
        if not same.any(axis=1).all():
            return None
    species = [site.specie for site in structure for _ in range(4)]
    return (lat.T / a), np.zeros(3), a, species, frac


def _site_species(species: list, frac: np.ndarray, point: np.ndarray):
    """The species at cube fractional ``point`` (None when no atom sits there)."""
    d = np.abs(frac - point)
    hit = np.flatnonzero(np.all(np.minimum(d, 1.0 - d) < 1e-3, axis=1))
    return species[int(hit[0])] if len(hit) else None


def _environment(species: list, frac: np.ndarray, a: float, point: np.ndarray) -> tuple:
    """Sorted ((distance in Å rounded to 1e-3, Z), ...) of every atom of the cube seen from
    ``point`` (minimum image): a tie-breaker when the two m-3m sites hold the same species."""
    d = frac - point
    d = d - np.round(d)
    r = np.round(np.linalg.norm(d, axis=1) * a, 3)
    return tuple(sorted(zip(r.tolist(), (int(s.Z) for s in species), strict=True)))


def origin_key(specie, env: tuple = ()) -> tuple:
    """Sort key of a candidate origin (one of the two m-3m sites, 4a/4b): smaller wins.

    Occupied before empty, then lower Pauling electronegativity (the cation-like site;
    elements without a value sort last), then lower atomic number, then ``env`` (the site
    with the nearer nearest neighbour: e.g. the centre of an XO6/XCl6 octahedron).
    """
    import warnings

    if specie is None:
        return (1, math.inf, 0, env)
    with warnings.catch_warnings():  # pymatgen warns for noble gases (no Pauling value)
        warnings.simplefilter("ignore")
        x = float(getattr(specie, "X", math.nan))
    return (0, x if math.isfinite(x) else math.inf, int(specie.Z), env)


def canonical_origin(species: list, frac: np.ndarray, a: float) -> bool:
    """Whether the canonical origin is the cube centre (1/2,1/2,1/2) rather than the origin.

    THE frame rule of every ECD (procrystal, CHGCAR resampling, serving): of the two m-3m
    sites of a Fm-3m cube with an m-3m site at the origin (4a at 0, 4b at 1/2; the Euclidean
    normalizer of Fm-3m maps one onto the other by the half-cube translation), the one with
    the smaller :func:`origin_key` goes to the origin: the occupied one; of two occupied, the
    **less electronegative** species (the cation of an ionic compound: Na in NaCl, K in KCl,
    Mg in MgO, Ti in TiC, Mn in Cu2MnAl). Why not mass (the previous rule): mass orders
    cation and anion differently across a family (Cl > Na but K > Cl), so isostructural
    compounds reached the CNNs shifted by half a cube; electronegativity orders them by
    their chemical role. Fluorite-type cubes (one m-3m site empty) keep the occupied site at
    the origin (Ca in CaF2, O in Li2O, Pt in K2PtCl6). Ties (same species on both sites) go
    by the atom environment; exact ties mean the shift is a symmetry and the choice is moot.

    Args:
        species: pymatgen species of each atom of the cube.
        frac: cube fractional coordinates, shape (atoms, 3).
        a: cube edge (Å).
    """
    centre = np.full(3, 0.5)
    k0 = origin_key(_site_species(species, frac, np.zeros(3)))
    k1 = origin_key(_site_species(species, frac, centre))
    if k0[:3] == k1[:3]:
        k0 = (*k0[:3], _environment(species, frac, a, np.zeros(3)))
        k1 = (*k1[:3], _environment(species, frac, a, centre))
    return k1 < k0


def _standard(structure, symprec: float, require_fm3m: bool):
    """The standard cube in the canonical frame: (P, p, a, species, frac).

    The cube (axes, edge) is spglib's standard setting (or the spglib-free fast path for
    cube-aligned primitive cells); its origin is then put on the m-3m site chosen by
    :func:`canonical_origin`, so every setting of one crystal, and isostructural crystals
    alike, give the same picture.
    """
    fast = _standard_fast(structure)
    if fast is not None:
        P, p, a, species, frac = fast
    else:
        ds = _fm3m_dataset(structure, symprec, require_fm3m)
        a = float(np.cbrt(abs(np.linalg.det(np.asarray(ds.std_lattice, dtype=float)))))
        frac = np.mod(np.asarray(ds.std_positions, dtype=float), 1.0)
        # species via the shared primitive-atom index (spglib's std_types are type ids, not Z)
        prim = {int(j): site.specie
                for j, site in zip(ds.mapping_to_primitive, structure, strict=True)}
        species = [prim[int(j)] for j in ds.std_mapping_to_primitive]
        P = np.asarray(ds.transformation_matrix, dtype=float)
        p = np.asarray(ds.origin_shift, dtype=float)
    if canonical_origin(species, frac, a):
        frac = np.mod(frac + 0.5, 1.0)
        p = p + 0.5
    return P, p, a, species, frac


def conventional_map(structure, symprec: float = 1e-3, require_fm3m: bool = True):
    """Affine map from the input cell's fractional coordinates to the conventional cube.

    Returns ``(P, p, a)``: ``u = P @ x + p (mod 1)`` maps input fractional ``x`` to cube
    fractional ``u``; ``a`` is the cube edge (Å). Raises InputError for non-cubic structures
    (or non-Fm-3m ones when ``require_fm3m``).
    """
    P, p, a, _, _ = _standard(structure, symprec, require_fm3m)
    return P, p, a


def conventional_cell(structure, symprec: float = 1e-3, require_fm3m: bool = True):
    """The conventional standard cube (a x a x a, cube-aligned Cartesian axes) of a crystal.

    Uses pymatgen's ``SpacegroupAnalyzer`` (spglib standardisation, positions symmetrised),
    origin on the 4a/4b site chosen by :func:`canonical_origin` (the less electronegative
    species). Raises InputError if the structure is
    not cubic, or not Fm-3m when ``require_fm3m`` (the default).
    """
    from pymatgen.core import Lattice, Structure

    _, _, a, species, frac = _standard(structure, symprec, require_fm3m)
    return Structure(Lattice.cubic(a), species, frac)


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
    conv = conventional_cell(structure)
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
