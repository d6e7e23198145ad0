"""Calibrated prediction intervals (split-conformal on out-of-fold residuals) and the
out-of-domain rule of the served model.

**Interval.** Each CV fold model's predictions on its own test fold are out-of-sample, so
their residuals are exchangeable with the residual of a new material drawn like the training
set. With nonconformity scores s_i (n of them) and miscoverage alpha, the split-conformal
quantile is the ``ceil((n + 1)(1 - alpha))``-th smallest score (infinite when that rank
exceeds n), and ``[y_hat - q, y_hat + q]`` covers a new label with probability >= 1 - alpha
(Angelopoulos & Bates 2021, "A Gentle Introduction to Conformal Prediction and
Distribution-Free Uncertainty Quantification", arXiv:2107.07511, Sec. 1-2; Lei et al. 2018,
JASA 113:1094). Scores:

- ``abs``: s = |y - y_hat| (GPa), interval ``y_hat ± q``;
- ``log``: s = |log10 y - log10 y_hat| (models trained on log10 GPa), interval
  ``[y_hat 10^-q, y_hat 10^q]`` (relative width, always positive).

The served prediction is the mean of the fold models; each calibration residual comes from
one fold model, whose error is typically no smaller than the mean's, so the served interval
is, if anything, conservative in domain. Not done: normalising the score by the ensemble
spread (it needs every member's prediction on each calibration material, and all but one of
the members were trained on it). MAPIE 1.6 installs with our pins, but its regressors call
``predict`` on the calibration inputs themselves (ECD grids here) instead of taking the
stored out-of-fold predictions, so the quantile is computed here (:func:`conformal_quantile`).

**Measured coverage** (:func:`coverage_table`): nested over CV folds (calibrate on the test
residuals of the other folds, evaluate on the held-out fold, pooled) and on each
leave-one-element-out test set (calibrated on all CV residuals). LOEO coverage is usually
below nominal: a held-out element breaks exchangeability.

**Out of domain** (:class:`Domain`): an input is flagged when (1) it holds an element absent
from every training material, or (2) its nearest-neighbour Euclidean distance to the training
set in standardised Magpie space (training mean/std per feature; constant features and NaN
set to 0) exceeds the ``ood_percentile`` (99th) percentile of the training set's
leave-one-out nearest-neighbour distances.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

DEFAULT_COVERAGE = 0.9
OOD_PERCENTILE = 99.0
SCORES = ("abs", "log")


def pct(coverage: float) -> int:
    """Metric suffix of a coverage level: 0.9 -> 90."""
    return int(round(100 * coverage))


def conformal_quantile(scores: Sequence[float] | np.ndarray, coverage: float) -> float:
    """Split-conformal quantile: the ``ceil((n + 1) * coverage)``-th smallest score.

    Args:
        scores: n >= 1 finite nonconformity scores of the calibration set (e.g. |residual|,
            GPa); non-finite values are dropped.
        coverage: 1 - alpha, in (0, 1).

    Returns:
        q (same unit as the scores); ``inf`` when the rank exceeds n (too few calibration
        points for that coverage).

    Raises:
        ValueError: coverage outside (0, 1) or no finite score.

    Source: Angelopoulos & Bates 2021 (arXiv:2107.07511), Eq. (1) and Theorem D.1.
    """
    if not 0 < coverage < 1:
        raise ValueError(f"coverage {coverage} is not in (0, 1)")
    s = np.sort(np.asarray(scores, float)[np.isfinite(np.asarray(scores, float))])
    n = len(s)
    if n == 0:
        raise ValueError("no finite calibration scores")
    k = math.ceil((n + 1) * coverage)
    return float(s[k - 1]) if k <= n else math.inf


def scores_of(y_true: np.ndarray, y_pred: np.ndarray, score: str = "abs") -> np.ndarray:
    """Nonconformity scores (``abs``: GPa; ``log``: decades; NaN where log is undefined)."""
    y, p = np.asarray(y_true, float), np.asarray(y_pred, float)
    if score == "abs":
        return np.abs(y - p)
    if score == "log":
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.abs(np.log10(y) - np.log10(p))
        return np.where(np.isfinite(s), s, np.nan)
    raise ValueError(f"unknown score '{score}' (use one of {SCORES})")


def interval(y_pred: np.ndarray, q: float, score: str = "abs") -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) in GPa around predictions (GPa) for the quantile ``q`` of ``score``."""
    p = np.asarray(y_pred, float)
    if score == "log":
        return p * 10.0 ** (-q), p * 10.0 ** q
    return p - q, p + q


def coverage_of(y_true, y_pred, q: float, score: str = "abs") -> tuple[float, float]:
    """(empirical coverage in [0, 1], mean interval width in GPa) of ``interval(y_pred, q)``."""
    lo, hi = interval(y_pred, q, score)
    y = np.asarray(y_true, float)
    return float(np.mean((y >= lo) & (y <= hi))), float(np.mean(hi - lo))


def mean_over_repeats(preds: pd.DataFrame) -> pd.DataFrame:
    """One row per material and test split: ``y_pred`` averaged over the repeats (the members
    trained on the same split with other seeds), other columns from the first repeat.

    The served ensemble averages its members, so a material's calibration residual is that of
    its split's members together, not one per repeat (which would count each material as many
    times as there are repeats). Rows without a ``repeat`` column pass unchanged.
    """
    if "repeat" not in preds.columns or preds.empty:
        return preds
    keys = [c for c in ("model", "target", "split_kind", "split", "fold", "material_id")
            if c in preds.columns]
    first = {c: "first" for c in preds.columns if c not in (*keys, "y_pred", "repeat", "run_id")}
    out = preds.groupby(keys, sort=False, dropna=False).agg(
        {**first, "y_pred": "mean", "repeat": "size"}).reset_index()
    return out.rename(columns={"repeat": "n_repeats"})


def coverage_table(preds: pd.DataFrame, coverage: float = DEFAULT_COVERAGE,
                   score_of: dict | None = None) -> pd.DataFrame:
    """Coverage and width of the conformal interval per model, target and test set.

    Args:
        preds: out-of-sample predictions (GPa) with columns model, target, split_kind
            (``cv``/``loeo``), split, fold, y_true, y_pred (``ecdflow.evaluate.load_predictions``).
        coverage: nominal 1 - alpha.
        score_of: score per model type (default ``abs``).

    Returns:
        Rows model, target, test_set (``cv`` = nested over folds, pooled; ``loeo-<El>``; and
        ``loeo`` = all LOEO test sets pooled), n, nominal, coverage, width_gpa, q (the
        quantile: GPa for ``abs``, decades for ``log``), score.
    """
    rows = []
    for (model, target), df in preds.groupby(["model", "target"]):
        score = (score_of or {}).get(model, "abs")
        cv = df[df.split_kind == "cv"]
        if cv.empty:
            continue
        s_cv = scores_of(cv.y_true, cv.y_pred, score)
        hits, widths = [], []
        for split in sorted(cv.split.unique()):
            held = (cv.split == split).to_numpy()
            if held.all():
                continue
            q = conformal_quantile(s_cv[~held], coverage)
            lo, hi = interval(cv.y_pred[held], q, score)
            y = cv.y_true[held].to_numpy(float)
            hits.append((y >= lo) & (y <= hi))
            widths.append(hi - lo)
        base = {"model": model, "target": target, "nominal": coverage, "score": score}
        if hits:
            h, w = np.concatenate(hits), np.concatenate(widths)
            rows.append({**base, "test_set": "cv", "n": len(h), "coverage": float(h.mean()),
                         "width_gpa": float(np.mean(w)), "q": math.nan})
        q_all = conformal_quantile(s_cv, coverage)
        loeo = df[df.split_kind == "loeo"]
        for split, d in sorted(loeo.groupby("split")):
            c, w = coverage_of(d.y_true, d.y_pred, q_all, score)
            rows.append({**base, "test_set": str(split), "n": len(d), "coverage": c,
                         "width_gpa": w, "q": q_all})
        if not loeo.empty:
            c, w = coverage_of(loeo.y_true, loeo.y_pred, q_all, score)
            rows.append({**base, "test_set": "loeo", "n": len(loeo), "coverage": c,
                         "width_gpa": w, "q": q_all})
    cols = ["model", "target", "test_set", "n", "nominal", "coverage", "width_gpa", "q", "score"]
    return pd.DataFrame(rows, columns=cols)


def coverage_metrics(table: pd.DataFrame) -> dict[str, float]:
    """MLflow metrics of one model/target's :func:`coverage_table` rows: ``coverage_90``,
    ``interval_width_90`` (CV, nested), ``loeo_coverage_90``, ``loeo_interval_width_90``
    (pooled) and ``loeo_coverage_90_<El>`` per held-out element (90 = the nominal level)."""
    out: dict[str, float] = {}
    for r in table.itertuples():
        p = pct(r.nominal)
        if r.test_set == "cv":
            out[f"coverage_{p}"], out[f"interval_width_{p}"] = r.coverage, r.width_gpa
        elif r.test_set == "loeo":
            out[f"loeo_coverage_{p}"], out[f"loeo_interval_width_{p}"] = r.coverage, r.width_gpa
        else:
            out[f"loeo_coverage_{p}_{r.test_set.removeprefix('loeo-')}"] = r.coverage
    return out


def score_for(log_target: bool) -> str:
    """The score of a model: ``log`` for models trained on log10(GPa), else ``abs``."""
    return "log" if log_target else "abs"


def scores_by_model(runs: Iterable, default_log_target: bool) -> dict[str, str]:
    """Score per model type of MLflow training runs (their ``*log_target`` param, else the
    default), for :func:`coverage_table`."""
    from ecdflow.tracking import TAG_MODEL

    out: dict[str, str] = {}
    for r in runs:
        vals = [str(v).lower() in ("true", "1", "yes") for k, v in r.data.params.items()
                if k.split(".")[-1] == "log_target"]
        out.setdefault(r.data.tags.get(TAG_MODEL, ""),
                       score_for(vals[0] if vals else default_log_target))
    return out


def calibration(cv_preds: pd.DataFrame, coverage: float = DEFAULT_COVERAGE,
                score: str = "abs") -> dict:
    """The calibration record stored with a registered model (JSON-able).

    Args:
        cv_preds: the model's CV test-fold predictions (columns y_true, y_pred, GPa).

    Returns:
        coverage, score, q, n (finite calibration scores), scores (sorted), method, source.
    """
    s = scores_of(cv_preds.y_true, cv_preds.y_pred, score)
    s = np.sort(s[np.isfinite(s)])
    return {"coverage": coverage, "score": score, "q": conformal_quantile(s, coverage),
            "n": int(len(s)), "scores": [float(v) for v in s],
            "method": "split-conformal on CV test-fold residuals of the fold models",
            "source": "Angelopoulos & Bates 2021, arXiv:2107.07511"}


class Domain:
    """Applicability domain of a training set (see the module doc for the rule).

    Args:
        x_train: (n, 132) Magpie features of the training materials (NaN allowed).
        elements: every element symbol present in the training materials.
        percentile: the distance threshold's percentile of the training leave-one-out
            nearest-neighbour distances.
    """

    def __init__(self, x_train: np.ndarray, elements: Iterable[str],
                 percentile: float = OOD_PERCENTILE, *, mean=None, std=None,
                 threshold: float | None = None):
        x = np.asarray(x_train, float)
        self.mean = np.nanmean(x, axis=0) if mean is None else np.asarray(mean, float)
        sd = np.nanstd(x, axis=0) if std is None else np.asarray(std, float)
        self.std = np.where(np.isfinite(sd) & (sd > 0), sd, 1.0)
        self.mean = np.where(np.isfinite(self.mean), self.mean, 0.0)
        self.z = self.standardise(x)
        self.elements = sorted(set(elements))
        self.percentile = float(percentile)
        if threshold is None:
            threshold = (float(np.percentile(self._nn(self.z, loo=True), percentile))
                         if len(self.z) > 1 else math.inf)
        self.threshold = float(threshold)

    def standardise(self, x: np.ndarray) -> np.ndarray:
        z = (np.asarray(x, float) - self.mean) / self.std
        return np.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)

    def _nn(self, z: np.ndarray, loo: bool = False) -> np.ndarray:
        from sklearn.neighbors import NearestNeighbors

        k = 2 if loo else 1
        nn = NearestNeighbors(n_neighbors=k).fit(self.z)
        d, _ = nn.kneighbors(z)
        return d[:, k - 1]

    def check(self, x: np.ndarray, elements: Sequence[Iterable[str]]) -> list[str]:
        """Why each row is out of domain ("" when in domain).

        Args:
            x: (m, 132) Magpie features of the inputs.
            elements: each input's element symbols.

        Returns:
            m reasons, e.g. ``element(s) Xe never seen in training`` and/or ``Magpie distance
            7.1 > 5.3 (99th percentile of training nearest-neighbour distances)``.
        """
        out = [""] * len(elements)
        if len(elements) == 0:
            return out
        d = self._nn(self.standardise(x))
        known = set(self.elements)
        for i, els in enumerate(elements):
            why = []
            new = sorted(set(els) - known)
            if new:
                why.append(f"element(s) {' '.join(new)} never seen in training")
            if not np.isfinite(d[i]) or d[i] > self.threshold:
                why.append(f"Magpie distance {d[i]:.2f} > {self.threshold:.2f} "
                           f"({self.percentile:g}th percentile of training nearest-neighbour "
                           "distances)")
            out[i] = "; ".join(why)
        return out

    def save(self, path) -> None:
        """Write the domain as ``.npz`` (z-scored training matrix, mean, std, threshold,
        percentile, elements)."""
        np.savez_compressed(path, z=self.z.astype(np.float32), mean=self.mean, std=self.std,
                            threshold=self.threshold, percentile=self.percentile,
                            elements=np.array(self.elements))

    @classmethod
    def load(cls, path) -> Domain:
        """Read a domain written by :meth:`save`."""
        f = np.load(path, allow_pickle=False)
        obj = cls.__new__(cls)
        obj.mean, obj.std, obj.z = f["mean"], f["std"], f["z"].astype(float)
        obj.threshold, obj.percentile = float(f["threshold"]), float(f["percentile"])
        obj.elements = [str(e) for e in f["elements"]]
        return obj
