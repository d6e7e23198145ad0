"""Runners of `ecd-elastic`: compile to IR YAML, run here with kfp.local, submit to a KFP
cluster, and list what a run registered. The CLI (``ecdflow pipeline ...``) and the script
``pipelines/ecd_elastic.py`` call these; nothing in the library imports a runner.
"""

from __future__ import annotations

import argparse
import re
import socket
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.kfp.pipeline import FIXED_TASKS, build_pipeline
from ecdflow.kfp.plan import build_plan
from ecdflow.schema import is_remote


def build(settings: Settings, params_file: str | Path | None = None, local: bool = False):
    """The ``ecd-elastic`` pipeline function for ``settings`` (defaults of the run form come
    from them). ``local`` drops ``dsl.If`` (kfp.local refuses conditions)."""
    return build_pipeline(
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
            "tasks": len(build_plan(settings)) + len(FIXED_TASKS)}


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
    url = urlparse(host if is_remote(host) else f"http://{host}")
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


def main(argv: list[str] | None = None) -> Path:
    """Compile the pipeline for a profile to IR YAML (same as `ecdflow pipeline compile`)."""
    from ecdflow.config import load_settings

    ap = argparse.ArgumentParser(description="Compile the ecd-elastic pipeline to IR YAML.")
    ap.add_argument("--profile", default=None, help="quick (default) or paper")
    ap.add_argument("--params", default=None, help="params.yaml (default: the project's)")
    ap.add_argument("--out", default=None, help="IR YAML (default: pipeline.compiled)")
    args = ap.parse_args(argv)
    out = compile_pipeline(load_settings(args.params, args.profile), args.out, args.params)
    print(out)
    return out
