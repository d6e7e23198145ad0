"""The conventional Fm-3m cube of a crystal and the frame rule: which cube, which origin.

Every density path (procrystal ``ecdflow.density``, CHGCAR ``ecdflow.chgcar``, the served
model) samples the ECD on the cube this module returns: spglib's standard setting (or a
spglib-free fast path for cube-aligned primitive fcc cells, verified against the full m-3m
symmetry), with its origin on the m-3m site (4a or 4b) chosen by :func:`canonical_origin`
(docs/data.md, "The origin rule"). Lengths in Å, coordinates fractional.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from ecdflow.errors import InputError


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
