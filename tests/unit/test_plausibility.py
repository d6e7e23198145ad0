"""The physical-plausibility gate: one offender per rule fails that rule (library and GX),
the committed tables pass, the quarantined rows fail the rules they name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ecdflow.config import PlausibilityConfig, load_settings
from ecdflow.validation.plausibility import (
    COLUMN_PREFIX,
    RULES,
    is_marginal,
    poisson_ratio,
    row_failures,
    shortest_contact,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data/fcc"
CFG = PlausibilityConfig()


def _rows(path: Path) -> list[dict]:
    return [json.loads(ln) for ln in path.read_text().splitlines() if ln.strip()]


@pytest.fixture(scope="module")
def base() -> dict:
    """Rocksalt NaCl (committed structure) with round, plausible elastic numbers (GPa)."""
    nacl = next(r for r in _rows(DATA / "materials.jsonl") if r["formula"] == "NaCl")
    return dict(nacl, C11=50.0, C12=12.0, C44=13.0, K_VRH=25.0, G_VRH=15.0)


def _squeezed(row: dict, f: float) -> dict:
    return {**row, "cell": (np.array(row["cell"]) * f).tolist(),
            "positions": (np.array(row["positions"]) * f).tolist()}


OFFENDERS = {
    "max_bulk_modulus": {"K_VRH": 450.0, "G_VRH": 300.0},   # stiffer than diamond, nu 0.23
    "max_shear_modulus": {"K_VRH": 400.0, "G_VRH": 540.0},  # nu 0.03
    "max_elastic_const": {"C11": 1100.0},
    "born_stability": {"C12": 60.0},                         # C11 - C12 < 0
    "poisson_ratio": {"G_VRH": 40.0},                        # G > 1.5 K: nu < 0
    "c44_over_c11": {"C44": 110.0},                          # C44 > 2 C11
    "short_contact": "squeeze",                               # Na-Cl at 0.63 x (r_Na + r_Cl)
}


def _offender(base: dict, rule: str) -> dict:
    change = OFFENDERS[rule]
    row = _squeezed(base, 0.6) if change == "squeeze" else {**base, **change}
    return {**row, "material_id": f"bad:{rule}"}


def test_every_rule_has_an_offender():
    assert set(OFFENDERS) == set(RULES)


def test_the_base_row_passes(base):
    assert row_failures(base, CFG) == [] and not is_marginal(base, CFG)


@pytest.mark.parametrize("rule", RULES)
def test_one_offender_fails_exactly_its_rule(base, rule):
    assert row_failures(_offender(base, rule), CFG) == [rule]


@pytest.mark.parametrize(("k", "g", "nu"), [(25.0, 15.0, 0.25), (1.0, 1.5, 0.0),
                                            (3.0, 0.0, 0.5), (160.0, 1e-9, 0.5)])
def test_poisson_ratio_of_k_and_g(k, g, nu):
    assert poisson_ratio(k, g) == pytest.approx(nu, abs=1e-9)


@pytest.mark.parametrize(("c11", "c12", "c44", "marginal"), [
    (50.0, 12.0, 13.0, False), (50.0, 49.2, 13.0, True), (50.0, 12.0, 0.3, True),
    (50.0, 48.9, 0.6, False)])
def test_marginal_when_c_prime_or_c44_below_threshold(base, c11, c12, c44, marginal):
    assert is_marginal({**base, "C11": c11, "C12": c12, "C44": c44}, CFG) is marginal


def test_rows_without_structure_or_tensor_are_not_judged_on_them():
    row = {"material_id": "comp:NaCl", "formula": "NaCl", "K_VRH": 25.0, "G_VRH": 15.0}
    assert row_failures(row, CFG) == []
    assert row_failures({**row, "G_VRH": 60.0}, CFG) == ["poisson_ratio"]


@pytest.mark.parametrize(("formula", "pair", "lo", "hi"), [
    ("NaCu", "Cu-Na", 0.6, 0.70), ("KNb", "K-Nb", 0.6, 0.70), ("KHf", "Hf-K", 0.6, 0.70),
    ("RbTi", "Rb-Ti", 0.6, 0.70)])
def test_collapsed_alkali_transition_metal_pairs_are_quarantined(formula, pair, lo, hi):
    row = next(r for r in _rows(DATA / "quarantine-plausibility.jsonl")
               if r["formula"] == formula)
    ratio, got, _ = shortest_contact(row)
    assert got == pair and lo < ratio < hi and "short_contact" in row["failed_rules"]


@pytest.mark.parametrize("formula", ["K2O", "Rb2O", "Li2O", "Na2O", "NaCl", "CsCl", "Cs3Sb"])
def test_known_compounds_clear_the_contact_rule(formula):
    """Real compounds (antifluorite alkali oxides: the shortest cation-cation contacts of any
    known Fm-3m compound in the table) stay above the factor."""
    rows = [r for r in _rows(DATA / "materials.jsonl") if r["formula"] == formula]
    if not rows:
        pytest.skip(f"{formula} not in the table")
    assert shortest_contact(rows[0])[0] > CFG.min_contact_ratio + 0.05


@pytest.mark.parametrize("name", ["materials.jsonl", "materials-quick.jsonl"])
def test_committed_tables_pass_every_rule(name):
    rows = _rows(DATA / name)
    bad = {r["material_id"]: f for r in rows if (f := row_failures(r, CFG))}
    assert not bad


def test_quarantined_rows_fail_the_rules_they_name():
    settings = load_settings()
    bad = _rows(DATA / "quarantine-plausibility.jsonl")
    assert bad
    for r in bad:
        assert row_failures(r, settings.plausibility) == r["failed_rules"], r["material_id"]
    kept = {r["material_id"] for r in _rows(DATA / "materials.jsonl")}
    assert kept.isdisjoint(r["material_id"] for r in bad)


def test_gx_suite_fails_each_offender_naming_its_rule(tmp_path: Path, base):
    from ecdflow.validation.suites import (
        _context,
        materials_check_frame,
        materials_expectations,
        validate_frame,
    )

    settings = load_settings(overrides={"validation": {"min_rows": 3}})
    table = pd.DataFrame([base] + [_offender(base, rule) for rule in RULES])
    res = validate_frame(_context(tmp_path / "gx"), "materials",
                         materials_check_frame(table, settings),
                         materials_expectations(settings))
    failed = {e["column"]: e["failed_ids"] for e in res["expectations"]
              if not e["success"] and e["blocking"]}
    for rule in RULES:
        assert failed.pop(COLUMN_PREFIX + rule) == [f"bad:{rule}"]
        assert rule in next(e["why"] for e in res["expectations"]
                            if e["column"] == COLUMN_PREFIX + rule)
    # the offenders also trip the older bounds they overlap with (0 < G <= 600)
    assert set(failed) <= {"material_id", "G_VRH", "K_VRH"}, failed
