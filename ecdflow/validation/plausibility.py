"""Physical plausibility of a labelled material: the one implementation of the rules.

Used by the Great Expectations materials suite (one boolean column per rule, checked by GX;
``ecdflow/validation/suites.py``) and by ``ecdflow data merge`` (failing rows are moved to a
quarantine file with the rules they failed; ``ecdflow/data/merge.py``).

Rules (thresholds in ``params.yaml`` section ``plausibility``, sources in
``ecdflow.config.PlausibilityConfig``); a rule whose inputs are missing (a composition-only
table has no elastic constants and no structure) is not applicable and passes:

=====================  ==========================================================================
``max_bulk_modulus``   K_VRH <= max_K_GPa (diamond 443 GPa)
``max_shear_modulus``  G_VRH <= max_G_GPa (diamond 535 GPa)
``max_elastic_const``  C11, C12, C44 <= max_C_GPa (diamond C11 1079 GPa)
``born_stability``     C11 - C12 > 0, C11 + 2 C12 > 0, C44 > 0 (cubic Born criteria; Born &
                       Huang, *Dynamical Theory of Crystal Lattices*, 1954; Mouhat & Coudert,
                       PRB 90, 224104 (2014))
``poisson_ratio``      poisson_min <= nu < poisson_max, nu = (3K - 2G) / (2 (3K + G)) from
                       K_VRH, G_VRH (nu < 0 <=> G > 1.5 K)
``c44_over_c11``       C44 <= max_C44_over_C11 * C11
``short_contact``      every interatomic distance d_ij >= min_contact_ratio * (r_i + r_j),
                       r = covalent radius (Cordero et al., Dalton Trans. 2008, 2832; pymatgen
                       ``CovalentRadius.radius``)
=====================  ==========================================================================

Not a rule but a flag: a row is *marginal* when C' = (C11 - C12)/2 or C44 is below
``marginal_GPa`` (stable, but barely; kept in the table and counted in the data card).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ecdflow.config import PlausibilityConfig

RULES = ("max_bulk_modulus", "max_shear_modulus", "max_elastic_const", "born_stability",
         "poisson_ratio", "c44_over_c11", "short_contact")
"""Rule names, in the order they are checked and reported."""

COLUMN_PREFIX = "plausible_"
"""GX column of a rule: ``plausible_<rule>`` (True: the row passes the rule)."""


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def poisson_ratio(k_gpa: float, g_gpa: float) -> float:
    """Isotropic Poisson ratio nu = (3K - 2G) / (2 (3K + G)) from K and G (GPa); NaN when
    undefined (3K + G = 0 or a value missing)."""
    den = 2.0 * (3.0 * k_gpa + g_gpa)
    return (3.0 * k_gpa - 2.0 * g_gpa) / den if den else math.nan


def shortest_contact(row: dict, cutoff_A: float = 6.0) -> tuple[float, str, float]:
    """(ratio, pair, distance in Å) of the row's closest pair relative to covalent radii:
    min over pairs (periodic images included) of d_ij / (r_i + r_j). NaN ratio when the row
    has no structure. Raises nothing: a structure pymatgen cannot build gives NaN."""
    if not isinstance(row.get("cell"), list):
        return math.nan, "", math.nan
    try:
        from pymatgen.analysis.molecule_structure_comparator import CovalentRadius

        from ecdflow.data.table import structure_of

        s = structure_of(row)
        centers, neighbors, _, dist = s.get_neighbor_list(cutoff_A)
    except Exception:  # noqa: BLE001 - a broken structure is the materials suite's finding
        return math.nan, "", math.nan
    if not len(dist):
        return math.nan, "", math.nan
    radius = CovalentRadius.radius
    sym = [site.specie.symbol for site in s]
    rsum = np.array([radius[sym[i]] + radius[sym[j]]
                     for i, j in zip(centers, neighbors, strict=True)])
    ratios = dist / rsum
    k = int(np.argmin(ratios))
    return (float(ratios[k]), "-".join(sorted((sym[centers[k]], sym[neighbors[k]]))),
            float(dist[k]))


def row_failures(row: dict, cfg: PlausibilityConfig) -> list[str]:
    """Names of the rules (``RULES``) that ``row`` fails; empty when it is plausible.

    ``row``: a materials-table row (GPa for C11, C12, C44, K_VRH, G_VRH; ``cell``,
    ``numbers``, Cartesian ``positions`` in Å).
    """
    k, g = _num(row.get("K_VRH")), _num(row.get("G_VRH"))
    c11, c12, c44 = (_num(row.get(c)) for c in ("C11", "C12", "C44"))
    failed = []
    if k > cfg.max_K_GPa:
        failed.append("max_bulk_modulus")
    if g > cfg.max_G_GPa:
        failed.append("max_shear_modulus")
    if any(c > cfg.max_C_GPa for c in (c11, c12, c44)):
        failed.append("max_elastic_const")
    if not any(math.isnan(c) for c in (c11, c12, c44)) and not (
            c11 - c12 > 0 and c11 + 2 * c12 > 0 and c44 > 0):
        failed.append("born_stability")
    nu = poisson_ratio(k, g)
    if not math.isnan(nu) and not cfg.poisson_min <= nu < cfg.poisson_max:
        failed.append("poisson_ratio")
    if c44 > cfg.max_C44_over_C11 * c11:
        failed.append("c44_over_c11")
    ratio = shortest_contact(row)[0]
    if ratio < cfg.min_contact_ratio:
        failed.append("short_contact")
    return failed


def is_marginal(row: dict, cfg: PlausibilityConfig) -> bool:
    """True when C' = (C11 - C12)/2 or C44 (GPa) is below ``cfg.marginal_GPa``."""
    c11, c12, c44 = (_num(row.get(c)) for c in ("C11", "C12", "C44"))
    return (c11 - c12) / 2.0 < cfg.marginal_GPa or c44 < cfg.marginal_GPa


def check_rows(rows: Iterable[dict], cfg: PlausibilityConfig) -> list[list[str]]:
    """``row_failures`` of every row, in order."""
    return [row_failures(r, cfg) for r in rows]


def rule_columns(rows: list[dict], cfg: PlausibilityConfig) -> dict[str, list[bool]]:
    """One boolean column per rule (``plausible_<rule>``: True when the row passes) plus
    ``marginal`` (bool), for the GX materials suite."""
    failures = check_rows(rows, cfg)
    cols = {COLUMN_PREFIX + rule: [rule not in f for f in failures] for rule in RULES}
    cols["marginal"] = [is_marginal(r, cfg) for r in rows]
    return cols


def split_plausible(rows: Iterable[dict], cfg: PlausibilityConfig
                    ) -> tuple[list[dict], list[dict]]:
    """(kept rows, quarantined rows); a quarantined row is the row plus ``failed_rules``."""
    kept, bad = [], []
    for r in rows:
        failed = row_failures(r, cfg)
        if failed:
            bad.append({**r, "failed_rules": failed})
        else:
            kept.append(r)
    return kept, bad
