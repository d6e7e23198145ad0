"""MLflow conventions of ecdflow: experiments, tag names, metric names, parent runs.

Every training run is tagged so runs compare side by side in the MLflow UI and can be
gathered per pipeline run: filter with e.g. ``tags."ecdflow.pipeline_run_id" = '<id>'``.
Metrics on held-out data are in GPa, whatever space the model was trained in.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from ecdflow.config import REPO_ROOT, Settings
from ecdflow.schema import RunKey

TAG_ROLE = "ecdflow.role"  # "parent" | "train" | "evaluate" | "external" | "register" | "gate"
TAG_MODEL = "ecdflow.model"  # rf_magpie, cnn_magpie, cnn3d, cnn2d_se, fusion
TAG_TARGET = "ecdflow.target"  # K_VRH | G_VRH
TAG_SPLIT = "ecdflow.split"  # e.g. cv-0 .. cv-4, loeo-Cs
TAG_SPLIT_KIND = "ecdflow.split_kind"  # cv | loeo
TAG_FOLD = "ecdflow.fold"  # fold index (cv) or held-out element (loeo)
TAG_REPEAT = "ecdflow.repeat"  # repeat index (the paper repeats each CNN 5 times)
TAG_PROFILE = "ecdflow.profile"
TAG_GIT = "ecdflow.git_commit"
TAG_PIPELINE_RUN = "ecdflow.pipeline_run_id"
TAG_DATA_VERSION = "ecdflow.data_version"

# registered model-version tags (ecdflow.registry writes them, ecdflow.gate reads them)
TAG_CV = "ecdflow.cv_{metric}_gpa"  # rmse / mae of the version's model type (mean over folds)
TAG_BASELINE = "ecdflow.baseline_cv_{metric}_gpa"  # RF+Magpie of the same pipeline run
TAG_EXTERNAL = "ecdflow.external."  # prefix of external-validation tags (ecdflow.external)

METRIC_MAE = "test_mae_gpa"
METRIC_RMSE = "test_rmse_gpa"
METRIC_R2 = "test_r2"

ARTIFACT_PREDICTIONS = "predictions.csv"  # material_id, formula, elements, y_true, y_pred (GPa)
ARTIFACT_PARITY = "parity.png"
ARTIFACT_LEARNING_CURVE = "learning_curve.png"
MODEL_NAME = "model"  # name given to log_model


def git_commit() -> str:
    """The repository's HEAD commit (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                             text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def configure(settings: Settings) -> str:
    """Point MLflow at the configured stores and make sure the experiment exists with an
    explicit artifact location. Returns the experiment id.

    MLflow's per-download progress bars are switched off (quiet logs: reading a run's
    predictions back would print one bar per run) unless
    ``MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR`` is set."""
    import os

    import mlflow

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.registry_uri)
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(settings.mlflow.experiment)
    if exp is None:
        exp_id = client.create_experiment(
            settings.mlflow.experiment,
            artifact_location=experiment_artifact_location(settings),
            tags=experiment_ui_tags(),
        )
    else:
        exp_id = exp.experiment_id
        for k, v in experiment_ui_tags().items():
            if exp.tags.get(k) != v:
                client.set_experiment_tag(exp_id, k, v)
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id


def experiment_artifact_location(settings: Settings) -> str | None:
    """Artifact location of a new experiment: ``<artifact_root>/<experiment>``; None (the
    server's own default: its ``--artifacts-destination``, proxied as ``mlflow-artifacts:/``)
    when tracking goes to an ``http(s)://`` server and ``mlflow.artifact_root`` is not set,
    since the local default folder would be on each client's own disk (a pod's, on a cluster).
    """
    if not settings.mlflow.artifact_root and settings.tracking_uri.startswith(("http://",
                                                                               "https://")):
        return None
    return f"{settings.artifact_root}/{settings.mlflow.experiment}"


EXPERIMENT_KIND_TAG = "mlflow.experimentKind"  # the UI opens the "Model training" workflow
SHARED_VIEW_PREFIX = "mlflow.sharedViewState."  # the UI's shared run-list views (JSON)
VIEW_CV = "ecdflow-cv-runs"
"""Shared view of the CV training runs: ``#/experiments/<id>/runs?viewStateShareKey=...``."""


def experiment_ui_tags() -> dict[str, str]:
    """Experiment tags for the MLflow UI (3.x): a model-training experiment, and a shared run-list
    view ``VIEW_CV`` listing the CV training runs flat with their test metrics and the model,
    target and split tags as columns (the compare view takes the ticked runs)."""
    import json

    cols = [f"metrics.`{m}`" for m in (METRIC_RMSE, METRIC_MAE, METRIC_R2)]
    cols += [f"tags.`{t}`" for t in (TAG_MODEL, TAG_TARGET, TAG_SPLIT, TAG_REPEAT)]
    view = {"searchFilter": CV_FILTER, "orderByKey": f"metrics.`{METRIC_RMSE}`",
            "orderByAsc": True, "startTime": "ALL", "lifecycleFilter": "Active",
            "datasetsFilter": [], "modelVersionFilter": "All Runs", "selectedColumns": cols,
            "runsExpanded": {}, "runsPinned": [], "runsHidden": [], "groupBy": None}
    return {EXPERIMENT_KIND_TAG: "custom_model_development",
            SHARED_VIEW_PREFIX + VIEW_CV: json.dumps(view)}


UI_WORKFLOW = "workflowType=machine_learning"  # URL query: the UI's "Model training" side


def ui_url(base: str, experiment_id: str, view: str | None = VIEW_CV) -> str:
    """Link to the experiment's run list in the MLflow UI at ``base`` (``view``: a shared view
    of :func:`experiment_ui_tags`, None for the plain list)."""
    q = f"&viewStateShareKey={view}" if view else ""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}/runs?{UI_WORKFLOW}{q}"


def base_tags(settings: Settings, pipeline_run_id: str | None) -> dict[str, str]:
    """Tags every ecdflow run carries."""
    tags = {TAG_PROFILE: settings.profile, TAG_GIT: git_commit()}
    if pipeline_run_id:
        tags[TAG_PIPELINE_RUN] = pipeline_run_id
    return tags


def start_parent_run(settings: Settings, pipeline_run_id: str) -> str:
    """Create (or find) the parent run of one pipeline run; returns its MLflow run id."""
    import mlflow

    exp_id = configure(settings)
    client = mlflow.MlflowClient()
    found = client.search_runs(
        [exp_id],
        filter_string=f"tags.\"{TAG_PIPELINE_RUN}\" = '{pipeline_run_id}' "
        f"and tags.\"{TAG_ROLE}\" = 'parent'",
        max_results=1,
    )
    if found:
        return found[0].info.run_id
    tags = {**base_tags(settings, pipeline_run_id), TAG_ROLE: "parent"}
    run = client.create_run(exp_id, tags=tags, run_name=f"pipeline-{pipeline_run_id}")
    return run.info.run_id


def reopen_parent_run(parent_run_id: str) -> None:
    """A resumed pipeline run's parent run: back to ``RUNNING`` (it may have ended ``FAILED``
    or been left ``RUNNING`` by a killed process), without its failed-task tag."""
    import mlflow

    client = mlflow.MlflowClient()
    run = client.get_run(parent_run_id)
    if TAG_FAILED_TASK in run.data.tags:
        client.delete_tag(parent_run_id, TAG_FAILED_TASK)
    if run.info.status != "RUNNING":
        client.update_run(parent_run_id, status="RUNNING")


def unfinished_pipeline_run(settings: Settings) -> str | None:
    """The newest pipeline run of ``settings.profile`` whose parent run did not finish
    (stopped, killed or failed), or None: what ``run-local --resume latest`` continues."""
    import mlflow

    exp_id = configure(settings)
    found = mlflow.MlflowClient().search_runs(
        [exp_id], filter_string=f"tags.\"{TAG_ROLE}\" = 'parent' and "
        f"tags.\"{TAG_PROFILE}\" = '{settings.profile}' and attributes.status != 'FINISHED'",
        order_by=["attributes.start_time DESC"], max_results=1)
    return found[0].data.tags.get(TAG_PIPELINE_RUN) if found else None


def find_parent_run(settings: Settings, pipeline_run_id: str) -> str | None:
    """The parent run id of a pipeline run, or None."""
    import mlflow

    exp_id = configure(settings)
    found = mlflow.MlflowClient().search_runs(
        [exp_id],
        filter_string=f"tags.\"{TAG_PIPELINE_RUN}\" = '{pipeline_run_id}' "
        f"and tags.\"{TAG_ROLE}\" = 'parent'",
        max_results=1,
    )
    return found[0].info.run_id if found else None


@contextmanager
def child_run(settings: Settings, parent_run_id: str | None, run_name: str,
              tags: dict[str, str]) -> Iterator[object]:
    """Start a run nested under ``parent_run_id`` (if given) with ecdflow's tags."""
    import mlflow

    configure(settings)
    all_tags = dict(tags)
    if parent_run_id:
        all_tags["mlflow.parentRunId"] = parent_run_id
    with mlflow.start_run(run_name=run_name, tags=all_tags) as run:
        yield run


def pipeline_runs(settings: Settings, pipeline_run_id: str, role: str = "train") -> list:
    """All runs of one pipeline run with the given role (MLflow ``Run`` objects)."""
    import mlflow

    exp_id = configure(settings)
    return mlflow.MlflowClient().search_runs(
        [exp_id],
        filter_string=f"tags.\"{TAG_PIPELINE_RUN}\" = '{pipeline_run_id}' "
        f"and tags.\"{TAG_ROLE}\" = '{role}'",
        max_results=5000,
    )


TAG_MODEL_URI = "ecdflow.model_uri"  # URI of the model logged by a training run
ARTIFACT_SPLITS = "splits.json"  # the data version's splits, logged to the parent run
ARTIFACT_RESULTS = "results"  # folder of the results tables (markdown + csv) on the parent run


def find_train_run(settings: Settings, pipeline_run_id: str, key: RunKey,
                   data_version: str | None = None):
    """The newest FINISHED training run of one model/target/split/repeat (``key``) of a
    pipeline run (optionally of one data version), or None."""
    import mlflow

    model, target, split, repeat = key.model, key.target, key.split, key.repeat
    exp_id = configure(settings)
    flt = (f"tags.\"{TAG_PIPELINE_RUN}\" = '{pipeline_run_id}' and tags.\"{TAG_ROLE}\" = 'train'"
           f" and tags.\"{TAG_MODEL}\" = '{model}' and tags.\"{TAG_TARGET}\" = '{target}'"
           f" and tags.\"{TAG_SPLIT}\" = '{split}' and tags.\"{TAG_REPEAT}\" = '{repeat}'"
           " and attributes.status = 'FINISHED'")
    if data_version:
        flt += f" and tags.\"{TAG_DATA_VERSION}\" = '{data_version}'"
    found = mlflow.MlflowClient().search_runs([exp_id], filter_string=flt, max_results=1,
                                              order_by=["attributes.start_time DESC"])
    return found[0] if found else None


TAG_FAILED_TASK = "ecdflow.failed_task"  # the pipeline task that failed (parent runs)
TAG_NOTE = "mlflow.note.content"  # the run's Markdown description in the MLflow UI
CV_FILTER = "tags.\"ecdflow.split_kind\" = 'cv'"
"""Run-list search filter of the CV training runs (docs/registry.md: "Comparing runs")."""
RESULTS_LEGEND = ("Cells: R2 / RMSE (GPa) on the held-out materials, mean over folds and "
                  "repeats (CV) or repeats (LOEO).")


def split_label(split: str) -> str:
    """Human name of a split: ``cv-1`` -> ``cv-fold-1``, ``loeo-Cs`` unchanged."""
    kind, _, fold = split.partition("-")
    return f"cv-fold-{fold}" if kind == "cv" else split


def run_label(key: RunKey) -> str:
    """MLflow run name of a training run, e.g. ``cnn3d · K_VRH · cv-fold-0 · r0`` (the run list
    sorts and reads by model, target, split, repeat; the tags carry the same fields)."""
    return f"{key.model} · {key.target} · {split_label(key.split)} · r{key.repeat}"


def parent_note(pipeline_run_id: str, tables: dict[str, str], report: str | None = None,
                failed_task: str | None = None) -> str:
    """The parent run's Markdown description: status line, results tables with their legend,
    the report path and how to compare the child runs."""
    titles = {"table2_cv": "Cross-validation (Table 2 layout)",
              "table3_loeo": "Leave-one-element-out (Table 3 layout)"}
    lines = []
    if failed_task:
        lines += [f"**FAILED** in task `{failed_task}`; the tables hold the runs that finished.",
                  ""]
    for name, md in tables.items():
        lines += [f"**{titles.get(name, name)}**", "", md.rstrip(), ""]
    if tables:
        lines += [RESULTS_LEGEND, ""]
    else:
        lines += ["No finished training runs.", ""]
    if report:
        lines += [f"Report: `{report}` (also under this run's artifacts, `evaluation/`).", ""]
    lines += [f"Pipeline run `{pipeline_run_id}`. Compare the training runs: open the "
              f"experiment's shared view `{VIEW_CV}` (`?viewStateShareKey={VIEW_CV}`) or search "
              f"`{CV_FILTER}` (or `tags.\"{TAG_PIPELINE_RUN}\" = '{pipeline_run_id}'`), "
              "select the runs, *Compare*; per model/target CV means are this run's metrics "
              "`cv_<target>_<model>_{r2,rmse_gpa,mae_gpa}`."]
    return "\n".join(lines) + "\n"


def finish_parent_run(settings: Settings, pipeline_run_id: str, tables: dict[str, str],
                      failed_task: str | None = None, report: str | None = None) -> str | None:
    """End the parent run of a pipeline run: write its Markdown description (``tables`` from
    ``ecdflow.results.format_tables``, legend, report path), tag the failing task, and mark it
    ``FINISHED`` (or ``FAILED`` when ``failed_task`` is given) with an end time, so the MLflow
    UI shows a status and a duration.
    Returns the parent run id (None when the pipeline run has no parent run).

    Idempotent: a run already ended keeps its end time but gets the new description.
    """
    import mlflow

    parent = find_parent_run(settings, pipeline_run_id)
    if parent is None:
        return None
    client = mlflow.MlflowClient()
    client.set_tag(parent, TAG_NOTE, parent_note(pipeline_run_id, tables, report, failed_task))
    if failed_task:
        client.set_tag(parent, TAG_FAILED_TASK, failed_task)
    if client.get_run(parent).info.status in ("RUNNING", "SCHEDULED"):
        client.set_terminated(parent, "FAILED" if failed_task else "FINISHED")
    return parent
