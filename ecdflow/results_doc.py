"""``docs/results/``: the committed results of a pipeline run, regenerated from an MLflow store
(``ecdflow results``), or, before any run, the plan (``ecdflow results --planned``).

The results page states the protocol that actually ran (``ecdflow.html.report.protocol_of``:
materials, grid, folds, repeats, epochs, data version, git commit) and the parent run id,
gives Table 2 (CV) and Table 3 (LOEO) in the paper's layout (``ecdflow.evaluate.paper_tables``)
with the paper's numbers beside ours ("paper, FCC2170, different data"), the spread over
folds/repeats, each LOEO test set's size and label std, and "The paper's claims on our data":
paired comparisons over the same folds (Wilcoxon signed-rank and paired t on per-fold RMSE,
scipy; n stated, "not enough folds" when n < 5). All errors in GPa.

The plan page estimates the wall time of a profile on 2 cores from the committed benches
(``bench/results/train.json`` training throughput per model and grid, ``bench/results/e2e.json``
per-task start-up), with the arithmetic written out; no result number appears on it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow.config import REPO_ROOT, Settings
from ecdflow.errors import EcdflowError

MIN_PAIRED = 5
MAGPIE_MODELS = ("rf_magpie", "cnn_magpie")
ECD_MODELS = ("cnn3d", "cnn2d_se")
SINGLE_MODELS = ("rf_magpie", "cnn_magpie", "cnn3d", "cnn2d_se")
PAPER_LABEL = "paper, FCC2170, different data"
PAPER_LOEO_N = {"F": 415, "K": 370, "Rb": 368, "Cs": 356, "Na": 293, "Cl": 290, "In": 233,
                "Br": 232, "Li": 222, "Sc": 218, "Tl": 204}
"""The paper's LOEO test-set sizes (FCC2170; /work/shared/PAPER.md)."""
PAPER_LOEO_WINS = "ECD models win 9 of 22 LOEO experiments (3D 4, 2D 5), Magpie 11, CGCNN 2"


# ------------------------------------------------------------------ statistics


def paired(a: np.ndarray, b: np.ndarray) -> dict:
    """Paired comparison of per-fold RMSE ``a`` vs ``b`` (GPa, same folds, same order).

    Returns n, mean difference a - b (GPa), wins (folds where a < b), and when n >= 5 the
    two-sided Wilcoxon signed-rank and paired-t p-values (scipy.stats); ``verdict`` is one
    line ("not enough folds (n = 2 < 5)" when n < 5).
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
    sig = out["wilcoxon_p"] < 0.05
    out["verdict"] = (f"n = {n}: mean difference {out['mean_diff']:+.2f} GPa, lower on "
                      f"{out['wins']} of {n}; Wilcoxon p = {out['wilcoxon_p']:.3g}, paired t "
                      f"p = {out['t_p']:.3g} ({'significant' if sig else 'not significant'} "
                      "at 0.05)")
    return out


def per_split_rmse(runs: pd.DataFrame, kind: str, target: str, model: str) -> pd.Series:
    """RMSE (GPa) per split of one model/target, averaged over repeats; index: fold/element."""
    sub = runs[(runs.split_kind == kind) & (runs.target == target) & (runs.model == model)]
    return sub.groupby("fold")["rmse"].mean()


def _pair(runs, kind, target, m1, m2) -> dict | None:
    a, b = per_split_rmse(runs, kind, target, m1), per_split_rmse(runs, kind, target, m2)
    common = sorted(set(a.index) & set(b.index))
    if not common:
        return None
    return {"a": m1, "b": m2, **paired(a[common].to_numpy(), b[common].to_numpy())}


def _best(runs, kind, target, models) -> str | None:
    sub = runs[(runs.split_kind == kind) & (runs.target == target) & runs.model.isin(models)]
    return None if sub.empty else str(sub.groupby("model")["rmse"].mean().idxmin())


def _magpie_vs_ecd(runs, kind, target, ecd_first: bool, words: str) -> str | None:
    """One claim line: the best Magpie and the best ECD model of one split kind and target,
    paired in the order asked (``{a}`` vs ``{b}`` in ``words``), then the verdict; None when
    either model is missing or they share no fold."""
    mag, ecd = _best(runs, kind, target, MAGPIE_MODELS), _best(runs, kind, target, ECD_MODELS)
    if not (mag and ecd):
        return None
    a, b = (ecd, mag) if ecd_first else (mag, ecd)
    p = _pair(runs, kind, target, a, b)
    return None if p is None else f"{target}: {words.format(a=a, b=b)}: {p['verdict']}"


def claims(runs: pd.DataFrame) -> dict[str, list[str]]:
    """The paper's four claims and issue 15's baseline question, answered per target with
    paired comparisons over the same folds (CV) or held-out elements (LOEO)."""
    out: dict[str, list[str]] = {k: [] for k in ("magpie", "fusion", "loeo", "tsne", "volume")}
    for t in sorted(runs.target.unique()):
        line = _magpie_vs_ecd(runs, "cv", t, ecd_first=False, words="best Magpie model {a} "
                              "vs best ECD model {b}, per-fold CV RMSE")
        out["magpie"] += [line] if line else []
        if "fusion" in set(runs.model):
            for m in SINGLE_MODELS:
                p = _pair(runs, "cv", t, "fusion", m)
                if p:
                    out["fusion"].append(f"{t}: fusion vs {m}: {p['verdict']}")
        lo = runs[(runs.split_kind == "loeo") & (runs.target == t)]
        if len(lo):
            best = lo.groupby(["fold", "model"])["rmse"].mean().unstack().idxmin(axis=1)
            n_ecd = int(best.isin(ECD_MODELS).sum())
            out["loeo"].append(f"{t}: an ECD model has the lowest RMSE on {n_ecd} of "
                               f"{len(best)} held-out elements")
            line = _magpie_vs_ecd(runs, "loeo", t, ecd_first=True,
                                  words="{a} vs {b} paired over the held-out elements")
            out["loeo"] += [line] if line else []
        if "rf_magpie_volume" in set(runs.model):
            dens = _best(runs, "cv", t, (*ECD_MODELS, "fusion"))
            if dens:
                p = _pair(runs, "cv", t, dens, "rf_magpie_volume")
                out["volume"].append(f"{t}: best density model {dens} vs rf_magpie_volume: "
                                     f"{p['verdict']}")
    out["tsne"].append("qualitative: see the t-SNE maps of the evaluation report "
                       "(`ecdflow evaluate`); no statistical test is claimed")
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


def write_results(settings: Settings, pipeline_run_id: str, out_dir: Path) -> Path:
    """Regenerate ``out_dir`` (README.md + figures/) from one pipeline run's MLflow runs.

    Raises:
        EcdflowError: the pipeline run has no finished training runs.
    """
    from ecdflow import tracking
    from ecdflow.evaluate import _logged_splits, load_predictions, paper_tables, parity_plots
    from ecdflow.html.report import cv_heading, protocol_of
    from ecdflow.results import collect_runs, summarise

    tracking.configure(settings)
    train = [r for r in tracking.pipeline_runs(settings, pipeline_run_id)
             if r.info.status == "FINISHED"]
    if not train:
        raise EcdflowError(f"no finished training runs for pipeline run '{pipeline_run_id}'")
    runs = collect_runs(settings, pipeline_run_id)
    summary = summarise(runs)
    preds = load_predictions(settings, pipeline_run_id)
    parent = tracking.find_parent_run(settings, pipeline_run_id)
    p = protocol_of(train, preds, _logged_splits(parent), settings.splits.n_folds)
    tables = paper_tables(summary)
    fig_dir = out_dir / "figures"
    if fig_dir.exists():
        shutil.rmtree(fig_dir)
    fig_dir.mkdir(parents=True)
    figs = parity_plots(preds, fig_dir)
    cl = claims(runs)
    lines = [
        "# Results", "",
        f"Regenerated by `ecdflow results --pipeline-run-id {pipeline_run_id}` from the MLflow "
        "store; every number below comes from that run.", "",
        "## Protocol that ran", "",
        f"- pipeline run `{pipeline_run_id}`, MLflow parent run `{parent or 'none'}`",
        f"- profile {p['profile']}, git commit {p['git_commit']}, data version "
        f"`{p['data_version']}`",
        f"- {p['n_materials']} materials ({p['materials_source']}), grid {p['grid']}",
        f"- {cv_heading(p)}; LOEO elements: {', '.join(p['loeo']) or 'none'}",
        f"- epochs: max {p['epochs_max'] or '-'}, ran {p['epochs_run'] or '-'} (early stopping);"
        f" {p['n_runs']} training runs; models {', '.join(p['models'])}", "",
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
              "## The paper's claims on our data", ""]
    titles = {"magpie": "(1) Magpie is strong under random CV",
              "fusion": "(2) Fusion beats every single model under CV",
              "loeo": "(3) ECD models extrapolate better for some held-out elements",
              "tsne": "(4) t-SNE shows why",
              "volume": "Does the density add anything beyond composition and volume?"}
    for k, title in titles.items():
        lines += [f"### {title}", ""] + [f"- {s}" for s in cl[k] or ["not measured in this run"]]
        lines.append("")
    lines += ["## Figures", ""] + [f"![{f.stem}](figures/{f.name})" for f in figs] + [""]
    out_dir.mkdir(parents=True, exist_ok=True)
    readme = out_dir / "README.md"
    readme.write_text("\n".join(lines))
    return readme


def planned_estimate(settings: Settings, index: pd.DataFrame, bench_train: dict,
                     bench_e2e: dict) -> dict:
    """Wall-time estimate (seconds, 2 cores) of a profile's training, from the benches.

    Per Keras model m and split s (CV fold or LOEO element) and target: fit samples
    n_fit = (materials - test) x (1 - validation_fraction), one epoch takes n_fit /
    throughput(m, grid) seconds; the sum over models, splits, targets and repeats is one
    "epoch of everything", times ``training.epochs`` (the upper bound, no early stop).
    Task start-up: tasks x the mean non-fit seconds of a train task in ``bench_e2e``.
    """
    from ecdflow.models import get_spec
    from ecdflow.splits import make_splits

    grid = settings.density.grid
    thr = {r["model"]: r["train_samples_s"] for r in bench_train["rows"] if r["grid"] == grid}
    tl = settings.training
    splits = make_splits(index, settings.splits.n_folds, settings.splits.loeo_elements,
                         settings.seed)
    keras = [m for m in settings.models.enabled if get_spec(m).is_keras]
    missing = [m for m in keras if m not in thr]
    if missing:
        raise EcdflowError(f"bench/results/train.json has no {grid}^3 throughput for {missing}")
    epoch_s, lines = 0.0, []
    for name, sp in splits.items():
        reps = tl.repeats if name.startswith("cv-") or tl.loeo_repeats is None \
            else tl.loeo_repeats
        n_fit = len(sp["train"]) * (1 - tl.validation_fraction)
        s = len(settings.targets) * reps * sum(n_fit / thr[m] for m in keras)
        epoch_s += s
        lines.append(f"{name}: n_fit {n_fit:.0f} x {len(settings.targets)} targets x {reps} "
                     f"repeats x sum_m 1/throughput = {s:.1f} s per epoch")
    tasks = [t for t in bench_e2e["tasks"] if t["step"] == "train"]
    over = float(np.mean([t["seconds"] - t["train_s"] for t in tasks]))
    n_tasks = len(settings.models.enabled) * len(settings.targets) * len(splits)
    return {"grid": grid, "throughput": thr, "epoch_s": epoch_s, "epochs": tl.epochs,
            "upper_s": epoch_s * tl.epochs, "half_s": epoch_s * tl.epochs / 2,
            "tasks": n_tasks, "overhead_per_task_s": over, "overhead_s": n_tasks * over,
            "per_split": lines, "n_materials": len(index), "models": keras,
            "bench_note": bench_train.get("meta", {}).get("note", "")}


def write_planned(settings: Settings, out_dir: Path) -> Path:
    """``out_dir/README.md`` before any standard run: the run is pending, no results table is
    published, and the wall-time estimate of the profile with its arithmetic."""
    from ecdflow.data.table import read_rows

    path = settings.path(settings.paths.materials)
    index = pd.DataFrame(read_rows(path))[["material_id", "elements"]]
    e = planned_estimate(settings, index,
                         json.loads((REPO_ROOT / "bench/results/train.json").read_text()),
                         json.loads((REPO_ROOT / "bench/results/e2e.json").read_text()))
    h = 3600.0
    thr = ", ".join(f"{m} {v:.0f}/s" for m, v in e["throughput"].items() if m in e["models"])
    tl = settings.training
    lines = [
        "# Results", "",
        f"**Status: the `{settings.profile}` profile run is planned, not yet run.** No results "
        "table is published here yet: no number without a run behind it. When it has run, "
        f"`ecdflow --profile {settings.profile} results` regenerates this page (Tables 2 "
        "and 3, spread, LOEO sets, the paper's claims, figures) from the MLflow store.", "",
        "Until then, the only measured numbers are the shipped baseline's model cards "
        "(`ecdflow/pretrained/*/MODEL_CARD.md`, `ecdflow pretrained build`).", "",
        f"## Planned: `{settings.profile}` profile, wall-time estimate on 2 cores", "",
        f"Regenerated by `ecdflow --profile {settings.profile} results --planned` from "
        "`bench/results/train.json` (training throughput, 2 cores) and "
        "`bench/results/e2e.json` (task start-up).", "",
        f"- protocol: {e['n_materials']} materials, grid {e['grid']}^3, "
        f"{settings.splits.n_folds}-fold CV x {tl.repeats} repeats, "
        f"{len(settings.splits.loeo_elements)} LOEO elements x "
        f"{tl.loeo_repeats or tl.repeats} repeat, max {tl.epochs} epochs (patience "
        f"{tl.patience}), models {', '.join(settings.models.enabled)}",
        f"- throughput at {e['grid']}^3 (samples/s): {thr} (bench: "
        f"{e['bench_note']})",
        f"- one epoch of every Keras model on every split, target and repeat: "
        f"{e['epoch_s']:.0f} s", *[f"  - {s}" for s in e["per_split"]],
        f"- training, upper bound ({e['epochs']} epochs every fit): {e['epoch_s']:.0f} s x "
        f"{e['epochs']} = {e['upper_s']:.0f} s = {e['upper_s'] / h:.1f} h",
        f"- if early stopping halves the epochs on average (an assumption, to be measured): "
        f"{e['half_s'] / h:.1f} h",
        f"- task start-up: {e['tasks']} training tasks x {e['overhead_per_task_s']:.1f} s = "
        f"{e['overhead_s'] / h:.2f} h (quick-profile figure; 60^3 records load slower)",
        f"- estimate: {(e['half_s'] + e['overhead_s']) / h:.1f} h to "
        f"{(e['upper_s'] + e['overhead_s']) / h:.1f} h, plus preprocess/validate/evaluate "
        "(minutes). Not measured: to be replaced by the run's own timing in bench/results/.",
        "",
    ]
    out_dir.mkdir(parents=True, exist_ok=True)
    readme = out_dir / "README.md"
    readme.write_text("\n".join(lines))
    return readme
