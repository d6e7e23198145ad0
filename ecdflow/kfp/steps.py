"""The step functions of `ecd-elastic`: what each task does, one call into the library each.

Every component body in ``ecdflow.kfp.components`` is one call to a ``step_*`` function below;
this module imports only the library (never the pipeline, the components or the runners).

Settings travel between tasks as ``(profile, params_file, overrides)``: ``overrides`` is a JSON
string made once by the start task from the typed run parameters (a JSON string keeps ints as
ints; a KFP dict parameter would turn them into floats). Every task rebuilds the same
``Settings`` from those three values with ``load_settings``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, NamedTuple

from ecdflow.config import Settings, load_settings
from ecdflow.errors import EcdflowError
from ecdflow.schema import is_remote


class StartOutputs(NamedTuple):
    """What the start task hands on: the pipeline run id, the MLflow parent run, the run's
    config overrides (JSON) and the preprocessing cache key."""

    run_id: str
    parent_run_id: str
    overrides: str
    data_fingerprint: str


def run_overrides(materials_path: str = "", epochs: int = 0, batch_size: int = 0,
                  patience: int = 0, seed: int | None = None, experiment: str = "",
                  margin: float | None = None) -> dict[str, Any]:
    """The nested config overrides of one pipeline run, from its typed run parameters
    (empty / 0 / None keep the profile's value)."""
    ov: dict[str, Any] = {}
    if materials_path:
        ov.setdefault("paths", {})["materials"] = materials_path
    training = {k: v for k, v in (("epochs", epochs), ("batch_size", batch_size),
                                  ("patience", patience)) if v}
    if training:
        ov["training"] = {k: int(v) for k, v in training.items()}
    if seed is not None:
        ov["seed"] = int(seed)
    if experiment:
        ov["mlflow"] = {"experiment": experiment}
    if margin is not None:
        ov["registry"] = {"margin": float(margin)}
    return ov


def scaled_learning_rates(settings: Settings, scale: float) -> dict[str, Any]:
    """``models.params.<m>.learning_rate`` = the configured rate x ``scale`` for every enabled
    model that has one ({} when ``scale`` is 1)."""
    from ecdflow.models import get_spec

    if scale <= 0:
        raise EcdflowError(f"learning-rate scale must be > 0, got {scale}")
    if scale == 1.0:
        return {}
    params: dict[str, Any] = {}
    for m in settings.models.enabled:
        cfg = get_spec(m).config(settings.models.params.get(m))
        if hasattr(cfg, "learning_rate"):
            params[m] = {"learning_rate": float(cfg.learning_rate) * scale}
    return {"models": {"params": params}} if params else {}


def task_settings(profile: str, params_file: str, overrides: str) -> Settings:
    """Settings of one task: the params file, the profile, then the run's overrides (JSON)."""
    return load_settings(params_file or None, profile or None,
                         json.loads(overrides) if overrides else None)


def data_fingerprint(settings: Settings, data_version: str = "") -> str:
    """What preprocessing's cache key needs beyond its parameters: the materials table's
    content hash (local files), the user's data version label and the code's git commit."""
    from ecdflow.tracking import git_commit

    path = settings.path(settings.paths.materials)
    digest = "remote"
    if not is_remote(settings.paths.materials):
        if not path.exists():
            raise EcdflowError(f"{path}: materials table not found")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{digest}:{data_version or '-'}:{git_commit()[:12]}"


def step_start(pipeline_run_id: str, profile: str, params_file: str, materials_path: str,
               data_version: str, epochs: int, batch_size: int, patience: int,
               lr_scale: float, seed: int, experiment: str, margin: float,
               resume_run_id: str = "") -> StartOutputs:
    """Check the run parameters (a bad value fails here, in one line), create the MLflow
    parent run and hand the overrides on to the other tasks.

    ``resume_run_id``: continue that pipeline run instead (its id goes on to every task, so a
    training task whose run already finished reuses it, and KFP's cache sees the same inputs;
    a resumed local run leaves such tasks out of its graph altogether,
    ``ecdflow.plan.finished_tasks``); its parent run is reopened (``RUNNING``, failed-task tag
    removed)."""
    from ecdflow.config import deep_merge
    from ecdflow.tracking import TAG_DATA_VERSION, reopen_parent_run, start_parent_run

    ov = run_overrides(materials_path, epochs, batch_size, patience, seed, experiment, margin)
    settings = load_settings(params_file or None, profile or None, ov)
    ov = deep_merge(ov, scaled_learning_rates(settings, lr_scale))
    settings = load_settings(params_file or None, profile or None, ov)
    fingerprint = data_fingerprint(settings, data_version)
    pipeline_run_id = resume_run_id or pipeline_run_id
    parent = start_parent_run(settings, pipeline_run_id)
    if resume_run_id:
        reopen_parent_run(parent)
    if data_version:
        import mlflow

        mlflow.MlflowClient().set_tag(parent, TAG_DATA_VERSION, data_version)
    return StartOutputs(pipeline_run_id, parent, json.dumps(ov, sort_keys=True), fingerprint)


def step_preprocess(profile: str, params_file: str, overrides: str, out_dir: str) -> str:
    """Beam preprocessing into ``out_dir`` (the task's output Dataset); the manifest (JSON)."""
    from ecdflow.preprocess import run_preprocess

    manifest = run_preprocess(task_settings(profile, params_file, overrides), out_dir=out_dir)
    return json.dumps(manifest, sort_keys=True, default=str)


def step_validate(profile: str, params_file: str, overrides: str, records_dir: str,
                  out_dir: str, expect_data_hash: str = "") -> str:
    """Great Expectations on the records; raises ``ValidationFailed`` (the task fails and
    nothing downstream runs) when a blocking expectation fails. The summary (JSON).

    ``expect_data_hash``: the data version the finished tasks of a resumed run trained on
    (``ecdflow.plan.finished_tasks``; they are left out of its graph).

    Raises:
        EcdflowError: the records have another data version (their runs cannot be reused).
    """
    from ecdflow.records import read_manifest
    from ecdflow.validation import run_validation

    found = str(read_manifest(records_dir)["data_hash"])
    if expect_data_hash and found != expect_data_hash:
        raise EcdflowError(
            f"{records_dir}: the records are data version {found}, but the finished training "
            f"tasks of the resumed run trained on {expect_data_hash}: start a new run (no "
            "--resume)")
    summary = run_validation(task_settings(profile, params_file, overrides),
                             records_dir=records_dir, out_dir=out_dir, raise_on_failure=True)
    return json.dumps(summary, sort_keys=True, default=str)


def step_train(profile: str, params_file: str, overrides: str, model: str, target: str,
               split: str, records_dir: str, parent_run_id: str, pipeline_run_id: str) -> str:
    """Train one model/target/split, every repeat the model gets; the results (JSON list).
    A density model on composition-only records (a remote table the plan could not read) is
    skipped with one line: ``[{"model": ..., "skipped": <line>}]``."""
    from ecdflow.log import get_logger
    from ecdflow.records import read_manifest
    from ecdflow.train import density_skip, run_repeats, train_one

    skip = density_skip(model, read_manifest(records_dir))
    if skip:
        get_logger("ecdflow.train").warning(skip)
        return json.dumps([{"model": model, "target": target, "split": split,
                            "skipped": skip}], sort_keys=True)
    settings = task_settings(profile, params_file, overrides)
    results = [train_one(settings, model, target, split, records_dir=records_dir,
                         parent_run_id=parent_run_id, pipeline_run_id=pipeline_run_id,
                         repeat=r) for r in range(run_repeats(settings, model, split))]
    return json.dumps(results, sort_keys=True, default=str)


def step_evaluate(profile: str, params_file: str, overrides: str, pipeline_run_id: str) -> str:
    """Gather the pipeline run's training runs (report, tables); the summary (JSON)."""
    from ecdflow.evaluate import evaluate_pipeline_run

    out = evaluate_pipeline_run(task_settings(profile, params_file, overrides), pipeline_run_id)
    return json.dumps(out, sort_keys=True, default=str)


def step_external(profile: str, params_file: str, overrides: str, pipeline_run_id: str,
                  enabled: bool) -> str:
    """External validation of the run's registered challengers (reference tables); skipped
    with registration (it scores registered versions)."""
    if not enabled:
        return json.dumps({"skipped": True})
    from ecdflow.external import run_external_validation

    out = run_external_validation(task_settings(profile, params_file, overrides),
                                  pipeline_run_id)
    return json.dumps(out, sort_keys=True, default=str)


def step_register(profile: str, params_file: str, overrides: str, pipeline_run_id: str,
                  enabled: bool) -> str:
    """Register the best model per target as its ``challenger`` (the gate task judges it);
    ``enabled`` false skips (kfp.local cannot skip a task with ``dsl.If``)."""
    if not enabled:
        return json.dumps({"skipped": True})
    from ecdflow.registry import register_best

    settings = task_settings(profile, params_file, overrides)
    out = {t: register_best(settings, pipeline_run_id, t) for t in settings.targets}
    return json.dumps(out, sort_keys=True, default=str)


def step_gate(profile: str, params_file: str, overrides: str, pipeline_run_id: str,
              enabled: bool, verdict: Any = None) -> str:
    """Judge every target's challenger against its champion and the RF+Magpie baseline and
    record the verdict (model-version tags, a ``gate-<target>`` MLflow run with metrics; and
    ``gate_passed_<target>`` 1/0 plus the candidate's CV metric in GPa on ``verdict``, a KFP
    ``Metrics`` output, when given). Promotion stays a human act: ``ecdflow promote`` reads it.
    Returns the verdicts (JSON); ``enabled`` false skips."""
    if not enabled:
        return json.dumps({"skipped": True})
    from ecdflow.registry import bless

    settings = task_settings(profile, params_file, overrides)
    out = {t: bless(settings, t, pipeline_run_id) for t in settings.targets}
    if verdict is not None:
        for t, v in out.items():
            verdict.log_metric(f"gate_passed_{t}", 1.0 if v["passed"] else 0.0)
            if v["candidate_value"] is not None:
                verdict.log_metric(f"candidate_cv_{v['metric']}_gpa_{t}", v["candidate_value"])
    return json.dumps(out, sort_keys=True, default=str)


def step_finish(pipeline_run_id: str, profile: str, params_file: str, experiment: str,
                state: str, error_message: str = "") -> str:
    """The exit task of a cluster run: close the MLflow parent run, FINISHED when the guarded
    tasks ``state`` is ``SUCCEEDED``, else FAILED with the first line of ``error_message``
    as the failing task. Returns ``pipeline_run_id`` (the cluster pipeline's output, as the
    local pipeline returns it)."""
    from ecdflow.results import finish_pipeline_run

    settings = load_settings(params_file or None, profile or None,
                             run_overrides(experiment=experiment))
    failed = None
    if state != "SUCCEEDED":
        first = (error_message or "").strip().splitlines()
        failed = f"{state or 'FAILED'}: {first[0][:200]}" if first else (state or "FAILED")
    finish_pipeline_run(settings, pipeline_run_id, failed)
    return pipeline_run_id
