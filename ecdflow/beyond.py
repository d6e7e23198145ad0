"""Issue 15's "one model beyond the paper": tabular candidates compared with the RF + Magpie +
volume baseline on the pipeline's own CV folds, per target, with paired tests.

The features come straight from the materials table (no records needed): Magpie
(``ecdflow.features.magpie_features``, (n, 132)), the volume per atom (Å^3/atom) and the
Fourier-orbit invariants (``ecdflow.density_invariants.ecd_invariants``, (n, 55)) of the
procrystal density (``ecdflow.density.procrystal_density``, e/Å^3) at the profile's grid,
cached in one ``.npz`` (the cubes themselves, 0.9 MB each at 60^3, are not kept). The folds
are ``ecdflow.splits.get_splits`` of the table's ids with the profile's seed and fold count,
i.e. the folds every pipeline model of that profile trains on.

Metrics are in GPa (a log10-target model is scored after 10**); per fold: RMSE, MAE, R2.
Paired tests against the baseline use scipy: ``wilcoxon`` and ``ttest_rel`` on the 5 per-fold
RMSEs (with 5 pairs the smallest two-sided Wilcoxon p is 1/16 = 0.0625), and a Wilcoxon
signed-rank test on the per-material squared errors (all materials, each predicted once).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ecdflow.results import regression_metrics
from ecdflow.schema import TARGETS

FEATURE_SETS = ("mv", "mv+inv")
"""``mv``: Magpie + volume per atom (133 columns); ``mv+inv``: plus the 55 density invariants."""


@dataclass(frozen=True)
class Candidate:
    """One compared model: an estimator factory (seed -> unfitted estimator), the feature set
    (one of ``FEATURE_SETS``) and whether it fits log10 of the modulus."""

    name: str
    make: Callable[[int], Any]
    features: str
    log_target: bool
    description: str


def _rf(seed: int) -> Any:
    """The ``rf_magpie_volume`` estimator exactly as configured (its ``build``, defaults)."""
    from ecdflow.models import get_spec

    spec = get_spec("rf_magpie_volume")
    return spec.build(spec.config({"n_jobs": 1}), 0, seed=seed)


def _hgb(seed: int) -> Any:
    """Histogram gradient boosting, fixed before measuring (no tuning on the folds): 400
    iterations at learning rate 0.05, no early stopping, other scikit-learn defaults (the
    ``gbm_magpie_volume_ecdinv`` booster; the log10 target is applied by :func:`run_cv`)."""
    from ecdflow.models import get_spec

    spec = get_spec("gbm_magpie_volume_ecdinv")
    return spec.build(spec.config({"log10_target": False}), 0, seed=seed)


def candidates() -> list[Candidate]:
    """The eight compared models; the first is the baseline (``rf_magpie_volume``)."""
    out = []
    for est, make, what in (("rf", _rf, "random forest, 50 trees (rf_magpie_volume)"),
                            ("hgb", _hgb, "hist. gradient boosting, 400 x 0.05")):
        for log in (False, True):
            for feats in FEATURE_SETS:
                name = f"{est}_{feats.replace('+', '_')}{'_log' if log else ''}"
                out.append(Candidate(name, make, feats, log, what + (" + density invariants"
                           if feats == "mv+inv" else "") + (", log10 target" if log else "")))
    return out


def table_rows(path: str | Path) -> list[dict]:
    """The materials table's rows (JSON lines)."""
    return [json.loads(ln) for ln in Path(path).read_text().splitlines() if ln.strip()]


def table_features(rows: list[dict], grid: int, smearing_A: float, cache: str | Path | None
                   ) -> dict[str, np.ndarray]:
    """Per material, in table order: ``material_id``, ``magpie`` (n, 132) float32,
    ``volume_per_atom`` (n,) Å^3/atom, ``ecd_inv`` (n, 55) float64, ``K_VRH``/``G_VRH`` GPa.

    ``cache``: an ``.npz`` reused when its key (table content, grid, smearing) matches.
    """
    from ecdflow.data.table import structure_of
    from ecdflow.density import procrystal_density
    from ecdflow.density_invariants import ecd_invariants
    from ecdflow.features import magpie_features, volume_per_atom

    key = hashlib.sha256(json.dumps([rows, grid, smearing_A], sort_keys=True).encode()
                         ).hexdigest()[:16]
    if cache is not None and Path(cache).exists():
        z = np.load(cache, allow_pickle=False)
        if str(z["key"]) == key:
            return {k: z[k] for k in z.files if k != "key"}
    ids = [r["material_id"] for r in rows]
    inv = np.empty((len(rows), len(ecd_invariants(np.ones((grid,) * 3)))))
    vol = np.empty(len(rows))
    for i, r in enumerate(rows):
        s = structure_of(r)
        vol[i] = volume_per_atom(s, r["material_id"])
        inv[i] = ecd_invariants(procrystal_density(s, grid, smearing_A), r["material_id"])
    out = {"material_id": np.array(ids), "magpie": magpie_features([r["formula"] for r in rows]),
           "volume_per_atom": vol, "ecd_inv": inv,
           **{t: np.array([float(r[t]) for r in rows]) for t in TARGETS}}
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(cache, key=np.array(key), **out)
    return out


def feature_matrix(data: dict[str, np.ndarray], features: str) -> np.ndarray:
    """(n, 133) Magpie + volume, or (n, 188) with the invariants (``FEATURE_SETS``), the
    column order of ``ecdflow.features.tabular_matrix``."""
    cols = [data["magpie"].astype(np.float64), data["volume_per_atom"].reshape(-1, 1)]
    if features == "mv+inv":
        cols.append(data["ecd_inv"])
    elif features != "mv":
        raise ValueError(f"unknown feature set {features!r} (valid: {FEATURE_SETS})")
    return np.hstack(cols)


def cv_folds(settings: Any, rows: list[dict], data_hash: str) -> list[tuple[np.ndarray,
                                                                             np.ndarray]]:
    """(fit, test) row indices of the profile's CV folds (``get_splits``), in fold order; as
    in ``ecdflow.train``, the fit set is the fold's training set minus the seeded validation
    fraction (``splits.validation_ids``, ``training.validation_fraction``), which the
    pipeline's scikit-learn models never see either."""
    import pandas as pd

    from ecdflow.splits import get_splits, validation_ids

    index = pd.DataFrame({"material_id": [r["material_id"] for r in rows],
                          "formula": [r["formula"] for r in rows],
                          "elements": [r["elements"] for r in rows]})
    splits = get_splits(settings, index, data_hash)
    pos = {m: i for i, m in enumerate(index.material_id)}
    out = []
    for k in range(settings.splits.n_folds):
        train = splits[f"cv-{k}"]["train"]
        val = set(validation_ids(train, settings.training.validation_fraction, settings.seed))
        out.append((np.array([pos[m] for m in sorted(set(train) - val)]),
                    np.array([pos[m] for m in splits[f"cv-{k}"]["test"]])))
    return out


def run_cv(data: dict[str, np.ndarray], folds: list, cands: list[Candidate], seed: int,
           targets: tuple[str, ...] = TARGETS, cache: str | Path | None = None) -> dict:
    """Every candidate on every target and fold: ``{target: {name: {"folds": [metrics per
    fold, + fit_seconds], "pred": per-material predictions (GPa, table order)}}}``.

    ``cache``: a folder where each (target, candidate) result is kept as JSON (keyed by the
    fold test sets and the seed) and reused, so an interrupted comparison resumes."""
    from ecdflow.log import get_logger

    log = get_logger(__name__)
    fold_key = hashlib.sha256(json.dumps([[(tr.tolist(), te.tolist()) for tr, te in folds],
                                          seed]).encode()).hexdigest()[:12]
    out: dict = {}
    for t in targets:
        y = data[t]
        out[t] = {}
        for c in cands:
            hit = Path(cache) / f"{t}-{c.name}-{fold_key}.json" if cache else None
            if hit is not None and hit.exists():
                got = json.loads(hit.read_text())
                out[t][c.name] = {"folds": got["folds"], "pred": np.array(got["pred"])}
                continue
            x = feature_matrix(data, c.features)
            pred = np.full(len(y), np.nan)
            per = []
            for tr, te in folds:
                est = c.make(seed)
                t0 = time.perf_counter()
                est.fit(x[tr], np.log10(y[tr]) if c.log_target else y[tr])
                secs = time.perf_counter() - t0
                p = est.predict(x[te]).astype(np.float64)
                pred[te] = np.power(10.0, p) if c.log_target else p
                per.append({**regression_metrics(y[te], pred[te]), "fit_seconds": secs})
            out[t][c.name] = {"folds": per, "pred": pred}
            log.info("%s %s: RMSE %.2f GPa (fit %.1f s per fold)", t, c.name,
                     float(np.mean([f["test_rmse_gpa"] for f in per])),
                     float(np.mean([f["fit_seconds"] for f in per])))
            if hit is not None:
                hit.parent.mkdir(parents=True, exist_ok=True)
                hit.write_text(json.dumps({"folds": per, "pred": pred.tolist()}))
    return out


def paired_tests(res: dict, y: dict[str, np.ndarray], baseline: str) -> dict:
    """Per target and candidate: mean/std over folds of RMSE, MAE, R2 (GPa) and the paired
    p-values against ``baseline`` (fold RMSEs: Wilcoxon, t; per-material squared errors:
    Wilcoxon, with ``median_d_abs_err`` the median per-material change of |error|, GPa).
    Two-sided; a positive ``delta_rmse`` means worse than the baseline."""
    from scipy.stats import ttest_rel, wilcoxon

    out: dict = {}
    for t, by_model in res.items():
        out[t] = {}
        base = by_model[baseline]
        b_rmse = np.array([f["test_rmse_gpa"] for f in base["folds"]])
        b_se = (base["pred"] - y[t]) ** 2
        for name, r in by_model.items():
            rmse = np.array([f["test_rmse_gpa"] for f in r["folds"]])
            row: dict = {}
            for key, label in (("test_rmse_gpa", "rmse"), ("test_mae_gpa", "mae"),
                               ("test_r2", "r2"), ("fit_seconds", "fit_seconds")):
                v = np.array([f[key] for f in r["folds"]])
                row[label] = {"mean": float(v.mean()), "std": float(v.std(ddof=1))}
            row["delta_rmse"] = float((rmse - b_rmse).mean())
            if name != baseline:
                se = (r["pred"] - y[t]) ** 2
                row["p_wilcoxon_folds"] = float(wilcoxon(rmse, b_rmse).pvalue)
                row["p_ttest_folds"] = float(ttest_rel(rmse, b_rmse).pvalue)
                row["p_wilcoxon_materials"] = float(wilcoxon(se, b_se).pvalue)
                row["median_d_abs_err"] = float(np.median(np.sqrt(se) - np.sqrt(b_se)))
                row["folds_better"] = int((rmse < b_rmse).sum())
            out[t][name] = row
    return out
