"""Gather the training runs of one pipeline run into the paper's tables, plots and a report.

Everything is read back from MLflow (tags, GPa metrics, ``predictions.csv``, loss history)
and written to ``<reports_dir>/<pipeline_run_id>/`` (report.md, report.html, PNGs, CSVs), then
logged to the pipeline's parent run under ``evaluation/``.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from ecdflow import tracking
from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.log import get_logger

log = get_logger(__name__)

PAPER_TABLE2 = pd.DataFrame(
    {"rf_magpie": ["0.943 / 18.721", "0.794 / 16.142"],
     "cnn_magpie": ["0.944 / 18.423", "0.745 / 17.959"],
     "cnn3d": ["0.884 / 26.819", "0.745 / 17.944"],
     "cnn2d_se": ["0.912 / 23.401", "0.768 / 17.192"],
     "fusion": ["0.955 / 16.530", "0.804 / 15.780"]},
    index=pd.Index(["K_VRH", "G_VRH"], name="target"))
"""The paper's Table 2 (5-fold CV on FCC2170, VASP data): "R2 / RMSE (GPa)"."""
DATA_NOTE = ("Our numbers: the ecdflow Fm-3m benchmark (SevenNet 7net-l3i5 ML-potential labels, "
             "procrystal ECD). Paper: FCC2170 (VASP DFT labels and charge densities). Different "
             "data: compare trends, not values.")


def latest_pipeline_run_id(settings: Settings, profile: str | None = None) -> str:
    """The pipeline run id of the most recently started parent run (of ``profile``, the
    ``ecdflow.profile`` tag, when given).

    Raises:
        EcdflowError: no such parent run in the store.
    """
    import mlflow

    exp = tracking.configure(settings)
    flt = f"tags.\"{tracking.TAG_ROLE}\" = 'parent'"
    if profile:
        flt += f" and tags.\"{tracking.TAG_PROFILE}\" = '{profile}'"
    runs = mlflow.MlflowClient().search_runs(
        [exp], filter_string=flt, order_by=["attributes.start_time DESC"], max_results=1)
    if not runs:
        which = f" of profile '{profile}'" if profile else ""
        raise EcdflowError(f"no pipeline run{which} in the tracking store: train first")
    return runs[0].data.tags[tracking.TAG_PIPELINE_RUN]


def load_predictions(settings: Settings, pipeline_run_id: str) -> pd.DataFrame:
    """Every training run's ``predictions.csv`` (GPa) with run_id, model, target, split,
    split_kind, fold and repeat columns."""
    import mlflow

    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, run in enumerate(tracking.pipeline_runs(settings, pipeline_run_id)):
            if run.info.status != "FINISHED":
                continue
            try:
                path = mlflow.artifacts.download_artifacts(
                    run_id=run.info.run_id, artifact_path=tracking.ARTIFACT_PREDICTIONS,
                    dst_path=str(Path(tmp) / str(i)))
            except Exception:  # noqa: BLE001 - a run without predictions is skipped
                continue
            t = run.data.tags
            frames.append(pd.read_csv(path).assign(
                run_id=run.info.run_id, model=t.get(tracking.TAG_MODEL, ""),
                target=t.get(tracking.TAG_TARGET, ""), split=t.get(tracking.TAG_SPLIT, ""),
                split_kind=t.get(tracking.TAG_SPLIT_KIND, ""), fold=t.get(tracking.TAG_FOLD, ""),
                repeat=t.get(tracking.TAG_REPEAT, "0")))
    cols = ["material_id", "formula", "elements", "y_true", "y_pred", "run_id", "model",
            "target", "split", "split_kind", "fold", "repeat"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _best_marked(table: pd.DataFrame, rmse: pd.DataFrame) -> pd.DataFrame:
    """Bold (``**``) the lowest-RMSE cell of each row."""
    out = table.copy()
    for idx in table.index:
        row = rmse.loc[idx].dropna()
        if len(row):
            out.loc[idx, row.idxmin()] = f"**{table.loc[idx, row.idxmin()]}**"
    return out


def paper_tables(summary: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Table 2 (CV: target x model) and Table 3 (LOEO: element/target x model) as
    "R2 / RMSE (GPa)" strings, best (lowest RMSE) per row in bold."""
    s = summary.assign(cell=[f"{a:.3f} / {b:.3f}" for a, b in zip(summary.r2, summary.rmse,
                                                                 strict=True)])
    out = {}
    cv = s[s.split_kind == "cv"]
    if len(cv):
        cells = cv.pivot(index="target", columns="model", values="cell")
        out["table2_cv"] = _best_marked(cells, cv.pivot(index="target", columns="model",
                                                        values="rmse")).fillna("-")
    lo = s[s.split_kind == "loeo"]
    if len(lo):
        cells = lo.pivot(index=["element", "target"], columns="model", values="cell")
        out["table3_loeo"] = _best_marked(cells, lo.pivot(index=["element", "target"],
                                                          columns="model", values="rmse")
                                          ).fillna("-")
    return out


def paper_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Our CV Table 2 beside the paper's, one row per (target, source), labelled."""
    cv = summary[summary.split_kind == "cv"]
    ours = cv.assign(cell=[f"{a:.3f} / {b:.3f}" for a, b in zip(cv.r2, cv.rmse, strict=True)]
                     ).pivot(index="target", columns="model", values="cell")
    rows = []
    for target in PAPER_TABLE2.index:
        rows.append(PAPER_TABLE2.loc[target].rename(f"{target}: paper (FCC2170, VASP)"))
        if target in ours.index:
            rows.append(ours.loc[target].rename(f"{target}: ours (SevenNet + procrystal)"))
    return pd.DataFrame(rows).fillna("-")


def _elements(value) -> list[str]:
    """Element symbols from a predictions.csv ``elements`` cell ("Na Cl", "['Na', 'Cl']")."""
    s = str(value)
    for ch in "[]'\",;":
        s = s.replace(ch, " ")
    return [e for e in s.split() if e]


def element_errors(preds: pd.DataFrame) -> pd.DataFrame:
    """Per-element error of the CV predictions: model, target, element, n (distinct test
    materials holding the element), n_predictions (over folds and repeats), mae_gpa, rmse_gpa
    (2 decimals; a material counts once for each of its elements)."""
    cols = ["model", "target", "element", "n", "n_predictions", "mae_gpa", "rmse_gpa"]
    cv = preds[preds.split_kind == "cv"].copy()
    if cv.empty:
        return pd.DataFrame(columns=cols)
    cv["element"] = cv["elements"].map(_elements)
    cv["err"] = cv["y_pred"] - cv["y_true"]
    ex = cv.explode("element")
    g = ex.groupby(["model", "target", "element"])
    out = pd.DataFrame({"n": g["material_id"].nunique(), "n_predictions": g.size(),
                        "mae_gpa": g["err"].apply(lambda e: float(np.mean(np.abs(e)))),
                        "rmse_gpa": g["err"].apply(lambda e: float(np.sqrt(np.mean(e**2))))})
    out = out.reset_index().round({"mae_gpa": 2, "rmse_gpa": 2})
    return out[cols].sort_values(["target", "model", "mae_gpa"], ascending=[True, True, False])


def parity_plots(preds: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One parity plot (GPa) per model/target over the CV test predictions of all folds (and
    repeats) pooled; title and legend say "pooled", since the tables show fold means."""
    from ecdflow.plots import parity_plot

    paths = []
    cv = preds[preds.split_kind == "cv"]
    for (model, target), df in cv.groupby(["model", "target"]):
        n_folds = df.fold.nunique()
        paths.append(parity_plot(df.y_true, df.y_pred, out_dir / f"parity_{model}_{target}.png",
                                 title=f"{model} {target}: CV test, {n_folds} folds pooled",
                                 metrics_label="pooled"))
    return paths


def learning_curves(runs: list, out_dir: Path) -> list[Path]:
    """Loss curves (``loss``/``val_loss`` metric history) of the first CV run per model/target."""
    import mlflow

    from ecdflow.plots import learning_curve

    client = mlflow.MlflowClient()
    done, paths = set(), []
    for run in sorted(runs, key=lambda r: r.data.tags.get(tracking.TAG_SPLIT, "")):
        t = run.data.tags
        key = (t.get(tracking.TAG_MODEL), t.get(tracking.TAG_TARGET))
        if key in done or t.get(tracking.TAG_SPLIT_KIND) != "cv":
            continue
        hist = {k: [m.value for m in sorted(client.get_metric_history(run.info.run_id, k),
                                            key=lambda m: m.step)] for k in ("loss", "val_loss")}
        if hist["loss"]:
            done.add(key)
            paths.append(learning_curve(hist, out_dir / f"learning_{key[0]}_{key[1]}.png",
                                        title=f"{key[0]} {key[1]}: loss, first CV fold"))
    return paths


def max_pool(ecd: np.ndarray, out: int = 10) -> np.ndarray:
    """Max-pool an N^3 density to ``out``^3 values (pool N // out, edge cropped; the paper's
    6x6x6 pool at N = 60). Grids smaller than ``out`` are returned flat."""
    n = ecd.shape[0]
    p = n // out
    if p < 1:
        return ecd.reshape(-1)
    c = ecd[: p * out, : p * out, : p * out]
    return c.reshape(out, p, out, p, out, p).max(axis=(1, 3, 5)).reshape(-1)


def _materials(settings: Settings) -> pd.DataFrame:
    from ecdflow.data.table import read_rows

    return pd.DataFrame(read_rows(settings.path(settings.paths.materials)))


def tsne_features(settings: Settings, max_materials: int | None = 600
                  ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """The t-SNE inputs of the materials table (a sample of ``max_materials`` rows drawn with
    ``settings.seed``, in table order; all rows when None or when the table is smaller): the
    rows kept and ``{"magpie": (n, 132), "ecd": (n, 1000)}``, each column standardised
    (z-score over the rows kept; unitless). ECD: the procrystal density (e/Å^3) max-pooled to
    10^3 (``max_pool``; the paper's recipe). Rows whose structure or Magpie features fail are
    left out (logged with their count). A sample, not the first rows: the table is sorted by
    family, so its head would be a few families only."""
    from ecdflow.data.table import structure_of
    from ecdflow.density import procrystal_density
    from ecdflow.features import featurize

    mats = _materials(settings)
    if max_materials is not None and len(mats) > max_materials:
        mats = mats.sample(n=max_materials, random_state=settings.seed).sort_index()
    feats, keep, failed = [], [], []
    for i, r in mats.iterrows():
        try:
            s = structure_of(r)
            feats.append(max_pool(procrystal_density(s, settings.density.grid,
                                                     settings.density.smearing_A)))
            keep.append(i)
        except Exception as exc:  # noqa: BLE001 - a structure that fails is left out of the map
            failed.append(f"{r.get('material_id')}: {exc}")
    if failed:
        log.warning("t-SNE: %d of %d materials left out (no density; first: %s)", len(failed),
                    len(mats), failed[0])
    mats = mats.loc[keep].reset_index(drop=True)
    # the one check (features.featurize): rows without finite features are left out, counted
    mag, errors = featurize(list(mats.formula), where=[str(m) for m in mats.material_id])
    ok = np.array([not e for e in errors], dtype=bool)
    if not ok.all():
        first = next(e for e in errors if e)
        log.warning("t-SNE: %d of %d materials left out (no usable Magpie features; first: %s)",
                    int((~ok).sum()), len(ok), first)
    ecd = np.stack(feats)[ok] if feats else np.zeros((0, 1000))
    z = {name: (x - x.mean(0)) / (x.std(0) + 1e-9)
         for name, x in (("magpie", np.asarray(mag[ok], float)), ("ecd", ecd))}
    return mats[ok].reset_index(drop=True), z


TSNE_COLUMNS = 4
"""Panels per row of the t-SNE figures (11 held-out elements: 3 rows of 4)."""


def tsne_maps(settings: Settings, elements: list[str], out_dir: Path,
              max_materials: int | None = 600,
              features: tuple[pd.DataFrame, dict[str, np.ndarray]] | None = None) -> list[Path]:
    """t-SNE (seeded) of Magpie features and of 10^3 max-pooled procrystal ECDs of the materials
    table (``tsne_features``, or ``features`` already computed), coloured train/test for each
    held-out LOEO element (or by K_VRH without LOEO)."""
    from sklearn.manifold import TSNE

    from ecdflow.plots import _pyplot

    mats, z = features or tsne_features(settings, max_materials)
    if len(mats) < 5:
        return []
    plt = _pyplot()
    paths = []
    for name, x in z.items():
        emb = TSNE(2, perplexity=min(30.0, (len(x) - 1) / 3), random_state=settings.seed,
                   init="pca").fit_transform(x)
        panels = elements or [""]
        cols = min(len(panels), TSNE_COLUMNS)
        rows = -(-len(panels) // cols)
        fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 4 * rows), squeeze=False)
        for ax in axes.flat[len(panels):]:
            ax.set_axis_off()
        for ax, el in zip(axes.flat, panels, strict=False):
            if el:
                test = mats.elements.map(lambda es, el=el: el in es).to_numpy()
                ax.scatter(emb[~test, 0], emb[~test, 1], s=6, c="tab:blue", label="train")
                ax.scatter(emb[test, 0], emb[test, 1], s=6, c="tab:red", label=f"test ({el})")
                ax.legend(fontsize=7)
            else:
                sc = ax.scatter(emb[:, 0], emb[:, 1], s=6, c=mats.K_VRH.clip(0, 500))
                fig.colorbar(sc, ax=ax, label="K_VRH (GPa)")
            ax.set(title=f"t-SNE {name} {el}".strip(), xticks=[], yticks=[])
        fig.tight_layout()
        path = out_dir / f"tsne_{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


def _md_table(df: pd.DataFrame) -> str:
    from ecdflow.results import markdown_table

    return markdown_table(df.reset_index()).rstrip("\n")


def _logged_splits(parent_run_id: str | None) -> dict | None:
    """The ``splits.json`` logged to the parent run (None when absent)."""
    import json

    import mlflow

    if not parent_run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(
                run_id=parent_run_id, artifact_path=tracking.ARTIFACT_SPLITS, dst_path=tmp)
        except Exception:  # noqa: BLE001 - no splits logged: the report says so
            return None
        return json.loads(Path(path).read_text())


def write_report(out_dir: Path, pipeline_run_id: str, protocol: dict,
                 tables: dict[str, pd.DataFrame], comparison: pd.DataFrame,
                 elem: pd.DataFrame, figures: list[Path], min_element_n: int = 10,
                 coverage: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Markdown and self-contained HTML report (``ecdflow.html.report.render_report``)."""
    from ecdflow.html.report import render_report

    return render_report(out_dir, pipeline_run_id, protocol, tables, comparison, elem, figures,
                         min_element_n, DATA_NOTE, coverage=coverage)


def evaluate_pipeline_run(settings: Settings, pipeline_run_id: str, tsne: bool = True) -> dict:
    """Tables, plots and report of one pipeline run, logged to its parent run.

    Returns:
        ``{"report_md", "report_html", "tables" (name -> markdown), "summary" (records),
        "figures" (names), "out_dir"}``; metrics are R2 and GPa.
    """
    import mlflow

    from ecdflow.results import collect_runs, summarise

    runs = [r for r in tracking.pipeline_runs(settings, pipeline_run_id)
            if r.info.status == "FINISHED"]
    if not runs:
        raise EcdflowError(f"no finished training runs for pipeline run '{pipeline_run_id}'")
    out_dir = settings.path(settings.paths.reports_dir) / pipeline_run_id
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = summarise(collect_runs(settings, pipeline_run_id))
    tables = paper_tables(summary)
    comparison = paper_comparison(summary)
    preds = load_predictions(settings, pipeline_run_id)
    elem = element_errors(preds)
    from ecdflow.uncertainty import coverage_metrics, coverage_table, scores_by_model

    cov = coverage_table(preds, settings.registry.interval_coverage,
                         scores_by_model(runs, settings.training.log_target))
    cov.to_csv(out_dir / "coverage.csv", index=False)
    figures = parity_plots(preds, out_dir) + learning_curves(runs, out_dir)
    if tsne:
        loeo = sorted(summary[summary.split_kind == "loeo"].element.unique())[:4]
        figures += tsne_maps(settings, list(loeo), out_dir)
    summary.to_csv(out_dir / "summary.csv", index=False)
    elem.to_csv(out_dir / "element_errors.csv", index=False)
    comparison.to_csv(out_dir / "paper_comparison.csv")
    from ecdflow.html.report import protocol_of

    parent = tracking.find_parent_run(settings, pipeline_run_id)
    protocol = protocol_of(runs, preds, _logged_splits(parent), settings.splits.n_folds)
    mdp, htp = write_report(out_dir, pipeline_run_id, protocol, tables, comparison, elem,
                            figures, settings.report.min_element_n, coverage=cov)
    if parent:
        client = mlflow.MlflowClient()
        for r in summary[summary.split_kind == "cv"].itertuples():
            for m in ("r2", "rmse", "mae"):
                v = float(getattr(r, m))
                if not math.isnan(v):
                    unit = "" if m == "r2" else "_gpa"
                    client.log_metric(parent, f"cv_{r.target}_{r.model}_{m}{unit}", v)
        for (model, target), t in cov.groupby(["model", "target"]):
            for k, v in coverage_metrics(t).items():
                client.log_metric(parent, f"cv_{target}_{model}_{k}", v)
        for f in sorted(out_dir.iterdir()):
            if f.is_file():
                client.log_artifact(parent, str(f), "evaluation")
    log.info("evaluation report: %s", mdp)
    return {"report_md": str(mdp), "report_html": str(htp), "out_dir": str(out_dir),
            "protocol": protocol,
            "tables": {k: _md_table(v) for k, v in tables.items()},
            "summary": summary.to_dict("records"), "figures": [f.name for f in figures]}
