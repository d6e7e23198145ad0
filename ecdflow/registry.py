"""Model registry: register the best model type of a pipeline run, record the gate's verdict,
promote and roll back.

One registered model per target (``settings.registry.model_names``). Aliases, not stages:

- ``challenger``: the latest registered candidate (set by :func:`register_best`);
- ``champion``: the model users get (moved only by :func:`promote` / :func:`rollback`).

The gate (``ecdflow.gate``) judges a challenger; :func:`bless` (the pipeline's ``gate`` task)
records that verdict on the version, and :func:`promote` (a human act) reads it.

A version is the *fold ensemble* of the selected model type (every CV fold x repeat model of
the pipeline run), wrapped in :class:`ecdflow.serve.ModulusEnsemble`: no refit on all data,
so the registered model is exactly what was evaluated.
All metrics are in GPa; lower is better for the gate metric (``settings.registry.metric``).

Each version also stores its interval calibration (``calibration.json``: split-conformal on
the members' CV test-fold residuals), its applicability domain (``domain.npz``) and the
density source it was trained on (manifest ``density_source``); see ``ecdflow.uncertainty``
and docs/registry.md.

About 540 lines, kept whole on purpose: every function here reads or writes the same registry
record (a version's artifacts, tags, aliases); the judgement lives in ``ecdflow.gate`` and the
version's model card (its Markdown description) in ``ecdflow.model_card``.
"""

from __future__ import annotations

import getpass
import json
import math
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

from ecdflow import tracking
from ecdflow.config import Settings
from ecdflow.errors import EcdflowError, GateRefused
from ecdflow.gate import (
    TAG_GATE,
    TAG_GATE_AT,
    TAG_GATE_CHAMPION,
    TAG_GATE_REASON,
    gate,
    recorded_verdict,
    tag_float,
)
from ecdflow.log import get_logger
from ecdflow.model_card import model_card
from ecdflow.schema import (
    BASELINE_MODEL,
    DENSITY_PROCRYSTAL,
    ECD_DTYPE_PARAM,
    GRID_PARAM,
    INPUT_ECD,
    TARGET_ALIASES,
    TargetName,
)
from ecdflow.tracking import TAG_BASELINE, TAG_CV
from ecdflow.uncertainty import pct, score_for

log = get_logger(__name__)

CHALLENGER = "challenger"
CHAMPION = "champion"
BASELINE = BASELINE_MODEL
TAG_CV_R2 = "ecdflow.cv_r2"
TAG_MEMBERS = "ecdflow.members"  # comma-separated training run ids
TAG_PREV = "ecdflow.previous_champion"
PIP_PACKAGES = ("mlflow", "tensorflow", "keras", "numpy", "pandas", "scikit-learn",
                "pymatgen", "matminer", "joblib", "pydantic", "pyyaml")


def resolve_target(name: str) -> TargetName:
    """``bulk``/``K``/``K_VRH`` -> ``K_VRH``; ``shear``/``G``/``G_VRH`` -> ``G_VRH``."""
    t = TARGET_ALIASES.get(name.strip().lower())
    if t is None:
        raise EcdflowError(f"unknown target '{name}' (use bulk, shear, K_VRH or G_VRH)")
    return t  # type: ignore[return-value]


def metric_key(metric: str) -> str:
    """Training-run metric name of a gate metric (``rmse`` -> ``test_rmse_gpa``)."""
    return {"rmse": tracking.METRIC_RMSE, "mae": tracking.METRIC_MAE}[metric]


def _client():
    import mlflow

    return mlflow.MlflowClient()


def cv_summary(settings: Settings, pipeline_run_id: str) -> pd.DataFrame:
    """Mean CV metrics per (model, target) of one pipeline run: r2, rmse, mae (GPa), n_runs
    (``ecdflow.results.summarise`` of the finished training runs)."""
    from ecdflow.results import collect_runs, summarise

    runs = collect_runs(settings, pipeline_run_id)
    summary = summarise(runs[runs["split_kind"] == "cv"])
    return summary.drop(columns=["split_kind", "element"])


def select_best(summary: pd.DataFrame, target: str, metric: str) -> str:
    """Model type with the lowest mean CV ``metric`` (rmse/mae, GPa) for ``target``."""
    sub = summary[(summary["target"] == target)].dropna(subset=[metric])
    if sub.empty:
        raise EcdflowError(f"no CV training runs with {metric} for {target}")
    return str(sub.sort_values([metric, "model"]).iloc[0]["model"])


def _log_target(run, settings: Settings) -> bool:
    """Whether a training run's model outputs log10(GPa): its params, else the settings."""
    for key, val in run.data.params.items():
        if key.split(".")[-1] == "log_target":
            return str(val).lower() in ("true", "1", "yes")
    return settings.training.log_target


def _grid(run, settings: Settings) -> int:
    """The density grid a training run used: its ``grid`` param, else the settings."""
    val = run.data.params.get(GRID_PARAM)
    return int(float(val)) if val is not None else settings.density.grid


def ecd_dtype(run, settings: Settings) -> str:
    """The storage dtype of the densities a training run was fitted and scored on (its
    ``ecd_dtype`` param, else ``records.dtype``: the records it read were written with it)."""
    return str(run.data.params.get(ECD_DTYPE_PARAM) or settings.records.dtype)


def _density_source(run, settings: Settings, grid: int) -> dict:
    """Density provenance of a training run: its ``density_source`` param (procrystal when
    absent: runs logged before the param held procrystal densities) with the settings'
    smearing."""
    from ecdflow.records import density_source

    kind = run.data.params.get("density_source") or DENSITY_PROCRYSTAL
    return density_source(kind, grid, settings.density.smearing_A)


def calibrate(settings: Settings, pipeline_run_id: str, model: str, target: str, score: str,
              member_run_ids: list[str]) -> dict:
    """Calibration data of a fold ensemble (``ecdflow.uncertainty``).

    Reads the pipeline run's ``predictions.csv`` of ``model``/``target`` (each material's
    prediction averaged over the repeats of its split, ``uncertainty.mean_over_repeats``): the
    CV test folds of the member runs calibrate the interval (nominal
    ``registry.interval_coverage``); the coverage table measures it nested over CV folds and
    on every LOEO test set. The domain is the Magpie features and elements of the CV
    materials.

    Returns:
        ``calibration`` (JSON dict), ``domain`` (:class:`ecdflow.uncertainty.Domain`),
        ``table`` (coverage table) and ``metrics`` (``coverage_90``, ``interval_width_90``
        (GPa), ``loeo_coverage_90`` ... for 90%).

    Raises:
        EcdflowError: no CV predictions for the members.
    """
    from ecdflow.evaluate import load_predictions
    from ecdflow.uncertainty import coverage_metrics, coverage_table, mean_over_repeats

    cov = settings.registry.interval_coverage
    preds = load_predictions(settings, pipeline_run_id)
    preds = preds[(preds.model == model) & (preds.target == target)] if len(preds) else preds
    if len(preds):  # the members' CV predictions and every LOEO set, repeats averaged
        preds = mean_over_repeats(
            preds[(preds.split_kind != "cv") | preds.run_id.isin(member_run_ids)])
    cv = preds[preds.split_kind == "cv"] if len(preds) else preds
    if cv.empty:
        raise EcdflowError(f"no CV test predictions of {model}/{target} in pipeline run "
                           f"{pipeline_run_id}: cannot calibrate its interval")
    table = coverage_table(preds, cov, {model: score})
    mats = cv.drop_duplicates("material_id")
    elements = {e for els in mats.elements.astype(str) for e in els.split()}
    metrics = coverage_metrics(table)
    log.info("interval %s/%s: %s", model, target,
             ", ".join(f"{k} {v:.3g}" for k, v in metrics.items()))
    return {**uncertainty_record(cv, list(mats.formula), elements, cov, score),
            "table": table, "metrics": metrics}


UQ_ARTIFACTS = {"calibration": "calibration.json", "domain": "domain.npz"}
"""Pyfunc artifact name -> file of a version's interval calibration and domain; the manifest
names them under the same keys (``ecdflow.serve.load_uncertainty``)."""


def uncertainty_record(cv, formulas: list[str], elements, coverage: float, score: str) -> dict:
    """Interval calibration and applicability domain of a fold ensemble: the one glue of
    ``register_best`` and ``ecdflow pretrained build``.

    Args:
        cv: the members' CV test-fold predictions (columns y_true, y_pred, GPa), every
            training material once.
        formulas: the training materials' formulas (the domain's Magpie features).
        elements: every element symbol of the training materials.
        coverage: nominal 1 - alpha; score: ``abs``/``log`` (``uncertainty.score_for``).

    Returns:
        ``calibration`` (``uncertainty.calibration`` dict), ``domain`` (``uncertainty.Domain``).
    """
    from ecdflow.features import featurize
    from ecdflow.uncertainty import Domain, calibration

    x, _ = featurize(list(formulas))
    return {"calibration": calibration(cv, coverage, score), "domain": Domain(x, elements)}


def save_uncertainty(uq: dict, folder: Path) -> dict[str, str]:
    """Write ``uq`` (:func:`uncertainty_record`) under ``folder``; returns the pyfunc artifacts
    (name -> path) to add, whose names are also the manifest's ``calibration``/``domain``."""
    folder = Path(folder)
    (folder / UQ_ARTIFACTS["calibration"]).write_text(json.dumps(uq["calibration"], indent=1))
    uq["domain"].save(folder / UQ_ARTIFACTS["domain"])
    return {k: str(folder / f) for k, f in UQ_ARTIFACTS.items()}


def export_member(run_id: str, dest: Path) -> Path:
    """Load the model logged as ``model`` by a training run and save it natively under
    ``dest`` (``.keras`` for Keras, joblib for scikit-learn). Returns the file path."""
    import mlflow

    uri = f"runs:/{run_id}/{tracking.MODEL_NAME}"
    flavors = mlflow.models.get_model_info(uri).flavors
    if "keras" in flavors or "tensorflow" in flavors:
        loader = mlflow.keras if "keras" in flavors else mlflow.tensorflow
        model = loader.load_model(uri)
        path = dest / f"{run_id}.keras"
        model.save(path)
        return path
    if "sklearn" in flavors:
        import joblib

        model = mlflow.sklearn.load_model(uri)
        path = dest / f"{run_id}.joblib"
        joblib.dump(model, path)
        return path
    raise EcdflowError(f"run {run_id}: model flavor {sorted(flavors)} is not Keras or sklearn")


def pip_requirements() -> list[str]:
    """Pinned requirements of the served model (taken from this environment)."""
    out = []
    for pkg in PIP_PACKAGES:
        try:
            out.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    return out


def _fmt(x: float) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.6g}"


def register_best(settings: Settings, pipeline_run_id: str, target: str):
    """Register the best CV model type of a pipeline run as the new ``challenger``.

    Args:
        settings: configuration (registry names, gate metric, density grid).
        pipeline_run_id: the pipeline run whose training runs are gathered.
        target: ``K_VRH``/``G_VRH`` (or bulk/shear).

    Returns:
        The new ``ModelVersion`` (tags: model type, CV metrics in GPa, RF+Magpie baseline,
        data version, pipeline run, git commit; alias ``challenger``).
    """
    import mlflow

    from ecdflow.models import get_spec
    from ecdflow.serve import ModulusEnsemble, signature

    target = resolve_target(target)
    metric = settings.registry.metric
    summary = cv_summary(settings, pipeline_run_id)
    best = select_best(summary, target, metric)
    runs = [r for r in tracking.pipeline_runs(settings, pipeline_run_id)
            if r.data.tags.get(tracking.TAG_MODEL) == best
            and r.data.tags.get(tracking.TAG_TARGET) == target
            and r.data.tags.get(tracking.TAG_SPLIT_KIND) == "cv" and r.info.status == "FINISHED"]
    runs.sort(key=lambda r: (r.data.tags.get(tracking.TAG_SPLIT, ""),
                             r.data.tags.get(tracking.TAG_REPEAT, "")))
    row = summary[(summary["model"] == best) & (summary["target"] == target)].iloc[0]
    base = summary[(summary["model"] == BASELINE) & (summary["target"] == target)]
    versions = {r.data.tags.get(tracking.TAG_DATA_VERSION, "") for r in runs}
    data_version = ",".join(sorted(versions))
    name = settings.registry.model_names[target]
    log.info("registering %s for %s from %d fold runs as %s", best, target, len(runs), name)
    parent = tracking.find_parent_run(settings, pipeline_run_id)
    tags = {**tracking.base_tags(settings, pipeline_run_id), tracking.TAG_ROLE: "register",
            tracking.TAG_TARGET: target, tracking.TAG_MODEL: best}
    log_target = _log_target(runs[0], settings)
    grid = _grid(runs[0], settings)
    uq = calibrate(settings, pipeline_run_id, best, target, score_for(log_target),
                   [r.info.run_id for r in runs])
    with tempfile.TemporaryDirectory() as tmp:
        members = [export_member(r.info.run_id, Path(tmp)) for r in runs]
        manifest = {"target": target, "model_type": best,
                    "inputs": list(get_spec(best).inputs), GRID_PARAM: grid,
                    "smearing_A": settings.density.smearing_A,
                    "log_target": log_target,
                    "density_source": _density_source(runs[0], settings, grid),
                    "tta": runs[0].data.params.get("training.tta", settings.training.tta),
                    **({ECD_DTYPE_PARAM: ecd_dtype(runs[0], settings)}
                       if INPUT_ECD in get_spec(best).inputs else {}),
                    "members": [f"member_{i}" for i in range(len(members))],
                    **{k: k for k in UQ_ARTIFACTS}}
        (Path(tmp) / "manifest.json").write_text(json.dumps(manifest, indent=1))
        artifacts = {"manifest": str(Path(tmp) / "manifest.json"),
                     **save_uncertainty(uq, Path(tmp))}
        artifacts.update({f"member_{i}": str(p) for i, p in enumerate(members)})
        with tracking.child_run(settings, parent, f"register-{target}", tags):
            mlflow.log_metrics(uq["metrics"])
            mlflow.log_text(uq["table"].to_csv(index=False), "coverage.csv")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=ModulusEnsemble(), artifacts=artifacts,
                code_paths=[str(Path(__file__).resolve().parent)],
                pip_requirements=pip_requirements(), signature=signature())
            mv = mlflow.register_model(info.model_uri, name)
    if parent:
        client = _client()
        for k, v in uq["metrics"].items():
            client.log_metric(parent, f"{k}_{target}", v)
    client = _client()
    vtags = {
        tracking.TAG_MODEL: best, tracking.TAG_TARGET: target,
        tracking.TAG_DATA_VERSION: data_version, tracking.TAG_PIPELINE_RUN: pipeline_run_id,
        tracking.TAG_GIT: tracking.git_commit(),
        TAG_MEMBERS: ",".join(r.info.run_id for r in runs),
        "ecdflow.n_members": str(len(runs)), "ecdflow.gate_metric": metric,
        TAG_CV.format(metric="rmse"): _fmt(row["rmse"]),
        TAG_CV.format(metric="mae"): _fmt(row["mae"]),
        TAG_CV_R2: _fmt(row["r2"]), "ecdflow.registered_at": _now(),
    }
    p = pct(settings.registry.interval_coverage)
    for key in (f"coverage_{p}", f"interval_width_{p}", f"loeo_coverage_{p}",
                f"loeo_interval_width_{p}"):
        if key in uq["metrics"]:
            vtags[f"ecdflow.{key}"] = _fmt(uq["metrics"][key])
    if not base.empty:
        vtags[TAG_BASELINE.format(metric="rmse")] = _fmt(base.iloc[0]["rmse"])
        vtags[TAG_BASELINE.format(metric="mae")] = _fmt(base.iloc[0]["mae"])
    vtags.update({tracking.TAG_PROFILE: settings.profile,
                  f"ecdflow.{GRID_PARAM}": str(manifest[GRID_PARAM])})
    for k, v in vtags.items():
        client.set_model_version_tag(name, mv.version, k, v)
    folds = sorted({r.data.tags.get(tracking.TAG_SPLIT, "") for r in runs})
    card = model_card(target, best, vtags, folds, len(runs), manifest[GRID_PARAM],
                      row, None if base.empty else base.iloc[0], manifest["inputs"])
    client.update_model_version(name, mv.version, description=card)
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    return client.get_model_version(name, mv.version)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _alias_version(name: str, alias: str):
    """The ``ModelVersion`` behind an alias, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return _client().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def aliased_version(settings: Settings, target: str, alias: str = CHAMPION):
    """The ``ModelVersion`` behind ``alias`` of ``target``'s registered model.

    Raises:
        EcdflowError: no version has the alias (one line saying what to run).
    """
    target = resolve_target(target)
    name = settings.registry.model_names[target]
    tracking.configure(settings)
    mv = _alias_version(name, alias)
    if mv is None:
        how = (f"`ecdflow promote --target {target}`" if alias == CHAMPION else
               f"`ecdflow pipeline run-local` (or `ecdflow register --target {target}`)")
        raise EcdflowError(f"no {alias} for {name} yet: run {how}")
    return mv


def bless(settings: Settings, target: str, pipeline_run_id: str | None = None) -> dict:
    """Judge ``target``'s challenger with :func:`gate` and record the verdict on the version
    (tags ``ecdflow.gate``, ``ecdflow.gate_reason``, ``ecdflow.gate_champion``,
    ``ecdflow.gate_at``) and, with a pipeline run, as a ``gate-<target>`` MLflow run (metrics
    ``gate_passed`` 1/0 and the candidate's, champion's and baseline's CV metric in GPa).
    Moves no alias: promotion stays a human act (:func:`promote` reads the verdict).

    Returns:
        name, version, champion ("" if none), passed, reason, metric, candidate_value,
        champion_value, baseline_value (GPa; None where absent).

    Raises:
        GateRefused: the registered model has no challenger.
    """
    import mlflow

    target = resolve_target(target)
    name = settings.registry.model_names[target]
    tracking.configure(settings)
    cand = _alias_version(name, CHALLENGER)
    if cand is None:
        raise GateRefused(f"{name} has no '{CHALLENGER}' version: run `ecdflow register` first")
    champ = _alias_version(name, CHAMPION)
    reason = gate(settings, cand, champ)
    metric = settings.registry.metric

    def value(mv, key: str) -> float | None:  # None, not NaN: the verdict travels as JSON
        v = tag_float(mv, key.format(metric=metric)) if mv is not None else math.nan
        return None if math.isnan(v) else v

    out = {"name": name, "version": str(cand.version),
           "champion": str(champ.version) if champ else "", "passed": not reason,
           "reason": reason, "metric": metric, "candidate_value": value(cand, TAG_CV),
           "champion_value": value(champ, TAG_CV), "baseline_value": value(cand, TAG_BASELINE)}
    client = _client()
    for k, v in {TAG_GATE: "passed" if not reason else "refused",
                 TAG_GATE_REASON: reason[:4000], TAG_GATE_CHAMPION: out["champion"] or "none",
                 TAG_GATE_AT: _now()}.items():
        client.set_model_version_tag(name, cand.version, k, v)
    parent = tracking.find_parent_run(settings, pipeline_run_id) if pipeline_run_id else None
    if parent:
        tags = {**tracking.base_tags(settings, pipeline_run_id), tracking.TAG_ROLE: "gate",
                tracking.TAG_TARGET: target, TAG_GATE: "passed" if not reason else "refused"}
        with tracking.child_run(settings, parent, f"gate-{target}", tags):
            mlflow.log_params({"name": name, "version": out["version"],
                               "champion": out["champion"] or "none", "metric": metric})
            mlflow.log_metrics({"gate_passed": float(not reason), **{
                f"{k.removesuffix('_value')}_cv_{metric}_gpa": out[k]
                for k in ("candidate_value", "champion_value", "baseline_value")
                if out[k] is not None}})
    log.info("gate %s v%s: %s", name, cand.version, reason or "passed")
    return out


def history_path(settings: Settings, name: str) -> Path:
    """JSON history of promotions/rollbacks of one registered model (in the work dir)."""
    return settings.work_dir / "registry" / f"{name}.history.json"


def _append_history(settings: Settings, name: str, event: dict[str, Any]) -> list[dict]:
    path = history_path(settings, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    hist = json.loads(path.read_text()) if path.exists() else []
    hist.append(event)
    path.write_text(json.dumps(hist, indent=1))
    return hist


def promote(settings: Settings, target: str, force: bool = False, reason: str | None = None,
            actor: str | None = None) -> dict:
    """Move alias ``champion`` to the ``challenger`` through the gate: the verdict the
    pipeline's ``gate`` task recorded (:func:`bless`) when it judged against the current
    champion, else :func:`gate` now.

    Args:
        force: skip the gate; needs ``reason``; who/why are recorded as version tags.
        reason: free text recorded with the promotion (required when forcing).
        actor: who promotes (default: the OS user).

    Returns:
        The promotion event (also appended to the JSON history): name, version,
        previous champion, metric values, forced, reason, actor, time.

    Raises:
        GateRefused: the gate's one-line reason (or no challenger, or force without reason).
    """
    target = resolve_target(target)
    name = settings.registry.model_names[target]
    tracking.configure(settings)
    client = _client()
    if force and not (reason and reason.strip()):
        raise GateRefused("--force needs --reason \"...\" (who forced and why is recorded)")
    cand = _alias_version(name, CHALLENGER)
    if cand is None:
        raise GateRefused(f"{name} has no '{CHALLENGER}' version: run `ecdflow register` first")
    champ = _alias_version(name, CHAMPION)
    verdict = recorded_verdict(cand, champ)
    if verdict is None:
        verdict = gate(settings, cand, champ)
    if verdict and not force:
        raise GateRefused(verdict)
    if champ is not None and champ.version == cand.version:
        raise GateRefused(f"v{cand.version} is already the champion")
    metric = settings.registry.metric
    event = {
        "action": "promote", "name": name, "version": str(cand.version),
        "previous_champion": str(champ.version) if champ else "",
        "metric": metric, "candidate_value": tag_float(cand, TAG_CV.format(metric=metric)),
        "champion_value": tag_float(champ, TAG_CV.format(metric=metric)) if champ else None,
        "forced": bool(force), "gate": verdict or "passed", "reason": reason or "",
        "actor": actor or getpass.getuser(), "time": _now(),
    }
    client.set_registered_model_alias(name, CHAMPION, cand.version)
    tags = {TAG_PREV: event["previous_champion"] or "none", "ecdflow.promoted_at": event["time"],
            "ecdflow.promoted_by": event["actor"], "ecdflow.promotion_forced": str(force).lower(),
            "ecdflow.promotion_gate": event["gate"][:4000],
            "ecdflow.promotion_reason": (reason or "")[:4000]}
    for k, v in tags.items():
        client.set_model_version_tag(name, cand.version, k, v)
    if champ is not None:
        client.set_model_version_tag(name, champ.version, "ecdflow.replaced_by", str(cand.version))
        client.set_model_version_tag(name, champ.version, "ecdflow.replaced_at", event["time"])
    client.delete_registered_model_alias(name, CHALLENGER)
    _append_history(settings, name, event)
    log.info("promoted %s v%s to %s (previous: %s)", name, cand.version, CHAMPION,
             event["previous_champion"] or "none")
    return event


def rollback(settings: Settings, target: str, actor: str | None = None) -> dict:
    """Restore the previous champion (the current champion's ``previous_champion`` tag).

    Raises:
        GateRefused: no champion, or the champion has no previous one.
    """
    target = resolve_target(target)
    name = settings.registry.model_names[target]
    tracking.configure(settings)
    client = _client()
    champ = _alias_version(name, CHAMPION)
    if champ is None:
        raise GateRefused(f"{name} has no '{CHAMPION}' to roll back")
    prev = champ.tags.get(TAG_PREV, "none")
    if prev in ("", "none"):
        raise GateRefused(f"{name} v{champ.version} has no previous champion to restore")
    event = {"action": "rollback", "name": name, "version": prev,
             "previous_champion": str(champ.version), "actor": actor or getpass.getuser(),
             "time": _now()}
    client.set_registered_model_alias(name, CHAMPION, prev)
    client.set_model_version_tag(name, champ.version, "ecdflow.rolled_back_at", event["time"])
    client.set_model_version_tag(name, prev, "ecdflow.restored_at", event["time"])
    _append_history(settings, name, event)
    log.info("rolled back %s: champion v%s -> v%s", name, champ.version, prev)
    return event

