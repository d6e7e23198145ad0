"""Results of a pipeline run: gather its training runs, average them into the paper's tables
(Table 2: CV, Table 3: LOEO), and the regression metrics every score uses. Tables are returned
as Markdown; printing is the CLI's job. All errors in GPa.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow import tracking as tr
from ecdflow.config import Settings


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    """MAE and RMSE (GPa) and R2 of predictions already converted to GPa."""
    err = np.asarray(y_pred, float) - np.asarray(y_true, float)
    ss = float(np.sum((y_true - np.mean(y_true)) ** 2))
    return {tr.METRIC_MAE: float(np.mean(np.abs(err))),
            tr.METRIC_RMSE: float(np.sqrt(np.mean(err**2))),
            tr.METRIC_R2: 1.0 - float(np.sum(err**2)) / ss if ss > 0 else float("nan")}


def collect_runs(settings: Settings, pipeline_run_id: str) -> pd.DataFrame:
    """One row per finished training run of a pipeline run: model, target, split, split_kind,
    fold, repeat, r2, rmse, mae (GPa), run_id."""
    rows = []
    for run in tr.pipeline_runs(settings, pipeline_run_id, role="train"):
        if run.info.status != "FINISHED":
            continue
        t, m = run.data.tags, run.data.metrics
        rows.append({"model": t.get(tr.TAG_MODEL), "target": t.get(tr.TAG_TARGET),
                     "split": t.get(tr.TAG_SPLIT), "split_kind": t.get(tr.TAG_SPLIT_KIND),
                     "fold": t.get(tr.TAG_FOLD), "repeat": int(t.get(tr.TAG_REPEAT, 0)),
                     "r2": m.get(tr.METRIC_R2), "rmse": m.get(tr.METRIC_RMSE),
                     "mae": m.get(tr.METRIC_MAE), "run_id": run.info.run_id})
    cols = ["model", "target", "split", "split_kind", "fold", "repeat", "r2", "rmse", "mae",
            "run_id"]
    return pd.DataFrame(rows, columns=cols)


def summarise(runs: pd.DataFrame) -> pd.DataFrame:
    """Means over folds and repeats (CV) or repeats (LOEO): columns split_kind, element ("" for
    CV), target, model, r2, rmse, mae, n_runs."""
    runs = runs.assign(element=np.where(runs.split_kind == "loeo", runs.fold, ""))
    keys = ["split_kind", "element", "target", "model"]
    agg = runs.groupby(keys, as_index=False).agg(r2=("r2", "mean"), rmse=("rmse", "mean"),
                                                 mae=("mae", "mean"), n_runs=("run_id", "size"))
    return agg.sort_values(keys).reset_index(drop=True)


def markdown_table(df: pd.DataFrame) -> str:
    """A pipe-table of ``df``'s columns and rows (no index), ending in a newline."""
    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "|" + "---|" * len(df.columns)
    body = ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def format_tables(summary: pd.DataFrame) -> dict[str, str]:
    """Markdown of the paper's layouts: ``table2_cv`` (target x model, "R2 / RMSE") and
    ``table3_loeo`` (element x target/model, "R2 / RMSE")."""
    cell = summary.assign(cell=[f"{a:.3f} / {b:.3f}" for a, b in zip(summary.r2, summary.rmse,
                                                                    strict=True)])
    out = {}
    cv = cell[cell.split_kind == "cv"]
    if len(cv):
        t2 = cv.pivot(index="target", columns="model", values="cell").reset_index()
        out["table2_cv"] = markdown_table(t2.fillna("-"))
    lo = cell[cell.split_kind == "loeo"]
    if len(lo):
        lo = lo.assign(col=lo.target + " " + lo.model)
        t3 = lo.pivot(index="element", columns="col", values="cell").reset_index()
        out["table3_loeo"] = markdown_table(t3.fillna("-"))
    return out


def results_table(settings: Settings, pipeline_run_id: str) -> pd.DataFrame:
    """The pipeline run's results, logged as Table 2 (CV) and Table 3 (LOEO) in Markdown
    (:func:`format_tables`) + csv under ``results/`` of the parent run. Returns
    :func:`summarise`'s frame (the CLI prints its tables; the library prints nothing)."""
    import mlflow

    summary = summarise(collect_runs(settings, pipeline_run_id))
    tables = format_tables(summary)
    parent = tr.find_parent_run(settings, pipeline_run_id)
    if parent:
        client = mlflow.MlflowClient()
        with tempfile.TemporaryDirectory() as tmp:
            summary.to_csv(Path(tmp) / "results.csv", index=False)
            for name, md in tables.items():
                (Path(tmp) / f"{name}.md").write_text(md)
            client.log_artifacts(parent, tmp, tr.ARTIFACT_RESULTS)
    return summary


def finish_pipeline_run(settings: Settings, pipeline_run_id: str,
                        failed_task: str | None = None) -> str | None:
    """Close the MLflow parent run of a finished (or failed) pipeline run: its description gets
    the results tables (Table 2/3 layout, :func:`format_tables`) and the report path, its
    status ``FINISHED`` (``FAILED`` naming ``failed_task``). Returns the parent run id, or None
    when the run has none. Called by ``run-local`` and by a cluster run's exit task."""
    runs = collect_runs(settings, pipeline_run_id)
    tables = format_tables(summarise(runs)) if len(runs) else {}
    report = settings.path(settings.paths.reports_dir) / pipeline_run_id / "report.html"
    return tr.finish_parent_run(settings, pipeline_run_id, tables, failed_task=failed_task,
                                report=str(report) if report.exists() else None)
