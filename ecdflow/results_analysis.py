"""The measured parts of ``docs/results/`` beyond the paper's tables (``ecdflow.results_doc``
writes the page): progress of a run against its plan, per-family CV errors, and the
nearest-neighbour statistic beside the paper's t-SNE claim (4). All errors in GPa.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ecdflow.config import Settings

RUN_KEY = ["model", "target", "split", "repeat"]
MAGPIE_MODELS = ("rf_magpie", "cnn_magpie")
ECD_MODELS = ("cnn3d", "cnn2d_se")
PAPER_MODELS = ("rf_magpie", "cnn_magpie", "cnn3d", "cnn2d_se", "fusion")
"""The paper's five models: its claims are judged among these only."""


def density_models() -> tuple[str, ...]:
    """Every zoo model that reads the charge density (an ``ecd`` input: the paper's ECD CNNs,
    fusion, and the density-invariant models beyond the paper)."""
    from ecdflow.models import MODELS
    from ecdflow.schema import INPUT_ECD

    return tuple(m for m, spec in MODELS.items() if INPUT_ECD in spec.inputs)
MIN_ELEMENTS = 5
"""Fewer held-out elements than this: no correlation is stated."""


# ------------------------------------------------------------------ progress


def planned_runs(settings: Settings) -> pd.DataFrame:
    """The training runs the plan holds: one row per task (``ecdflow.plan.build_plan``)
    and repeat (``ecdflow.train.run_repeats``); columns model, target, split, split_kind,
    fold, repeat (int), task (the task's display name)."""
    from ecdflow.plan import build_plan
    from ecdflow.splits import split_kind
    from ecdflow.train import run_repeats

    rows = [{"model": t.model, "target": t.target, "split": t.split,
             "split_kind": split_kind(t.split)[0], "fold": split_kind(t.split)[1],
             "repeat": r, "task": t.task_name}
            for t in build_plan(settings) for r in range(run_repeats(settings, t.model, t.split))]
    return pd.DataFrame(rows, columns=[*RUN_KEY[:3], "split_kind", "fold", "repeat", "task"])


def dedupe_runs(runs: pd.DataFrame) -> pd.DataFrame:
    """One finished run per model/target/split/repeat (the first row kept: MLflow lists the
    newest first), so a fit logged twice in one pipeline run is not counted twice."""
    return runs.drop_duplicates(RUN_KEY, keep="first").reset_index(drop=True)


def progress(planned: pd.DataFrame, runs: pd.DataFrame) -> dict:
    """Finished vs planned: ``runs_done``/``runs_planned`` (training runs, i.e. repeats),
    ``tasks_done``/``tasks_planned`` (a task is done when all its repeats are), and ``table``
    (split_kind, target, model, finished, planned) of the planned models. ``runs``: one row
    per finished run (``dedupe_runs``); runs outside the plan are not counted."""
    done = planned.merge(runs[RUN_KEY].astype({"repeat": int}), on=RUN_KEY, how="inner")
    tasks = planned.assign(done=planned.set_index(RUN_KEY).index.isin(
        done.set_index(RUN_KEY).index)).groupby("task")["done"].all()
    g = planned.groupby(["split_kind", "target", "model"], sort=False).size()
    f = done.groupby(["split_kind", "target", "model"]).size()
    table = pd.DataFrame({"finished": f.reindex(g.index, fill_value=0), "planned": g})
    return {"runs_done": len(done), "runs_planned": len(planned),
            "tasks_done": int(tasks.sum()), "tasks_planned": len(tasks),
            "table": table.reset_index()}


def missing_runs(planned: pd.DataFrame | None, runs: pd.DataFrame, kind: str, target: str,
                 models) -> str | None:
    """Why a paired comparison of ``models`` (one split kind and target) is not complete:
    e.g. ``"incomplete: fusion 3 of 10 planned runs finished"``; None when every planned run
    of them has finished (or no plan is given)."""
    if planned is None:
        return None
    p = planned[(planned.split_kind == kind) & (planned.target == target)
                & planned.model.isin(models)]
    prog = progress(p, runs)["table"]
    short = [f"{r.model} {r.finished} of {r.planned}" for r in prog.itertuples()
             if r.finished < r.planned]
    return f"incomplete: {', '.join(short)} planned runs finished" if short else None


# ------------------------------------------------------------------ per family


def family_errors(preds: pd.DataFrame, families: pd.Series, min_n: int) -> pd.DataFrame:
    """Per target and family of the CV test predictions: n (distinct test materials), label
    mean and std (GPa, over those materials), and per model the RMSE (GPa) of the predictions
    pooled over folds, one per repeat, then the mean over repeats; ``best`` names the lowest;
    ``flag`` says "n < min_n" when the family has fewer test materials. Only the CV folds that
    every model of the target has predicted are used (all of them once a run has finished),
    so the models are compared on the same materials.

    Args:
        preds: ``ecdflow.evaluate.load_predictions`` rows (material_id, y_true, y_pred, model,
            target, split_kind, fold, repeat).
        families: material_id -> family (the materials table's ``family`` column).
        min_n: ``report.min_element_n``.
    """
    cols = ["target", "family", "n", "label mean (GPa)", "label std (GPa)"]
    cv = preds[preds.split_kind == "cv"]
    common = {t: set.intersection(*(set(g.fold) for _, g in d.groupby("model")))
              for t, d in cv.groupby("target")}
    cv = cv[np.array([f in common[t] for t, f in zip(cv.target, cv.fold, strict=True)],
                     dtype=bool)].copy()
    if cv.empty:
        return pd.DataFrame(columns=[*cols, "best", "flag"])
    cv["family"] = cv.material_id.map(families).fillna("(unknown)")
    cv["se"] = (cv.y_pred.astype(float) - cv.y_true.astype(float)) ** 2
    rmse = (cv.groupby(["target", "family", "model", "repeat"])["se"].mean() ** 0.5
            ).groupby(["target", "family", "model"]).mean().unstack("model")
    labels = cv.drop_duplicates(["target", "material_id"]).groupby(["target", "family"])
    out = pd.DataFrame({"n": labels.size(), "label mean (GPa)": labels.y_true.mean(),
                        "label std (GPa)": labels.y_true.std(ddof=1)})
    models = list(rmse.columns)
    out = out.join(rmse)
    out["best"] = out[models].idxmin(axis=1)
    out["flag"] = np.where(out.n < min_n, f"n < {min_n}", "")
    return out.reset_index()[[*cols, *models, "best", "flag"]]


def family_markdown(table: pd.DataFrame) -> pd.DataFrame:
    """``family_errors`` for the page: 2 decimals, the best model's RMSE in bold; in a flagged
    family (too few materials to rank models) the best is named in parentheses, not bold."""
    out = table.copy()
    models = [c for c in table.columns if c not in
              ("target", "family", "n", "label mean (GPa)", "label std (GPa)", "best", "flag")]
    for c in ["label mean (GPa)", "label std (GPa)", *models]:
        out[c] = [f"{v:.2f}" if v == v else "-" for v in table[c]]
    for i, best in table.best.items():
        if not isinstance(best, str):
            continue
        if table.flag[i]:  # too few materials to rank: named, not marked
            out.loc[i, "best"] = f"({best})"
        else:
            out.loc[i, best] = f"**{out.loc[i, best]}**"
    return out


# ------------------------------------------------------------------ claim (4)


def neighbour_ratio(x: np.ndarray, test: np.ndarray) -> float:
    """How far the test rows lie from the training rows, in units of the training set's own
    spacing: mean over test rows of the Euclidean distance to the nearest training row,
    divided by the median over training rows of the distance to their nearest other training
    row. ``x``: (n, d) features; ``test``: (n,) bool. NaN when either side has < 2 rows
    (training) or 0 rows (test), or the training spacing is 0."""
    from sklearn.neighbors import NearestNeighbors

    tr, te = x[~test], x[test]
    if len(tr) < 2 or len(te) == 0:
        return float("nan")
    nn = NearestNeighbors(n_neighbors=2).fit(tr)
    d_tr = nn.kneighbors(tr)[0][:, 1]
    typical = float(np.median(d_tr))
    if typical <= 0:
        return float("nan")
    return float(nn.kneighbors(te, n_neighbors=1)[0][:, 0].mean() / typical)


def extrapolation_table(elements: pd.Series, features: dict[str, np.ndarray],
                        loeo_rmse: pd.DataFrame) -> pd.DataFrame:
    """Per held-out element and target: the test-to-training neighbour ratios
    (``neighbour_ratio``) in standardised Magpie and max-pooled density space, and the best ECD
    and best Magpie model's LOEO RMSE (GPa, lowest per element).

    Args:
        elements: per material (row of ``features``), its element symbols.
        features: ``{"magpie": (n, d1), "ecd": (n, d2)}`` (``ecdflow.evaluate.tsne_features``).
        loeo_rmse: rows element, target, model, rmse (mean over repeats) of finished runs.
    """
    rows = []
    for (el, target), g in loeo_rmse.groupby(["element", "target"]):
        ecd, mag = g[g.model.isin(ECD_MODELS)], g[g.model.isin(MAGPIE_MODELS)]
        if ecd.empty or mag.empty:
            continue
        test = elements.map(lambda es, el=el: el in es).to_numpy(bool)
        rows.append({"element": el, "target": target, "n_test": int(test.sum()),
                     "ratio_magpie": neighbour_ratio(features["magpie"], test),
                     "ratio_ecd": neighbour_ratio(features["ecd"], test),
                     "rmse_best_ecd": float(ecd.rmse.min()),
                     "rmse_best_magpie": float(mag.rmse.min())})
    cols = ["element", "target", "n_test", "ratio_magpie", "ratio_ecd", "rmse_best_ecd",
            "rmse_best_magpie"]
    return pd.DataFrame(rows, columns=cols)


def extrapolation_claim(table: pd.DataFrame, target: str) -> str:
    """One line for claim (4): Spearman's rho (scipy) between (density ratio - Magpie ratio)
    and (best ECD RMSE - best Magpie RMSE) over the held-out elements of ``target``;
    "not enough elements" when n < 5."""
    from scipy import stats

    t = table[table.target == target].dropna()
    n = len(t)
    if n < MIN_ELEMENTS:
        return (f"{target}: not enough elements (n = {n} < {MIN_ELEMENTS}) for a rank "
                "correlation of neighbour distance and error")
    dx, dy = t.ratio_ecd - t.ratio_magpie, t.rmse_best_ecd - t.rmse_best_magpie
    res = stats.spearmanr(dx, dy)
    rho, p = float(res.statistic), float(res.pvalue)
    if rho != rho:
        return f"{target}: n = {n} held-out elements; Spearman rho undefined (a constant column)"
    sig = "significant" if p < 0.05 else "not significant"
    support = ("in the direction the paper suggests" if rho > 0 else
               "opposite to the direction the paper suggests")
    return (f"{target}: over n = {n} held-out elements, Spearman rho = {rho:+.2f} (p = {p:.3g}, "
            f"{sig} at 0.05) between (density-space - Magpie-space neighbour ratio) and (best "
            f"ECD - best Magpie LOEO RMSE); {support} (positive: ECD models do relatively "
            "better where the density places the held-out materials relatively nearer the "
            "training set). A correlation over few elements, not a cause.")
