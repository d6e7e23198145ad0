"""Fm-3m (space group 225) prototype families and their element-substitution pools.

Each family places species on Wyckoff sites of the conventional Fm-3m cube:
4a (0,0,0), 4b (1/2,1/2,1/2), 8c (1/4,1/4,1/4), 24e (x,0,0). The pools are chemically
sensible choices (common oxidation states, known compound classes) that cover the elements
frequent in the paper's FCC2170 set (Li Na K Rb Cs, F Cl Br, In Tl, Sc). Lanthanides and
actinides are excluded, as in the paper.

Lattice constants are only starting guesses (Å) from radii; the labeller relaxes them.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

ALKALI = ["Li", "Na", "K", "Rb", "Cs"]
HALOGEN = ["F", "Cl", "Br", "I"]
CHALCOGEN = ["O", "S", "Se", "Te"]
FOCUS = ALKALI + ["F", "Cl", "Br", "In", "Tl", "Sc"]
"""The elements most frequent in the paper's FCC2170 set, whose leave-one-element-out test
sets the benchmark must make large (150-400 materials each)."""
PARTNERS = [
    "H", "Li", "Be", "B", "C", "N", "O", "F", "Na", "Mg", "Al", "Si", "P", "S", "Cl", "K",
    "Ca", "Sc", "Ti", "V", "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga", "Ge", "As", "Se",
    "Br", "Rb", "Sr", "Y", "Zr", "Nb", "Mo", "Ru", "Rh", "Pd", "Ag", "Cd", "In", "Sn", "Sb",
    "Te", "I", "Cs", "Ba", "Hf", "Ta", "W", "Re", "Os", "Ir", "Pt", "Au", "Hg", "Tl", "Pb",
    "Bi",
]
"""Every stable, non-lanthanide, non-actinide, non-noble-gas element: the broad pool of the
``*-sub`` families (each candidate also holds one FOCUS element)."""


@dataclass(frozen=True)
class SiteSpec:
    """One Wyckoff orbit of the conventional Fm-3m cell.

    Attributes:
        role: name of the substitution slot ("A", "B", "X", ...).
        wyckoff: "4a", "4b", "8c" or "24e".
    """

    role: str
    wyckoff: str


@dataclass(frozen=True)
class Family:
    """A Fm-3m prototype family: sites, a formula template and the substitution pools."""

    name: str
    sites: tuple[SiteSpec, ...]
    pools: dict[str, list[str]]
    lattice_guess: Callable[[dict[str, str]], tuple[float, float]]
    distinct_roles: bool = True
    """Roles must hold different elements (True for compounds)."""
    require: tuple[str, ...] = ()
    """When set, every assignment holds at least one of these elements."""

    def assignments(self) -> Iterator[dict[str, str]]:
        """All role -> element assignments allowed by the pools, in a fixed order."""
        roles = list(self.pools)
        need = set(self.require)
        for combo in itertools.product(*(self.pools[r] for r in roles)):
            if self.distinct_roles and len(set(combo)) < len(combo):
                continue
            if need and not need.intersection(combo):
                continue
            yield dict(zip(roles, combo, strict=True))


def _radius(el: str, ionic: bool) -> float:
    """Radius guess in Å (average ionic radius where asked and known, else atomic)."""
    from pymatgen.core import Element

    e = Element(el)
    if ionic:
        r = float(e.average_ionic_radius or 0.0)
        if r > 0:
            return r
    return float(e.atomic_radius or 1.4)


def _a_fcc(s: dict[str, str]) -> tuple[float, float]:
    return 2.0 * math.sqrt(2.0) * _radius(s["A"], False), 0.0


def _a_rocksalt_ionic(s: dict[str, str]) -> tuple[float, float]:
    return 2.0 * (_radius(s["A"], True) + _radius(s["X"], True)), 0.0


def _a_rocksalt_covalent(s: dict[str, str]) -> tuple[float, float]:
    return 2.0 * (_radius(s["A"], False) + 0.5 * _radius(s["X"], False)) * 0.9, 0.0


def _a_tetra(d: float) -> float:
    """Cube edge (Å) for a 4a-8c nearest-neighbour distance d (Å)."""
    return 4.0 * d / math.sqrt(3.0)


def _a_fluorite(s: dict[str, str]) -> tuple[float, float]:
    return _a_tetra(_radius(s["A"], True) + _radius(s["X"], True)), 0.0


def _a_intermetallic(s: dict[str, str]) -> tuple[float, float]:
    rs = [_radius(v, False) for v in s.values()]
    return _a_tetra(2.0 * sum(rs) / len(rs)), 0.0


def _a_a2bx6(s: dict[str, str]) -> tuple[float, float]:
    d_bx = _radius(s["B"], True) + _radius(s["X"], True)
    d_ax = _radius(s["A"], True) + _radius(s["X"], True)
    x = 0.24
    a = max(d_bx / x, d_ax / math.sqrt((0.25 - x) ** 2 + 0.125))
    return a, d_bx / a


def _a_elpasolite(s: dict[str, str]) -> tuple[float, float]:
    d1 = _radius(s["B"], True) + _radius(s["X"], True)
    d2 = _radius(s["C"], True) + _radius(s["X"], True)
    a = 2.0 * (d1 + d2)
    x = d1 / a
    d_ax = _radius(s["A"], True) + _radius(s["X"], True)
    a = max(a, d_ax / math.sqrt((0.25 - x) ** 2 + 0.125))
    return a, d1 / a


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in [
        Family(
            "fcc-element",
            (SiteSpec("A", "4a"),),
            {"A": ["Al", "Ni", "Cu", "Rh", "Pd", "Ag", "Ir", "Pt", "Au", "Pb", "Ca", "Sr",
                   "Li", "Na", "K", "Rb", "Cs", "Sc", "In", "Tl", "Co", "Fe", "Ti", "V", "Y",
                   "Zr", "Nb", "Mo", "Ru", "Ta", "W", "Re", "Os", "Hf", "Mg", "Zn", "Cd",
                   "Be", "Ba", "Ga", "Sn", "Mn", "Cr"]},
            _a_fcc,
        ),
        Family(
            "rocksalt-ionic",
            (SiteSpec("A", "4a"), SiteSpec("X", "4b")),
            {"A": ALKALI + ["Ag", "Cu", "Tl", "In", "Mg", "Ca", "Sr", "Ba", "Zn", "Cd",
                            "Pb", "Sn", "Mn", "Fe", "Co", "Ni", "Sc", "Y", "Ga"],
             "X": HALOGEN + ["H"] + CHALCOGEN + ["N", "P", "As", "Sb", "Bi"]},
            _a_rocksalt_ionic,
        ),
        Family(
            "rocksalt-covalent",
            (SiteSpec("A", "4a"), SiteSpec("X", "4b")),
            {"A": ["Sc", "Ti", "V", "Cr", "Y", "Zr", "Nb", "Mo", "Hf", "Ta", "W", "Tc", "Re"],
             "X": ["C", "N", "B", "O"]},
            _a_rocksalt_covalent,
        ),
        Family(
            "fluorite",
            (SiteSpec("A", "4a"), SiteSpec("X", "8c")),
            {"A": ["Ca", "Sr", "Ba", "Cd", "Hg", "Pb", "Zr", "Hf", "Sc", "Y", "In", "Tl",
                   "Pt", "Pd", "Ni", "Co", "Ir", "Rh", "Au", "Mg", "Ti", "Sn", "Ge"],
             "X": ["F", "Cl", "Br", "H", "O", "S", "Si", "Ge", "Sn", "Al", "Ga", "In",
                   "Be", "Li", "Na"]},
            _a_fluorite,
        ),
        Family(
            "antifluorite",
            (SiteSpec("A", "8c"), SiteSpec("X", "4a")),
            {"A": ALKALI + ["Cu", "Ag", "Mg", "Be", "Tl", "In"],
             "X": ["O", "S", "Se", "Te", "Si", "Ge", "Sn", "Pb", "N", "P", "As", "Sb", "Bi",
                   "F", "Cl", "Br", "Sc", "Au", "Pt", "Ir"]},
            _a_fluorite,
        ),
        Family(
            "full-heusler",
            (SiteSpec("X", "8c"), SiteSpec("Y", "4a"), SiteSpec("Z", "4b")),
            {"X": ["Li", "Na", "K", "Rb", "Cs", "Cu", "Ag", "Au", "Ni", "Co", "Fe", "Pd",
                   "Pt", "Rh", "Ir", "Ru", "Mn", "Sc"],
             "Y": ["Sc", "Ti", "V", "Cr", "Mn", "Zr", "Hf", "Nb", "Ta", "Y", "Li", "Na",
                   "Mg", "Zn", "Cd", "Cu", "Ag", "In", "Tl"],
             "Z": ["Al", "Ga", "In", "Tl", "Si", "Ge", "Sn", "Pb", "Sb", "Bi", "Mg", "Zn",
                   "Cd", "As"]},
            _a_intermetallic,
        ),
        Family(
            "d03",
            (SiteSpec("A", "4b"), SiteSpec("A", "8c"), SiteSpec("B", "4a")),
            {"A": ALKALI + ["Cu", "Ag", "Fe", "Ni", "Mg", "Sc", "Tl", "In"],
             "B": ["N", "P", "As", "Sb", "Bi", "Al", "Ga", "In", "Tl", "Si", "Ge", "Sn",
                   "Au", "Pt", "Sc", "Y", "F", "Cl", "Br"]},
            _a_intermetallic,
        ),
        Family(
            "k2ptcl6",
            (SiteSpec("A", "8c"), SiteSpec("B", "4a"), SiteSpec("X", "24e")),
            {"A": ALKALI + ["Tl", "In", "Ag", "Cu"],
             "B": ["Si", "Ge", "Sn", "Pb", "Ti", "Zr", "Hf", "Pt", "Pd", "Se", "Te", "Mn",
                   "Re", "Os", "Ir", "Ru", "Rh", "Mo", "W", "Ni", "Tc", "Sc", "V", "Cr",
                   "Nb", "Ta"],
             "X": HALOGEN},
            _a_a2bx6,
        ),
        Family(
            "elpasolite",
            (SiteSpec("A", "8c"), SiteSpec("B", "4a"), SiteSpec("C", "4b"),
             SiteSpec("X", "24e")),
            {"A": ALKALI + ["Tl", "In", "Ag"],
             "B": ["Li", "Na", "K", "Rb", "Ag", "Cu", "Tl", "In", "Au"],
             "C": ["Sc", "Y", "In", "Tl", "Bi", "Sb", "Al", "Ga", "Fe", "Cr", "Ti", "V",
                   "Co", "Mo", "Rh", "Ir", "Au", "As", "Mn", "Ni", "Ru", "Nb", "Ta"],
             "X": ["F", "Cl", "Br", "I"]},
            _a_elpasolite,
        ),
        # Broad substitutions around the paper's frequent elements: the cheap (2-4 atom)
        # prototypes with any partner element, each candidate holding >= 1 FOCUS element.
        Family("rocksalt-sub", (SiteSpec("A", "4a"), SiteSpec("X", "4b")),
               {"A": PARTNERS, "X": PARTNERS}, _a_rocksalt_covalent, require=tuple(FOCUS)),
        Family("fluorite-sub", (SiteSpec("A", "4a"), SiteSpec("X", "8c")),
               {"A": PARTNERS, "X": PARTNERS}, _a_intermetallic, require=tuple(FOCUS)),
        Family("d03-sub", (SiteSpec("A", "4b"), SiteSpec("A", "8c"), SiteSpec("B", "4a")),
               {"A": PARTNERS, "B": PARTNERS}, _a_intermetallic, require=tuple(FOCUS)),
        Family("full-heusler-sub",
               (SiteSpec("X", "8c"), SiteSpec("Y", "4a"), SiteSpec("Z", "4b")),
               {"X": PARTNERS, "Y": PARTNERS, "Z": PARTNERS}, _a_intermetallic,
               require=tuple(FOCUS)),
    ]
}

WYCKOFF_225: dict[str, Callable[[float], list[tuple[float, float, float]]]] = {
    "4a": lambda x: [(0.0, 0.0, 0.0)],
    "4b": lambda x: [(0.5, 0.5, 0.5)],
    "8c": lambda x: [(0.25, 0.25, 0.25), (0.75, 0.75, 0.75)],
    "24e": lambda x: [(x, 0.0, 0.0), (-x, 0.0, 0.0), (0.0, x, 0.0), (0.0, -x, 0.0),
                      (0.0, 0.0, x), (0.0, 0.0, -x)],
}
"""Representative coordinates per Wyckoff orbit (before fcc centring translations)."""
