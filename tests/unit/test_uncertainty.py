"""Conformal quantile (finite-sample coverage), the coverage table and the out-of-domain rule
(ecdflow.uncertainty), and the served density-source rule (ecdflow.serve_input.density_mismatch)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from ecdflow.uncertainty import (
    Domain,
    conformal_quantile,
    coverage_metrics,
    coverage_table,
    interval,
    scores_of,
)

SEEDS = range(8)


@pytest.mark.parametrize(("n", "coverage", "rank"), [
    (10, 0.9, 10), (19, 0.9, 18), (99, 0.9, 90), (100, 0.9, 91), (9, 0.8, 8), (50, 0.5, 26)])
def test_quantile_rank_is_the_finite_sample_one(n, coverage, rank):
    """q is the ceil((n+1)(1-alpha))-th smallest score (Angelopoulos & Bates 2021, Eq. 1)."""
    scores = np.random.default_rng(n).permutation(np.arange(1.0, n + 1))
    assert conformal_quantile(scores, coverage) == rank


@pytest.mark.parametrize("n", [5, 9, 18])
def test_quantile_infinite_when_rank_exceeds_n(n):
    assert math.isinf(conformal_quantile(np.ones(n), 0.95))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.1, 1.5])
def test_quantile_refuses_bad_coverage(bad):
    with pytest.raises(ValueError, match="not in"):
        conformal_quantile([1.0, 2.0], bad)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("n", "coverage"), [(20, 0.9), (50, 0.9), (39, 0.8)])
def test_marginal_coverage_within_binomial_bounds(seed, n, coverage):
    """Over many calibration/test draws, P(y in interval) lies in [1-alpha, 1-alpha+1/(n+1)]
    (continuous scores); the hit count must sit inside the 99.9% binomial bounds of that."""
    rng = np.random.default_rng(seed)
    trials = 2000
    hits = 0
    for _ in range(trials):
        y = rng.standard_t(3, size=n + 1) * rng.uniform(0.5, 2.0)  # heavy tails, any scale
        pred = np.zeros(n + 1)
        q = conformal_quantile(scores_of(y[:n], pred[:n]), coverage)
        lo, hi = interval(pred[n:], q)
        hits += int(lo[0] <= y[n] <= hi[0])
    p_lo, p_hi = coverage, min(1.0, math.ceil((n + 1) * coverage) / (n + 1))
    assert binom.ppf(0.0005, trials, p_lo) <= hits <= binom.ppf(0.9995, trials, p_hi)


def test_naive_quantile_undercovers_where_the_correction_does_not():
    """Why the (n+1) correction: with n = 9 at 90%, the plain 90th percentile covers ~82%."""
    rng = np.random.default_rng(0)
    y = np.abs(rng.normal(size=(20000, 10)))
    naive = np.quantile(y[:, :9], 0.9, axis=1)  # linear interpolation, no correction
    corrected = np.array([conformal_quantile(r, 0.9) for r in y[:, :9]])
    assert np.mean(y[:, 9] <= naive) < 0.85
    assert np.mean(y[:, 9] <= corrected) >= 0.89


def test_log_score_interval_is_relative_and_positive():
    lo, hi = interval(np.array([10.0, 200.0]), 0.1, "log")
    assert np.allclose(lo, [10 / 10**0.1, 200 / 10**0.1]) and np.allclose(hi / lo, 10**0.2)
    assert np.isnan(scores_of([0.0], [1.0], "log")[0])


def _preds(seed: int, n: int = 400, folds: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.uniform(20, 300, n)
    cv = pd.DataFrame({"model": "m", "target": "K_VRH", "split_kind": "cv",
                       "split": [f"cv-{i % folds}" for i in range(n)], "y_true": y,
                       "y_pred": y + rng.normal(0, 10, n)})
    loeo = pd.DataFrame({"model": "m", "target": "K_VRH", "split_kind": "loeo",
                         "split": "loeo-Cs", "y_true": y[:50],
                         "y_pred": y[:50] + rng.normal(0, 30, 50)})  # shifted: harder
    return pd.concat([cv, loeo], ignore_index=True)


@pytest.mark.parametrize("seed", SEEDS)
def test_coverage_table_nested_cv_near_nominal_and_loeo_honest(seed):
    t = coverage_table(_preds(seed), 0.9).set_index("test_set")
    assert t.loc["cv", "n"] == 400
    assert binom.ppf(0.0005, 400, 0.9) / 400 <= t.loc["cv", "coverage"] \
        <= binom.ppf(0.9995, 400, 0.9 + 1 / 321) / 400
    assert t.loc["cv", "width_gpa"] == pytest.approx(2 * 1.645 * 10, rel=0.2)
    assert t.loc["loeo-Cs", "coverage"] < 0.75  # 3x the noise: the table shows it, unhidden
    m = coverage_metrics(t.reset_index())
    assert set(m) == {"coverage_90", "interval_width_90", "loeo_coverage_90",
                      "loeo_interval_width_90", "loeo_coverage_90_Cs"}


def _brute_loo_nn(z: np.ndarray) -> np.ndarray:
    d = np.linalg.norm(z[:, None] - z[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    return d.min(axis=1)


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_domain_threshold_is_99th_percentile_of_loo_nn(seed):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(120, 6)) * [1, 10, 100, 1, 1, 0]  # scales differ; one constant
    dom = Domain(x, ["Na", "Cl"])
    z = (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1)
    assert dom.threshold == pytest.approx(np.percentile(_brute_loo_nn(z), 99))


@pytest.mark.parametrize("seed", SEEDS[:4])
def test_domain_flags_far_points_and_unseen_elements(seed, tmp_path):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(200, 5))
    dom = Domain(x, ["Na", "Cl", "K"])
    far = np.full((1, 5), 50.0)
    q = np.vstack([x[:3], far, x[3:4], [[np.nan] * 5]])
    els = [["Na", "Cl"], ["K", "Cl"], ["Na"], ["Na", "Cl"], ["Xe", "Cl"], ["Na"]]
    why = dom.check(q, els)
    assert why[:3] == ["", "", ""]  # training points themselves: distance 0
    assert "Magpie distance" in why[3] and "99th percentile" in why[3]
    assert why[4] == "element(s) Xe never seen in training"
    assert why[5] == ""  # NaN features -> the training mean (distance to the cloud centre)
    dom.save(tmp_path / "d.npz")
    back = Domain.load(tmp_path / "d.npz")
    assert back.check(q, els) == why and back.threshold == dom.threshold


def test_density_mismatch_refuses_chgcar_for_procrystal_model_unless_allowed():
    from ecdflow.serve_input import Parsed, density_mismatch

    rows = [Parsed(ecd=np.zeros((4, 4, 4))), Parsed(structure=object()), Parsed(error="x: bad")]
    where = ["CHGCAR_Cu", "NaCl.cif", "x"]
    proc = {"inputs": ["ecd"], "density_source": {"kind": "procrystal", "grid": 4}}
    out, flags = density_mismatch(rows, proc, where, allow=False)
    assert out[0].error.startswith("CHGCAR_Cu: density source chgcar differs from the model's "
                                   "training density (procrystal)") and "\n" not in out[0].error
    assert out[1].error == "" and out[2].error == "x: bad" and flags == ["", "", ""]
    out, flags = density_mismatch(rows, proc, where, allow=True)
    assert out[0].error == "" and "density source chgcar differs" in flags[0] and flags[1] == ""
    # a CHGCAR-trained model refuses procrystal (structure) input instead
    out, _ = density_mismatch(rows, {**proc, "density_source": {"kind": "chgcar"}}, where, False)
    assert out[0].error == "" and "density source procrystal differs" in out[1].error
    # a Magpie model reads compositions only: no density rule
    out, flags = density_mismatch(rows, {"inputs": ["magpie"]}, where, False)
    assert [p.error for p in out] == ["", "", "x: bad"]
    # a manifest without density_source (registered before the field) means procrystal
    out, _ = density_mismatch(rows, {"inputs": ["ecd"]}, where, False)
    assert "training density (procrystal)" in out[0].error


@pytest.mark.parametrize(("manifest", "kind"), [
    ({"grid": 32, "ecd_source": "procrystal"}, "procrystal"),
    ({"grid": 32, "ecd_source": "chgcar"}, "chgcar"),
    ({"grid": 32}, "procrystal"),  # manifests before the field: procrystal
    ({"grid": 0, "has_density": False, "ecd_source": "none"}, "none"),
])
def test_records_density_kind_and_source(manifest, kind):
    from ecdflow.records import density_kind, density_source

    assert density_kind(manifest) == kind
    src = density_source(kind, manifest["grid"], 0.1)
    assert src["kind"] == kind and src["grid"] == manifest["grid"]
    assert ("smearing_A" in src) == (kind == "procrystal")
    if kind == "procrystal":
        assert src["smearing_A"] == 0.1 and "Slater" in src["model"]
