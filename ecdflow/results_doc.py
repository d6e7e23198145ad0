"""``docs/results/``: the committed results of a pipeline run, regenerated from an MLflow store
(``ecdflow results``), or, before any run, the plan (``ecdflow results --planned``).

The results page states the protocol that actually ran (``ecdflow.html.report.protocol_of``:
materials, grid, folds, repeats, epochs, data version, git commit) and the parent run id,
gives Table 2 (CV) and Table 3 (LOEO) in the paper's layout (``ecdflow.evaluate.paper_tables``)
with the paper's numbers beside ours ("paper, FCC2170, different data"), the spread over
folds/repeats, each LOEO test set's size and label std, and "The paper's claims on our data":
paired comparisons over the same folds (Wilcoxon signed-rank and paired t on per-fold RMSE,
scipy; n stated, "not enough folds" when n < 5), per-family CV errors, the t-SNE maps with a
nearest-neighbour statistic beside claim (4) (``ecdflow.results_analysis``). All errors in GPa.

A run whose parent run is not FINISHED is described as in progress: finished training runs
against the plan's (``ecdflow.results_analysis.progress``), tables from the finished runs only,
and a claim whose paired runs are not all finished says so instead of a verdict.

The plan page before any run: ``ecdflow.results_plan`` (re-exported here).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.results_analysis import (
    ECD_MODELS,
    MAGPIE_MODELS,
    density_models,
    missing_runs,
)
from ecdflow.results_plan import planned_estimate, write_planned  # noqa: F401 - the CLI's

MIN_PAIRED = 5
SINGLE_MODELS = ("rf_magpie", "cnn_magpie", "cnn3d", "cnn2d_se")
PAPER_LABEL = "paper, FCC2170, different data"
PAPER_LOEO_N = {"F": 415, "K": 370, "Rb": 368, "Cs": 356, "Na": 293, "Cl": 290, "In": 233,
                "Br": 232, "Li": 222, "Sc": 218, "Tl": 204}
"""The paper's LOEO test-set sizes (FCC2170; /work/shared/PAPER.md)."""
PAPER_LOEO_WINS = "ECD models win 9 of 22 LOEO experiments (3D 4, 2D 5), Magpie 11, CGCNN 2"


# ------------------------------------------------------------------ statistics


def paired(a: np.ndarray, b: np.ndarray, names: tuple[str, str] = ("a", "b")) -> dict:
    """Paired comparison of per-fold RMSE ``a`` vs ``b`` (GPa, same folds, same order).

    Returns n, mean difference a - b (GPa), wins (folds where a < b), and when n >= 5 the
    two-sided Wilcoxon signed-rank and paired-t p-values (scipy.stats); ``verdict`` is one
    line naming the models (``names``), e.g. "fusion - rf_magpie = -1.52 GPa mean RMSE over
    n = 5 folds, fusion lower on 4 of 5; ...", or "not enough folds (n = 2 < 5)". It says
    when the exact Wilcoxon test cannot reach 0.05 (n = 5: the smallest two-sided p is
    2 / 2^5 = 0.0625) and then judges on the paired t-test, saying so.
    """
    from scipy import stats

    a, b = np.asarray(a, float), np.asarray(b, float)
    n = len(a)
    out = {"n": n, "mean_diff": float(np.mean(a - b)) if n else float("nan"),
           "wins": int(np.sum(a < b)), "wilcoxon_p": None, "t_p": None}
    if n < MIN_PAIRED:
        out["verdict"] = f"not enough folds (n = {n} < {MIN_PAIRED})"
        return out
    if np.allclose(a, b):
        out.update(wilcoxon_p=1.0, t_p=1.0)
    else:
        out["wilcoxon_p"] = float(stats.wilcoxon(a, b).pvalue)
        out["t_p"] = float(stats.ttest_rel(a, b).pvalue)
    floor = 2.0 / 2**n  # exact two-sided signed-rank p when every pair goes one way
    na, nb = names
    if floor >= 0.05:
        sig = out["t_p"] < 0.05
        rule = (f"Wilcoxon p = {out['wilcoxon_p']:.3g} (cannot go below {floor:.3g} with "
                f"{n} folds), paired t p = {out['t_p']:.3g}: "
                f"{'significant' if sig else 'not significant'} at 0.05 by the t-test")
    else:
        sig = out["wilcoxon_p"] < 0.05
        rule = (f"Wilcoxon p = {out['wilcoxon_p']:.3g}, paired t p = {out['t_p']:.3g}: "
                f"{'significant' if sig else 'not significant'} at 0.05 by Wilcoxon")
    out["verdict"] = (f"{na} - {nb} = {out['mean_diff']:+.2f} GPa mean RMSE over n = {n} "
                      f"folds, {na} lower on {out['wins']} of {n}; {rule}")
    return out


def per_split_rmse(runs: pd.DataFrame, kind: str, target: str, model: str) -> pd.Series:
    """RMSE (GPa) per split of one model/target, averaged over repeats; index: fold/element."""
    sub = runs[(runs.split_kind == kind) & (runs.target == target) & (runs.model == model)]
    return sub.groupby("fold")["rmse"].mean()


def _pair(runs, kind, target, m1, m2, planned=None) -> dict | None:
    why = missing_runs(planned, runs, kind, target, (m1, m2))
    if why:
        return {"a": m1, "b": m2, "verdict": f"{why}; no verdict until they have"}
    a, b = per_split_rmse(runs, kind, target, m1), per_split_rmse(runs, kind, target, m2)
    common = sorted(set(a.index) & set(b.index))
    if not common:
        return None
    return {"a": m1, "b": m2, **paired(a[common].to_numpy(), b[common].to_numpy(), (m1, m2))}


def _best(runs, kind, target, models) -> str | None:
    sub = runs[(runs.split_kind == kind) & (runs.target == target) & runs.model.isin(models)]
    return None if sub.empty else str(sub.groupby("model")["rmse"].mean().idxmin())


def _magpie_vs_ecd(runs, kind, target, ecd_first: bool, words: str,
                   planned=None) -> str | None:
    """One claim line: the best Magpie and the best ECD model of one split kind and target,
    paired in the order asked (``{a}`` vs ``{b}`` in ``words``), then the verdict; None when
    either model is missing or they share no fold."""
    mag, ecd = _best(runs, kind, target, MAGPIE_MODELS), _best(runs, kind, target, ECD_MODELS)
    if not (mag and ecd):
        return None
    a, b = (ecd, mag) if ecd_first else (mag, ecd)
    p = _pair(runs, kind, target, a, b, planned)
    return None if p is None else f"{target}: {words.format(a=a, b=b)}: {p['verdict']}"


def _pending(planned, runs, kind, target, groups, what: str) -> list[str]:
    """For a run in progress, the line of a claim whose models have no comparable runs yet:
    ``"<target>: <what>: incomplete: ... planned runs finished; no verdict until they have"``;
    [] without a plan, or when a group of ``groups`` (tuples of models: the two sides of the
    claim) has no planned model (the claim is then not measured by this run)."""
    if planned is None:
        return []
    pl = planned[(planned.split_kind == kind) & (planned.target == target)]
    if not all(set(g) & set(pl.model) for g in groups):
        return []
    why = missing_runs(pl, runs, kind, target, {m for g in groups for m in g} & set(pl.model))
    return [f"{target}: {what}: {why}; no verdict until they have"] if why else []


LOEO_COMPARED = (*MAGPIE_MODELS, *ECD_MODELS)
"""The models the paper's LOEO count is among ("ECD models win 9 of 22 ...: 3D 4, 2D 5,
Magpie 11, CGCNN 2"; fusion did not take part; CGCNN is not in this project)."""


def _loeo_winners(lo: pd.DataFrame) -> pd.Series:
    """Per held-out element, the model with the lowest RMSE (mean over repeats)."""
    return lo.groupby(["fold", "model"])["rmse"].mean().unstack().idxmin(axis=1)


def _counts(best: pd.Series, models) -> str:
    """``cnn3d 2, cnn2d_se 1``: how many elements each of ``models`` wins."""
    return ", ".join(f"{m} {int((best == m).sum())}" for m in models)


def claims(runs: pd.DataFrame, planned: pd.DataFrame | None = None,
           tsne: list[str] | None = None) -> dict[str, list[str]]:
    """The paper's four claims and issue 15's baseline question, answered per target with
    paired comparisons over the same folds (CV) or held-out elements (LOEO). With the plan
    (``ecdflow.results_analysis.planned_runs``; given for a run in progress) a comparison whose
    planned runs have not all finished says so instead of a verdict, and the LOEO win count
    covers only elements where every planned model has finished. ``tsne``: the measured lines
    of claim (4) (``results_analysis.extrapolation_claim``)."""
    out: dict[str, list[str]] = {k: [] for k in ("magpie", "fusion", "loeo", "tsne", "volume")}
    targets = set(runs.target) | (set() if planned is None else set(planned.target))
    for t in sorted(targets):
        line = _magpie_vs_ecd(runs, "cv", t, ecd_first=False, words="best Magpie model {a} "
                              "vs best ECD model {b}, per-fold CV RMSE", planned=planned)
        out["magpie"] += [line] if line else _pending(
            planned, runs, "cv", t, (MAGPIE_MODELS, ECD_MODELS), "Magpie vs ECD models")
        if "fusion" not in set(runs[runs.target == t].model):
            out["fusion"] += _pending(planned, runs, "cv", t, (("fusion",), SINGLE_MODELS),
                                      "fusion vs the single models")
        else:
            for m in SINGLE_MODELS:
                p = _pair(runs, "cv", t, "fusion", m, planned)
                if p:
                    out["fusion"].append(f"{t}: fusion vs {m}: {p['verdict']}")
        lo = runs[(runs.split_kind == "loeo") & (runs.target == t)]
        if lo.empty:
            out["loeo"] += _pending(planned, runs, "loeo", t, (MAGPIE_MODELS, ECD_MODELS),
                                    "held-out elements")
        else:
            els = sorted(lo.fold.unique())
            if planned is not None:
                pl = planned[(planned.split_kind == "loeo") & (planned.target == t)]
                els = [e for e in sorted(pl.fold.unique()) if not missing_runs(
                    pl[pl.fold == e], lo[lo.fold == e], "loeo", t, set(pl.model))]
                lo = lo[lo.fold.isin(els)]
            note = "" if planned is None else (
                f" (the {len(els)} of {planned[planned.split_kind == 'loeo'].fold.nunique()} "
                "planned elements where every planned model has finished)")
            compared = lo[lo.model.isin(LOEO_COMPARED)]
            if len(compared):
                best = _loeo_winners(compared)
                n_ecd = int(best.isin(ECD_MODELS).sum())
                out["loeo"].append(
                    f"{t}: among the models the paper compared on held-out elements "
                    f"({', '.join(LOEO_COMPARED)}; fusion was not), an ECD model has the "
                    f"lowest RMSE on {n_ecd} of {len(best)} held-out elements "
                    f"({_counts(best, ECD_MODELS)}; Magpie models "
                    f"{len(best) - n_ecd}){note}")
                every = _loeo_winners(lo)
                out["loeo"].append(f"{t}: with every model of this run competing, lowest LOEO "
                                   f"RMSE: {_counts(every, sorted(set(every)))} of "
                                   f"{len(every)} elements")
            else:
                out["loeo"].append(f"{t}: no held-out element has every planned model "
                                   "finished yet; no count")
            line = _magpie_vs_ecd(runs, "loeo", t, ecd_first=True, planned=planned,
                                  words="{a} vs {b} paired over the held-out elements")
            out["loeo"] += [line] if line else []
        dens = _best(runs, "cv", t, density_models())
        if not dens or "rf_magpie_volume" not in set(runs[runs.target == t].model):
            out["volume"] += _pending(planned, runs, "cv", t, (density_models(),
                                                               ("rf_magpie_volume",)),
                                      "density models vs rf_magpie_volume")
        elif p := _pair(runs, "cv", t, dens, "rf_magpie_volume", planned):
            out["volume"].append(f"{t}: best density model {dens} vs rf_magpie_volume: "
                                 f"{p['verdict']}")
    out["tsne"] += tsne or []
    out["tsne"].append("the t-SNE maps themselves (figures `tsne_*.png`) are qualitative; "
                       + ("the line(s) above are the measured statement" if tsne else
                          "no statistic was measured in this run"))
    return out


# ------------------------------------------------------------------ tables


def spread_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std over folds x repeats (CV) or repeats (LOEO) of RMSE (GPa) and R2, with n."""
    g = runs.groupby(["split_kind", "target", "model"])
    out = g.agg(n=("rmse", "size"), rmse_mean=("rmse", "mean"), rmse_std=("rmse", "std"),
                r2_mean=("r2", "mean"), r2_std=("r2", "std")).reset_index()
    out["RMSE (GPa)"] = [f"{m:.2f} ± {s:.2f}" if s == s else f"{m:.2f}"
                         for m, s in zip(out.rmse_mean, out.rmse_std, strict=True)]
    out["R2"] = [f"{m:.3f} ± {s:.3f}" if s == s else f"{m:.3f}"
                 for m, s in zip(out.r2_mean, out.r2_std, strict=True)]
    return out[["split_kind", "target", "model", "n", "RMSE (GPa)", "R2"]]


def loeo_sets(preds: pd.DataFrame) -> pd.DataFrame:
    """Per held-out element and target: test-set size and label std (GPa) from the LOEO test
    predictions (unique materials), beside the paper's test-set size."""
    lo = preds[preds.split_kind == "loeo"].drop_duplicates(["fold", "target", "material_id"])
    rows = []
    for (el, t), g in lo.groupby(["fold", "target"]):
        rows.append({"element": el, "target": t, "n_test": len(g),
                     "label_std_gpa": round(float(g.y_true.std(ddof=1)), 2) if len(g) > 1
                     else float("nan"), f"n_test ({PAPER_LABEL})": PAPER_LOEO_N.get(el, "-")})
    return pd.DataFrame(rows)


def loeo_matrix(runs: pd.DataFrame, target: str, metric: str = "r2") -> pd.DataFrame:
    """Table 3 as a grid: ``metric`` (``r2``, or ``rmse`` in GPa) of each model on each
    held-out element, mean over repeats; rows elements, columns models, NaN where a model has
    no finished run. Empty for a target without LOEO runs."""
    lo = runs[(runs.split_kind == "loeo") & (runs.target == target)]
    if lo.empty:
        return pd.DataFrame()
    return lo.groupby(["fold", "model"])[metric].mean().unstack("model").rename_axis(
        index="element")


def table2_with_paper(tables: dict) -> pd.DataFrame:
    """Our Table 2 rows beside the paper's, labelled ``paper, FCC2170, different data``."""
    from ecdflow.evaluate import PAPER_TABLE2

    rows = []
    ours = tables.get("table2_cv")
    for t in PAPER_TABLE2.index:
        if ours is not None and t in ours.index:
            rows.append(ours.loc[t].rename(f"{t}: ours"))
        rows.append(PAPER_TABLE2.loc[t].rename(f"{t}: {PAPER_LABEL}"))
    out = pd.DataFrame(rows).fillna("-")
    out.index.name = "target: source"
    return out


# ------------------------------------------------------------------ pages


def _md(df: pd.DataFrame, index: bool = True) -> str:
    from ecdflow.results import markdown_table

    return markdown_table(df.reset_index() if index else df).rstrip("\n")


def _status(settings: Settings, pipeline_run_id: str, parent: str | None,
            runs: pd.DataFrame) -> tuple[list[str], pd.DataFrame | None]:
    """The page's opening lines on the run's state (and the other parent runs of its profile)
    and, for a run whose parent run is not FINISHED, the plan (``planned_runs``)."""
    import mlflow

    from ecdflow import tracking
    from ecdflow.results_analysis import planned_runs, progress

    client = mlflow.MlflowClient()
    status = client.get_run(parent).info.status if parent else "UNKNOWN"
    others = [r for r in client.search_runs(
        [tracking.configure(settings)], order_by=["attributes.start_time DESC"],
        filter_string=f"tags.\"{tracking.TAG_ROLE}\" = 'parent' and "
        f"tags.\"{tracking.TAG_PROFILE}\" = '{settings.profile}'", max_results=50)
        if r.data.tags.get(tracking.TAG_PIPELINE_RUN) != pipeline_run_id]
    lines = [f"This page describes pipeline run `{pipeline_run_id}` only. A stopped run "
             "continued with `pipeline run-local --resume` keeps its id (finished runs are "
             "reused, an interrupted fit resumes from its checkpoint; the commits its "
             "training runs ran on are listed under the protocol); a run started afresh gets "
             "a new id and its own page."]
    if others:
        lines[0] += (f" Other `{settings.profile}` pipeline runs in the store (not described "
                     "here): " + ", ".join(f"`{r.data.tags.get(tracking.TAG_PIPELINE_RUN)}` "
                                           f"(parent {r.info.status})" for r in others[:10]) + ".")
    if status == "FINISHED":
        return ["", *lines, ""], None
    planned = planned_runs(settings)
    pr = progress(planned, runs)
    word = "In progress" if status in ("RUNNING", "SCHEDULED") else "Incomplete"
    why = ": running, or stopped and not yet restarted" if status == "RUNNING" else ""
    head = [f"**{word}: {pr['runs_done']} of {pr['runs_planned']} planned training runs "
            f"finished** (parent run {status}{why}; {pr['tasks_done']} of "
            f"{pr['tasks_planned']} training tasks with all their repeats; plan of the "
            f"`{settings.profile}` profile, "
            "`ecdflow.plan.build_plan` x `ecdflow.train.run_repeats`). Tables and claims "
            "use the finished runs only: a cell whose model has not finished every fold is a "
            "mean over the folds that have (n per cell: the spread table); a paired claim "
            "whose runs are not all finished says so instead of a verdict.", "",
            _md(pr["table"], index=False)]
    return ["", *head, "", *lines, ""], planned


def _family_lines(settings: Settings, preds: pd.DataFrame) -> list[str]:
    from ecdflow.evaluate import _materials
    from ecdflow.results_analysis import family_errors, family_markdown

    mats = _materials(settings)
    if "family" not in mats.columns:
        return ["- not measured: the materials table has no `family` column", ""]
    n = settings.report.min_element_n
    t = family_errors(preds, mats.set_index("material_id")["family"], n)
    if t.empty:
        return ["- not measured in this run (no finished CV run)", ""]
    return ["CV test predictions per family (only the folds every model has predicted): RMSE "
            "(GPa) pooled over folds for each repeat, then the mean over repeats; best model "
            f"per family in bold. Families with fewer than {n} test materials "
            "(report.min_element_n) are shown and flagged, their lowest RMSE named in "
            "parentheses, not marked: too few to rank models.", "",
            _md(family_markdown(t), index=False), ""]


def _tsne(settings: Settings, runs: pd.DataFrame, planned, fig_dir: Path
          ) -> tuple[list[Path], list[str], pd.DataFrame]:
    """t-SNE maps of all materials and the claim-(4) lines and table."""
    from ecdflow.evaluate import tsne_features, tsne_maps
    from ecdflow.results_analysis import extrapolation_claim, extrapolation_table

    lo = runs[runs.split_kind == "loeo"]
    if planned is not None:  # elements where every planned Magpie/ECD model has finished
        pl = planned[planned.split_kind == "loeo"]
        keep = [(e, t) for (e, t), g in pl.groupby(["fold", "target"]) if not missing_runs(
            g, lo[(lo.fold == e)], "loeo", t, set(g.model) & {*ECD_MODELS, *MAGPIE_MODELS})]
        lo = lo[np.array([(e, t) in keep for e, t in zip(lo.fold, lo.target, strict=True)],
                         dtype=bool)]
    mats, z = tsne_features(settings, max_materials=None)
    figs = tsne_maps(settings, sorted(lo.fold.unique())[:4], fig_dir, features=(mats, z))
    rm = lo.groupby(["fold", "target", "model"], as_index=False)["rmse"].mean()
    table = extrapolation_table(mats.elements, z, rm.rename(columns={"fold": "element"}))
    targets = set(runs.target) | (set() if planned is None else set(planned.target))
    lines = [extrapolation_claim(table, t) for t in sorted(targets)]
    return figs, lines, table


COMMITS_NOTE = (" (the commits its training runs ran on: a resumed run can change code "
                "between attempts, and each task reads the code when it starts)")


def _fit_rows_line(train: list) -> str:
    """What each model was fitted on, from the training runs' params (``n_train``: fit rows,
    ``n_val``: the validation split, ``training.validation_fraction``); a claim is made only
    when every run logged them."""
    from ecdflow import tracking as tr

    params = [r.data.params for r in train]
    if not params or any("n_train" not in p or "n_val" not in p for p in params):
        return "fit rows: not logged by every training run"
    n_fit = sorted({int(float(p["n_train"])) for p in params})
    span = f"{n_fit[0]}-{n_fit[-1]}" if len(n_fit) > 1 else str(n_fit[0])
    per_split: dict[tuple, set] = {}
    for r in train:
        key = (r.data.tags.get(tr.TAG_TARGET), r.data.tags.get(tr.TAG_SPLIT))
        per_split.setdefault(key, set()).add(int(float(r.data.params["n_train"])))
    same = all(len(v) == 1 for v in per_split.values())
    if all(int(float(p["n_val"])) == 0 for p in params):
        return (f"fit rows: every model fitted on its whole training set, no validation split "
                f"({span} rows per run)")
    if not all(int(float(p["n_val"])) > 0 for p in params) or not same:
        return (f"fit rows: differ between the models of a split ({span} rows per run, "
                "some with a validation split, some without)")
    frac = sorted({p.get("training.validation_fraction", "-") for p in params})
    return (f"fit rows: each training set minus a seeded validation split of {', '.join(frac)}"
            f" (the same rows for every model of a split; {span} fit rows per run): the Keras "
            "models stop early on it, the scikit-learn models leave it unused, so every model "
            "is fitted on the same rows")


def _loeo_figures(runs: pd.DataFrame, fig_dir: Path) -> list[Path]:
    """One heatmap per target of Table 3's R2 (``loeo_matrix``: held-out element x model)."""
    from ecdflow.plots import heatmap

    out = []
    for target in sorted(runs.target.dropna().unique()):
        m = loeo_matrix(runs, target)
        if not m.empty:
            out.append(heatmap(m, fig_dir / f"loeo_r2_{target}.png",
                               f"{target}: R2 on each held-out element (Table 3)", "R2",
                               higher_is_better=True))
    return out


def write_results(settings: Settings, pipeline_run_id: str, out_dir: Path) -> Path:
    """Regenerate ``out_dir`` (README.md + figures/) from one pipeline run's MLflow runs
    (finished training runs only, one per model/target/split/repeat).

    Raises:
        EcdflowError: the pipeline run has no finished training runs.
    """
    from ecdflow import tracking
    from ecdflow.evaluate import _logged_splits, load_predictions, paper_tables, parity_plots
    from ecdflow.html.report import cv_heading, protocol_of
    from ecdflow.results import collect_runs, summarise
    from ecdflow.results_analysis import dedupe_runs

    tracking.configure(settings)
    train = [r for r in tracking.pipeline_runs(settings, pipeline_run_id)
             if r.info.status == "FINISHED"]
    if not train:
        raise EcdflowError(f"no finished training runs for pipeline run '{pipeline_run_id}'")
    runs = dedupe_runs(collect_runs(settings, pipeline_run_id))
    summary = summarise(runs)
    preds = load_predictions(settings, pipeline_run_id)
    preds = preds[preds.run_id.isin(runs.run_id)]
    parent = tracking.find_parent_run(settings, pipeline_run_id)
    p = protocol_of(train, preds, _logged_splits(parent), settings.splits.n_folds)
    status, planned = _status(settings, pipeline_run_id, parent, runs)
    tables = paper_tables(summary)
    fig_dir = out_dir / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    fig_dir.mkdir(parents=True)
    figs = _loeo_figures(runs, fig_dir) + parity_plots(preds, fig_dir)
    tsne_figs, tsne_lines, tsne_table = _tsne(settings, runs, planned, fig_dir)
    cl = claims(runs, planned, tsne_lines)
    lines = [
        "# Results", *status,
        f"Regenerated by `ecdflow --profile {settings.profile} results --pipeline-run-id "
        f"{pipeline_run_id}` from the MLflow store; every number below comes from that run.",
        "",
        "## Protocol that ran", "",
        f"- pipeline run `{pipeline_run_id}`, MLflow parent run `{parent or 'none'}`",
        f"- profile {p['profile']}, git commit {p['git_commit']}"
        f"{COMMITS_NOTE if ',' in p['git_commit'] else ''}, "
        "data version "
        f"`{p['data_version']}`",
        f"- {p['n_materials']} materials ({p['materials_source']}), grid {p['grid']}",
        f"- {cv_heading(p)}; LOEO elements: {', '.join(p['loeo']) or 'none'}",
        f"- epochs: max {p['epochs_max'] or '-'}, ran {p['epochs_run'] or '-'} (early stopping);"
        f" {len(runs)} training runs; models {', '.join(p['models'])}",
        f"- {_fit_rows_line(train)}", "",
        "## Table 2: CV, R2 / RMSE (GPa)", "",
        f"Paper rows are labelled \"{PAPER_LABEL}\": compare trends, not values.", "",
        _md(table2_with_paper(tables)), "",
    ]
    if "table3_loeo" in tables:
        lines += ["## Table 3: leave-one-element-out, R2 / RMSE (GPa)", "",
                  f"Paper ({PAPER_LABEL}): {PAPER_LOEO_WINS}.", "",
                  _md(tables["table3_loeo"]), "", "### LOEO test sets", "",
                  _md(loeo_sets(preds), index=False), ""]
    lines += ["## Spread over folds and repeats", "", _md(spread_table(runs), index=False), "",
              "## Errors per material family (CV)", "", *_family_lines(settings, preds),
              "## The paper's claims on our data", "",
              "Paired over the same folds (CV, RMSE averaged over repeats) or held-out elements "
              "(LOEO); two-sided p-values per comparison, not corrected for the number of "
              "comparisons made here.", ""]
    titles = {"magpie": "(1) Magpie is strong under random CV",
              "fusion": "(2) Fusion beats every single model under CV",
              "loeo": "(3) ECD models extrapolate better for some held-out elements",
              "tsne": "(4) t-SNE shows why",
              "volume": "Does the density add anything beyond composition and volume?"}
    for k, title in titles.items():
        lines += [f"### {title}", ""] + [f"- {s}" for s in cl[k] or ["not measured in this run"]]
        lines.append("")
        if k == "tsne" and len(tsne_table):
            lines += [
                "Neighbour ratio: the mean distance from each held-out material to its nearest "
                "training material, divided by the median nearest-neighbour distance within "
                "the training set; Magpie features and 10^3 max-pooled procrystal densities, "
                "each column standardised over all materials (the t-SNE inputs). RMSE: lowest "
                "LOEO RMSE (GPa) of the ECD models (cnn3d, cnn2d_se) and of the Magpie models.",
                "", _md(tsne_table.round(3), index=False), ""]
    lines += ["## Figures", ""] + [f"![{f.stem}](figures/{f.name})"
                                   for f in figs + tsne_figs] + [""]
    lines += ["## See also", "", "- [sanity checks](sanity.md)"]
    lines += ["- [beyond the paper](beyond.md)"] if (out_dir / "beyond.md").exists() else []
    lines.append("")
    out_dir.mkdir(parents=True, exist_ok=True)
    readme = out_dir / "README.md"
    readme.write_text("\n".join(lines))
    return readme
