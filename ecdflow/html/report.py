"""The evaluation report a scientist reads: protocol banner, result tables named after what ran,
best cell per row in bold, per-element errors where the sample supports them, inline figures.

Rendered with Jinja2 (``templates/report.html.j2``, ``templates/report.md.j2``). The HTML is
one self-contained file: figures are base64 ``data:`` URIs, styles are inline, nothing is
fetched from the network.
"""

from __future__ import annotations

import base64
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from ecdflow import tracking

PLOT_CAPTIONS = {
    "parity": ("Parity plot: CV test predictions of every fold{rep} pooled. The legend's R2 and "
               "RMSE are pooled over those predictions; the tables show the mean over folds, so "
               "the two differ slightly."),
    "learning": "Training and validation loss per epoch of the first CV fold.",
    "tsne": ("t-SNE (seeded) of Magpie features and of max-pooled procrystal ECDs; test "
             "materials of each leave-one-element-out split in red."),
}


def _span(values: list) -> str:
    lo, hi = min(values), max(values)
    return f"{lo}" if lo == hi else f"{lo}-{hi}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def protocol_of(train_runs: list, preds: pd.DataFrame, splits: dict | None,
                configured_folds: int) -> dict:
    """What actually ran, read from the finished training runs (MLflow ``Run`` objects with
    ecdflow's tags/params/metrics), their CV predictions and the parent run's ``splits.json``.

    Returns keys profile, git_commit, data_version, n_materials, materials_source, grid,
    n_folds, k_source, folds (CV fold indices that ran), repeats (repeat indices), loeo
    (held-out elements), models, targets, epochs_max, epochs_run ("3-8" or None),
    n_runs. ``k_source`` says where k came from: the logged splits, or the configuration
    when the parent run has no ``splits.json`` (flagged in the banner).
    """
    def tags(key: str) -> list[str]:
        return sorted({r.data.tags.get(key, "") for r in train_runs} - {""})

    cv = [r for r in train_runs if r.data.tags.get(tracking.TAG_SPLIT_KIND) == "cv"]
    folds = sorted({r.data.tags.get(tracking.TAG_FOLD, "") for r in cv} - {""}, key=_int_or_str)
    repeats = sorted({int(r.data.tags.get(tracking.TAG_REPEAT, 0) or 0) for r in train_runs})
    grids = sorted({r.data.params.get("grid", "") for r in train_runs} - {""}, key=_int_or_str)
    # epoch-trained (Keras) runs log a loss history; the random forest logs epochs_run = 1
    fitted = [r for r in train_runs if "loss" in r.data.metrics]
    ep_max = sorted({int(float(r.data.params["training.epochs"])) for r in fitted
                     if "training.epochs" in r.data.params})
    ep_run = [int(r.data.metrics["epochs_run"]) for r in fitted if "epochs_run" in r.data.metrics]
    if splits:
        cv_names = [k for k in splits if k.startswith("cv-")]
        n_folds, k_source = len(cv_names), "splits.json of the parent run"
        ids = {m for k in cv_names for part in ("train", "test") for m in splits[k][part]}
        n_mat, mat_source = len(ids), "CV splits"
    else:
        n_folds, k_source = configured_folds, "configuration (no splits.json on the parent run)"
        n_mat = int(preds[preds.split_kind == "cv"].material_id.nunique()) if len(preds) else 0
        mat_source = "CV test predictions"
    return {
        "profile": ", ".join(tags(tracking.TAG_PROFILE)) or "unknown",
        "git_commit": ", ".join(c[:12] for c in tags(tracking.TAG_GIT)) or "unknown",
        "data_version": ", ".join(tags(tracking.TAG_DATA_VERSION)) or "unknown",
        "n_materials": n_mat, "materials_source": mat_source,
        "grid": ", ".join(f"{g}\u00b3 points" for g in grids) or "-",
        "n_folds": n_folds, "k_source": k_source, "folds": folds, "repeats": repeats,
        "loeo": sorted({r.data.tags.get(tracking.TAG_FOLD, "") for r in train_runs
                        if r.data.tags.get(tracking.TAG_SPLIT_KIND) == "loeo"} - {""}),
        "models": tags(tracking.TAG_MODEL), "targets": tags(tracking.TAG_TARGET),
        "epochs_max": _span(ep_max) if ep_max else None,
        "epochs_run": _span(ep_run) if ep_run else None, "n_runs": len(train_runs),
    }


def _int_or_str(v: str):
    return (0, int(v), "") if str(v).isdigit() else (1, 0, str(v))


def cv_heading(p: dict) -> str:
    """"k-fold CV (k = 5): folds 0, 1 ran (2 of 5), 1 repeat" - the protocol that ran."""
    ran = len(p["folds"])
    folds = "all folds ran" if ran == p["n_folds"] else \
        f"folds {', '.join(p['folds'])} ran ({ran} of {p['n_folds']})"
    return f"k-fold CV (k = {p['n_folds']}): {folds}, {_plural(len(p['repeats']), 'repeat')}"


def _cells(df: pd.DataFrame) -> dict:
    """A table for the templates: columns, rows of (label, [{text, best}]); ``**x**`` cells
    (the best of their row) become ``best``."""
    rows = []
    for idx, r in df.iterrows():
        label = " / ".join(map(str, idx)) if isinstance(idx, tuple) else str(idx)
        cells = []
        for v in r:
            s = str(v)
            best = s.startswith("**") and s.endswith("**")
            cells.append({"text": s.strip("*") if best else s, "best": best})
        rows.append({"label": label, "cells": cells})
    names = df.index.names
    return {"index": " / ".join(n or "" for n in names), "columns": [str(c) for c in df.columns],
            "rows": rows}


def element_table(elem: pd.DataFrame, target: str, min_n: int) -> tuple[pd.DataFrame, int, int]:
    """Per-element CV error of ``target`` as element x model "MAE / RMSE" (GPa, 1 decimal),
    only elements with at least ``min_n`` distinct test materials, worst (highest mean MAE)
    first, lowest MAE per row in ``**``. Returns (table, elements shown, elements total)."""
    e = elem[elem.target == target]
    total = e.element.nunique()
    n = e.groupby("element")["n"].max()
    keep = n[n >= min_n].index
    e = e[e.element.isin(keep)]
    if e.empty:
        return pd.DataFrame(), 0, total
    mae = e.pivot(index="element", columns="model", values="mae_gpa")
    rmse = e.pivot(index="element", columns="model", values="rmse_gpa")
    order = mae.mean(axis=1).sort_values(ascending=False).index
    out = pd.DataFrame(index=order, columns=mae.columns, dtype=object)
    for el in order:
        best = mae.loc[el].dropna().idxmin() if mae.loc[el].notna().any() else None
        for m in mae.columns:
            a, b = mae.loc[el, m], rmse.loc[el, m]
            cell = "-" if math.isnan(a) else f"{a:.1f} / {b:.1f}"
            out.loc[el, m] = f"**{cell}**" if m == best else cell
    out.insert(0, "n", [int(n[el]) for el in order])
    out.index = pd.Index(order, name="element")
    return out, len(order), total


def coverage_section(cov: pd.DataFrame) -> dict | None:
    """The report section of ``ecdflow.uncertainty.coverage_table``: rows model / target,
    columns CV (nested), LOEO (pooled) and each LOEO element; cells "coverage / mean width
    (GPa)"."""
    if cov is None or cov.empty:
        return None
    nominal = float(cov.nominal.iloc[0])
    t = cov.assign(cell=[f"{c:.2f} / {w:.3g}" for c, w in zip(cov.coverage, cov.width_gpa,
                                                              strict=True)])
    wide = t.pivot_table(index=["model", "target"], columns="test_set", values="cell",
                         aggfunc="first")
    order = [c for c in ("cv", "loeo") if c in wide.columns] + sorted(
        c for c in wide.columns if c not in ("cv", "loeo"))
    wide = wide[order].fillna("-").rename(columns={"cv": "CV (nested)", "loeo": "LOEO (all)"})
    note = (f"Empirical coverage / mean width (GPa) of the {nominal:.0%} split-conformal "
            "interval (ecdflow.uncertainty: the ceil((n+1)(1-alpha))-th smallest out-of-fold "
            "residual; Angelopoulos & Bates 2021). CV: for each fold, calibrated on the other "
            "folds' test residuals, evaluated on that fold, pooled (goal 0.88-0.92). LOEO: "
            "calibrated on all CV residuals, evaluated on each held-out element's materials; "
            "a new element breaks exchangeability, so LOEO coverage below nominal is "
            "expected and shown as measured. Also in coverage.csv.")
    return {"title": f"Prediction intervals: coverage at nominal {nominal:.0%}", "note": note,
            "table": _cells(wide)}


def _figure(path: Path, repeats: int) -> dict:
    """A figure for the templates: title from the file name (``parity_<model>_<target>``,
    ``learning_<model>_<target>``, ``tsne_<features>``), caption, base64 data URI."""
    kind, _, rest = path.stem.partition("_")
    for target in ("K_VRH", "G_VRH"):
        if rest.endswith("_" + target):
            rest = f"{rest[:-len(target) - 1]}, {target}"
    title = {"parity": "Parity", "learning": "Learning curve", "tsne": "t-SNE"}.get(kind, kind)
    caption = PLOT_CAPTIONS.get(kind, "").format(
        rep=f" and {repeats} repeats" if repeats > 1 else "")
    return {"name": path.name, "title": f"{title}: {rest}", "caption": caption, "kind": kind,
            "src": "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode()}


def _env():
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    return Environment(loader=PackageLoader("ecdflow.html", "templates"),
                       autoescape=select_autoescape(enabled_extensions=("html.j2",),
                                                    default_for_string=True),
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                       keep_trailing_newline=True)


def render_report(out_dir: Path, pipeline_run_id: str, protocol: dict,
                  tables: dict[str, pd.DataFrame], comparison: pd.DataFrame,
                  elem: pd.DataFrame, figures: list[Path], min_element_n: int,
                  data_note: str, coverage: pd.DataFrame | None = None) -> tuple[Path, Path]:
    """Write ``report.md`` and the self-contained ``report.html`` into ``out_dir``.

    Args:
        protocol: ``protocol_of``'s dict (what ran).
        tables: ``table2_cv`` (target x model) and ``table3_loeo`` ((element, target) x model),
            cells "R2 / RMSE (GPa)" means over folds/repeats, best cell as ``**x**``.
        comparison: the paper's Table 2 beside ours (rows labelled).
        elem: ``element_errors`` rows (model, target, element, n, mae_gpa, rmse_gpa).
        figures: PNG paths (embedded as base64 in the HTML, linked in the Markdown).
        min_element_n: per-element rows need at least this many distinct test materials.
        coverage: ``ecdflow.uncertainty.coverage_table`` rows (a section when given).

    Returns:
        (report.md, report.html) paths.
    """
    p = protocol
    reps = len(p["repeats"])
    mean_over = (f"mean over {_plural(len(p['folds']), 'fold')}"
                 + (f" x {reps} repeats" if reps > 1 else ""))
    sections = []
    if "table2_cv" in tables:
        sections.append({"title": f"{cv_heading(p)}; R2 / RMSE (GPa)",
                         "note": (f"Cells: {mean_over} (the layout of the paper's Table 2). "
                                  "Best (lowest RMSE) per row in bold."),
                         "table": _cells(tables["table2_cv"])})
    if "table3_loeo" in tables:
        sections.append({"title": "Leave-one-element-out; R2 / RMSE (GPa)",
                         "note": ("Each row: trained without any material containing the "
                                  "element, tested on those materials (the layout of the "
                                  "paper's Table 3). "
                                  + (f"Mean over {reps} repeats. " if reps > 1 else "")
                                  + "Best (lowest RMSE) per row in bold."),
                         "table": _cells(tables["table3_loeo"])})
    if len(comparison):
        sections.append({"title": "Beside the paper's Table 2 (different data)",
                         "note": "Rows labelled by source. Different data: compare trends, "
                                 "not values.", "table": _cells(comparison)})
    for target in sorted(elem.target.unique()) if len(elem) else []:
        t, shown, total = element_table(elem, target, min_element_n)
        note = (f"CV test error per element, MAE / RMSE (GPa), pooled over folds; a material "
                f"counts once for each of its elements. {shown} of {total} elements have at "
                f"least {min_element_n} test materials (report.min_element_n) and are shown, "
                "worst first; all are in element_errors.csv. Lowest MAE per row in bold.")
        sections.append({"title": f"Per-element CV error, {target}", "note": note,
                         "table": _cells(t) if shown else None})
    cov_section = coverage_section(coverage) if coverage is not None else None
    if cov_section:
        sections.append(cov_section)
    figs = [_figure(f, reps) for f in figures]
    banner = [
        ("Profile", p["profile"]), ("Materials", f"{p['n_materials']} ({p['materials_source']})"),
        ("ECD grid", p["grid"]),
        ("Cross-validation", f"k = {p['n_folds']} (from the {p['k_source']}); folds that ran: "
                             f"{', '.join(p['folds']) or 'none'}"),
        ("Repeats", f"{reps} (indices {', '.join(map(str, p['repeats']))})"),
        ("Leave-one-element-out", ", ".join(p["loeo"]) or "none"),
        ("Epochs", (f"up to {p['epochs_max']} (early stopping"
                    + (f"; ran {p['epochs_run']})" if p["epochs_run"] else ")"))
         if p["epochs_max"] else "- (no epoch-trained model logged its epochs)"),
        ("Models", ", ".join(p["models"])), ("Targets", ", ".join(p["targets"])),
        ("Training runs", str(p["n_runs"])),
        ("Data version", p["data_version"]), ("Git commit", p["git_commit"]),
    ]
    ctx = {"pipeline_run_id": pipeline_run_id, "banner": banner, "sections": sections,
           "figures": figs, "data_note": data_note,
           "generated": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")}
    env = _env()
    mdp, htp = out_dir / "report.md", out_dir / "report.html"
    mdp.write_text(env.get_template("report.md.j2").render(**ctx))
    htp.write_text(env.get_template("report.html.j2").render(**ctx))
    (out_dir / "protocol.json").write_text(json.dumps(p, indent=1) + "\n")
    return mdp, htp
