"""Seeded generation of the default Fm-3m benchmark structures (unlabelled).

Every structure is built on the conventional cube from its family's Wyckoff sites, checked to
be space group 225 with pymatgen's ``SpacegroupAnalyzer`` and stored as its primitive standard
cell, whose Cartesian axes stay aligned with the cube axes (so cubic strains are Cartesian).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from ecdflow.data.prototypes import FAMILIES, WYCKOFF_225, Family

DEFAULT_QUOTAS: dict[str, int] = {
    "fcc-element": 43,
    "rocksalt-ionic": 260,
    "rocksalt-covalent": 52,
    "fluorite": 170,
    "antifluorite": 150,
    "full-heusler": 520,
    "d03": 150,
    "k2ptcl6": 560,
    "elpasolite": 1000,
    "rocksalt-sub": 700,
    "fluorite-sub": 1200,
    "d03-sub": 1000,
    "full-heusler-sub": 3000,
}
"""Candidates drawn per family (before labelling drops Born-unstable ones). The ``*-sub``
families come last, so adding them left the first 2,903 candidates unchanged."""

EXCLUDED_Z = set(range(57, 72)) | set(range(89, 104))
"""Lanthanides and actinides (atomic numbers), excluded as in the paper."""


@dataclass(frozen=True)
class Candidate:
    """One generated, unlabelled Fm-3m structure.

    Attributes:
        material_id: stable id, ``<family>:<reduced formula>``.
        family: prototype family name.
        structure: pymatgen ``Structure`` (primitive standard cell, Å).
    """

    material_id: str
    family: str
    structure: object


FCC_TRANSLATIONS = ((0.0, 0.0, 0.0), (0.0, 0.5, 0.5), (0.5, 0.0, 0.5), (0.5, 0.5, 0.0))


def build_conventional(family: Family, assignment: dict[str, str]):
    """Build the conventional Fm-3m cube (pymatgen ``Structure``) for one substitution."""
    from pymatgen.core import Lattice, Structure

    a, x = family.lattice_guess(assignment)
    x = min(max(x or 0.24, 0.18), 0.32)
    species, coords = [], []
    for site in family.sites:
        for c in WYCKOFF_225[site.wyckoff](x):
            for t in FCC_TRANSLATIONS:
                species.append(assignment[site.role])
                coords.append([(c[i] + t[i]) % 1.0 for i in range(3)])
    return Structure(Lattice.cubic(a), species, coords)


def is_fm3m(structure, symprec: float = 1e-3) -> bool:
    """True when ``structure`` has space group 225 (Fm-3m)."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer, SymmetryUndeterminedError

    try:
        return SpacegroupAnalyzer(structure, symprec=symprec).get_space_group_number() == 225
    except SymmetryUndeterminedError:
        return False


def primitive_standard(structure):
    """The primitive standard cell of a Fm-3m structure, cube-aligned Cartesian frame."""
    from pymatgen.symmetry.analyzer import SpacegroupAnalyzer

    return SpacegroupAnalyzer(structure, symprec=1e-3).get_primitive_standard_structure()


def _allowed(assignment: dict[str, str]) -> bool:
    from pymatgen.core import Element

    return all(Element(e).Z not in EXCLUDED_Z for e in assignment.values())


def generate(
    seed: int = 0,
    quotas: dict[str, int] | None = None,
    families: Iterable[str] | None = None,
) -> list[Candidate]:
    """Draw a seeded, deduplicated list of Fm-3m candidates.

    Args:
        seed: random seed; the same seed and quotas give the same list.
        quotas: number of candidates per family (default ``DEFAULT_QUOTAS``).
        families: restrict to these family names.

    Returns:
        Candidates in a deterministic order, unique by reduced formula.
    """
    quotas = dict(DEFAULT_QUOTAS if quotas is None else quotas)
    names = list(families) if families is not None else list(quotas)
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[Candidate] = []
    for name in names:
        fam = FAMILIES[name]
        pool = [a for a in fam.assignments() if _allowed(a)]
        rng.shuffle(pool)
        taken = 0
        for assignment in pool:
            if taken >= quotas.get(name, 0):
                break
            conv = build_conventional(fam, assignment)
            formula = conv.composition.reduced_formula
            if formula in seen or not is_fm3m(conv):
                continue
            seen.add(formula)
            out.append(Candidate(f"{name}:{formula}", name, primitive_standard(conv)))
            taken += 1
    return out


def to_record(c: Candidate) -> dict:
    """A JSON-able record of a candidate: id, family, formula, cell (Å), numbers, positions."""
    s = c.structure
    return {
        "material_id": c.material_id,
        "family": c.family,
        "formula": s.composition.reduced_formula,
        "cell": s.lattice.matrix.tolist(),
        "numbers": [int(site.specie.Z) for site in s],
        "positions": s.cart_coords.tolist(),
    }
