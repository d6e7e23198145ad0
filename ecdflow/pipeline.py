"""The Kubeflow pipeline `ecd-elastic`, library side: the build-time plan, the step functions
the thin KFP components call, and compile / local run / submit.

The pipeline graph itself is wired in ``pipelines/ecd_elastic.py`` from the components in
``components/``; every component body is one call to a ``step_*`` function below.

Settings travel between tasks as ``(profile, params_file, overrides)``: ``overrides`` is a JSON
string made once by the start task from the typed run parameters (a JSON string keeps ints as
ints; a KFP dict parameter would turn them into floats). Every task rebuilds the same
``Settings`` from those three values with ``load_settings``.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import socket
import sys
import time
import warnings
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlparse

from ecdflow.config import REPO_ROOT, Settings, load_settings
from ecdflow.errors import EcdflowError

TARGET_SLUG = {"K_VRH": "k-vrh", "G_VRH": "g-vrh"}


class PlannedRun(NamedTuple):
    """One training task of the pipeline."""

    model: str
    target: str
    split: str

    @property
    def task_name(self) -> str:
        """Display name in the KFP UI, e.g. ``train-cnn3d-k-vrh-cv-0``."""
        slug = f"train-{self.model}-{TARGET_SLUG.get(self.target, self.target)}-{self.split}"
        return slug.lower().replace("_", "-")


class StartOutputs(NamedTuple):
    run_id: str
    parent_run_id: str
    overrides: str
    data_fingerprint: str


# --------------------------------------------------------------------------------------------
# Build-time plan
# --------------------------------------------------------------------------------------------


def plan_index(settings: Settings):
    """``material_id``/``elements`` of the configured materials table, to drop LOEO splits of
    absent elements when the pipeline is built; None for a remote (``s3://``) table."""
    import pandas as pd

    if "://" in settings.paths.materials:
        return None
    path = settings.path(settings.paths.materials)
    if not path.exists():
        raise EcdflowError(f"{path}: materials table not found (needed to plan the splits)")
    return pd.read_json(path, lines=True)[["material_id", "elements"]]


def build_plan(settings: Settings) -> list[PlannedRun]:
    """The training tasks, known when the pipeline is built (kfp.local cannot fan out at run
    time): ``ecdflow.train.plan_runs`` over the materials table (every configured LOEO element
    for a remote table); a model comes after the models it requires."""
    import pandas as pd

    from ecdflow.train import plan_runs

    index = plan_index(settings)
    if index is None:
        index = pd.DataFrame({"material_id": ["-"],
                              "elements": [list(settings.splits.loeo_elements)]})
    return [PlannedRun(*run) for run in plan_runs(settings, index)]


def dependencies(plan: list[PlannedRun]) -> dict[PlannedRun, list[PlannedRun]]:
    """For every run of a model that starts from other models (fusion), the planned runs of
    those models with the same target and split: its task must come after them."""
    from ecdflow.models import get_spec

    out: dict[PlannedRun, list[PlannedRun]] = {}
    for run in plan:
        req = get_spec(run.model).requires
        if req:
            out[run] = [r for r in plan if r.model in req and r.target == run.target
                        and r.split == run.split]
    return out


# --------------------------------------------------------------------------------------------
# Step functions (what the components call)
# --------------------------------------------------------------------------------------------


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
    if "://" not in settings.paths.materials:
        if not path.exists():
            raise EcdflowError(f"{path}: materials table not found")
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"{digest}:{data_version or '-'}:{git_commit()[:12]}"


def step_start(pipeline_run_id: str, profile: str, params_file: str, materials_path: str,
               data_version: str, epochs: int, batch_size: int, patience: int,
               lr_scale: float, seed: int, experiment: str, margin: float) -> StartOutputs:
    """Check the run parameters (a bad value fails here, in one line), create the MLflow
    parent run and hand the overrides on to the other tasks."""
    from ecdflow.config import deep_merge
    from ecdflow.tracking import TAG_DATA_VERSION, start_parent_run

    ov = run_overrides(materials_path, epochs, batch_size, patience, seed, experiment, margin)
    settings = load_settings(params_file or None, profile or None, ov)
    ov = deep_merge(ov, scaled_learning_rates(settings, lr_scale))
    settings = load_settings(params_file or None, profile or None, ov)
    fingerprint = data_fingerprint(settings, data_version)
    parent = start_parent_run(settings, pipeline_run_id)
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
                  out_dir: str) -> str:
    """Great Expectations on the records; raises ``ValidationFailed`` (the task fails and
    nothing downstream runs) when a blocking expectation fails. The summary (JSON)."""
    from ecdflow.validation import run_validation

    summary = run_validation(task_settings(profile, params_file, overrides),
                             records_dir=records_dir, out_dir=out_dir, raise_on_failure=True)
    return json.dumps(summary, sort_keys=True, default=str)


def step_train(profile: str, params_file: str, overrides: str, model: str, target: str,
               split: str, records_dir: str, parent_run_id: str, pipeline_run_id: str) -> str:
    """Train one model/target/split, every repeat the model gets; the results (JSON list)."""
    from ecdflow.train import run_repeats, train_one

    settings = task_settings(profile, params_file, overrides)
    results = [train_one(settings, model, target, split, records_dir=records_dir,
                         parent_run_id=parent_run_id, pipeline_run_id=pipeline_run_id,
                         repeat=r) for r in range(run_repeats(settings, model))]
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
    """Register the best model per target (the promotion gate decides about the alias);
    ``enabled`` false skips (kfp.local cannot skip a task with ``dsl.If``)."""
    if not enabled:
        return json.dumps({"skipped": True})
    from ecdflow.registry import register_best

    settings = task_settings(profile, params_file, overrides)
    out = {t: register_best(settings, pipeline_run_id, t) for t in settings.targets}
    return json.dumps(out, sort_keys=True, default=str)


# --------------------------------------------------------------------------------------------
# Build, compile, run locally, submit
# --------------------------------------------------------------------------------------------


def _pipeline_module():
    """``pipelines/ecd_elastic.py`` (the repository root holds ``components/``/``pipelines/``)."""
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    return importlib.import_module("pipelines.ecd_elastic")


def build(settings: Settings, params_file: str | Path | None = None, local: bool = False):
    """The ``ecd-elastic`` pipeline function for ``settings`` (defaults of the run form come
    from them). ``local`` drops ``dsl.If`` (kfp.local refuses conditions)."""
    return _pipeline_module().build_pipeline(
        settings, params_file=str(Path(params_file).resolve()) if params_file else "",
        local=local)


def compiled_path(settings: Settings) -> Path:
    """Where the IR YAML goes (``pipeline.compiled``, default ``<work_dir>/ecd-elastic.yaml``)."""
    rel = settings.pipeline.compiled
    return settings.path(rel) if rel else settings.work_dir / f"{settings.pipeline.name}.yaml"


def compile_pipeline(settings: Settings, out: str | Path | None = None,
                     params_file: str | Path | None = None) -> Path:
    """Compile ``ecd-elastic`` to KFP IR YAML; returns the file written."""
    from kfp import compiler

    path = Path(out) if out else compiled_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    compiler.Compiler().compile(build(settings, params_file), package_path=str(path))
    return path


def local_root(settings: Settings) -> Path:
    rel = settings.pipeline.local_root
    return settings.path(rel) if rel else settings.work_dir / "kfp-local"


def run_local(settings: Settings, params_file: str | Path | None = None,
              arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run ``ecd-elastic`` with kfp.local (subprocesses in this Python environment; the
    MLflow store is the configured one). Returns ``run_id``, ``seconds`` and ``tasks``."""
    from kfp import local

    root = local_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(root),
               raise_on_error=True)
    pipeline_func = build(settings, params_file, local=True)
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():  # "non-Python base image": the images are ours
            warnings.filterwarnings("ignore", message=".*base image.*", category=RuntimeWarning)
            task = pipeline_func(**(arguments or {}))
    except RuntimeError as exc:  # kfp.local: "Pipeline '...' finished with status FAILURE..."
        first = re.sub(r"\x1b\[[0-9;]*m", "", str(exc).splitlines()[0])  # no colour codes
        raise EcdflowError(f"local pipeline run failed: {first}") from None
    return {"run_id": task.output, "seconds": time.perf_counter() - t0,
            "tasks": len(build_plan(settings)) + 6}


def registered_versions(settings: Settings, pipeline_run_id: str) -> list[dict[str, str]]:
    """Model versions registered from a pipeline run's MLflow runs (name, version, aliases)."""
    import mlflow

    from ecdflow.tracking import TAG_PIPELINE_RUN, configure

    configure(settings)
    client = mlflow.MlflowClient()
    out = []
    for name in settings.registry.model_names.values():
        try:
            versions = client.search_model_versions(f"name = '{name}'")
        except mlflow.exceptions.MlflowException:
            continue
        for v in versions:
            run = client.get_run(v.run_id) if v.run_id else None
            if run and run.data.tags.get(TAG_PIPELINE_RUN) == pipeline_run_id:
                # search results carry no aliases: read them from the version itself
                full = client.get_model_version(name, v.version)
                out.append({"name": name, "version": str(v.version),
                            "aliases": ",".join(full.aliases or [])})
    return out


def check_reachable(host: str, timeout_s: float = 5.0) -> None:
    """Fail fast, in one line, when the KFP API host does not accept connections."""
    url = urlparse(host if "://" in host else f"http://{host}")
    port = url.port or (443 if url.scheme == "https" else 80)
    if not url.hostname:
        raise EcdflowError(f"bad KFP host '{host}' (expected e.g. http://127.0.0.1:8080)")
    try:
        with socket.create_connection((url.hostname, port), timeout=timeout_s):
            pass
    except OSError as exc:
        raise EcdflowError(f"cannot reach the KFP API at {host}: {exc.strerror or exc} "
                           f"(port-forward it: see docs/cluster.md)") from None


def submit(settings: Settings, host: str, package: str | Path | None = None,
           arguments: dict[str, Any] | None = None, run_name: str | None = None,
           experiment: str | None = None, namespace: str | None = None,
           service_account: str | None = None, timeout_s: float = 5.0) -> str:
    """Create a run of the compiled pipeline on a KFP cluster; returns the KFP run id."""
    check_reachable(host, timeout_s)
    import kfp

    path = Path(package) if package else compile_pipeline(settings)
    client = kfp.Client(host=host, namespace=namespace or "kubeflow")
    result = client.create_run_from_pipeline_package(
        str(path), arguments=arguments or {}, run_name=run_name,
        experiment_name=experiment or settings.mlflow.experiment,
        service_account=service_account)
    return result.run_id
