"""Runners of `ecd-elastic`: compile to IR YAML, run here with kfp.local, submit to a KFP
cluster, and list what a run registered. The CLI (``ecdflow pipeline ...``) and the script
``pipelines/ecd_elastic.py`` call these; nothing in the library imports a runner.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import re
import shutil
import socket
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.kfp.pipeline import build_pipeline
from ecdflow.kfp.plan import Finished, build_plan, finished_tasks
from ecdflow.schema import is_remote


def build(settings: Settings, params_file: str | Path | None = None, local: bool = False,
          finished: Finished | None = None):
    """The ``ecd-elastic`` pipeline function for ``settings`` (defaults of the run form come
    from them). ``local`` drops ``dsl.If`` (kfp.local refuses conditions); ``finished``: the
    training tasks a resumed local run leaves out (``ecdflow.plan.finished_tasks``)."""
    return build_pipeline(
        settings, params_file=str(Path(params_file).resolve()) if params_file else "",
        local=local, finished=finished)


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


ANSI = re.compile(r"\x1b\[[0-9;]*m")
_EXECUTING = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status (\w+)")


class TaskLog(io.TextIOBase):
    """A text stream standing in for ``sys.stdout`` while kfp.local runs (kfp.local logs through
    the root logger to the ``sys.stdout`` of the moment, and echoes every task's output with
    ``print``). Every line goes to ``log_file``; in quiet mode the terminal gets one progress line
    per task (``[12/37] train cnn3d K_VRH cv-fold-1 ... done 41 s``) and, when a task fails, the
    last ``tail`` lines of its output; verbose mode passes everything through.

    ``labels`` maps kfp.local task names (``train-21``) to what the line says.
    """

    def __init__(self, echo: Callable[..., None], n_tasks: int, labels: dict[str, str],
                 log_file: Path, verbose: bool = False, tail: int = 40):
        self.n_tasks, self.labels, self.verbose = n_tasks, labels, verbose
        self._echo, self.term = echo, sys.stdout  # the terminal, before kfp.local's redirect
        self.log = open(log_file, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        self.buf = ""
        self.index = 0
        self.task: str | None = None
        self.failed: str | None = None
        self.t0 = time.perf_counter()
        self.lines: collections.deque[str] = collections.deque(maxlen=tail)

    def echo(self, msg: str = "", nl: bool = True) -> None:
        """``echo`` with ``sys.stdout`` put back: a click-like echo writes to the
        ``sys.stdout`` of the moment, which is this stream while kfp.local runs."""
        with contextlib.redirect_stdout(self.term):
            self._echo(msg, nl=nl)

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self.buf += s
        *lines, self.buf = self.buf.split("\n")
        for line in lines:
            self._line(line)
        return len(s)

    def label(self, task: str) -> str:
        return self.labels.get(task, task)

    def _line(self, raw: str) -> None:
        line = ANSI.sub("", raw)
        self.log.write(line + "\n")
        if self.verbose:
            self.echo(raw)
        if m := _EXECUTING.search(line):
            self.index += 1
            self.task, self.t0 = m.group(1), time.perf_counter()
            self.lines.clear()
            if not self.verbose:
                self.echo(f"[{self.index}/{self.n_tasks}] {self.label(self.task)} ... ", nl=False)
        elif m := _FINISHED.search(line):
            self.finished(m.group(1), m.group(2) == "SUCCESS")
        elif self.task and line.strip():
            self.lines.append(line.strip())

    def finished(self, task: str, ok: bool) -> None:
        """Close the progress line of ``task`` (kfp.local raises, without logging it, when a
        task fails: the runner calls this with ``ok=False`` then)."""
        if not ok:
            self.failed = self.label(task)
        if not self.verbose:
            took = time.perf_counter() - self.t0
            self.echo(f"done {took:.0f} s" if ok else f"FAILED after {took:.0f} s")
            if not ok and self.lines:
                self.echo("\n".join(f"    {x}" for x in self.lines))

    def close(self) -> None:
        if self.buf:
            self._line(self.buf)
            self.buf = ""
        self.log.close()
        super().close()


def task_labels(settings: Settings, pipeline_func) -> dict[str, str]:
    """kfp.local task name -> progress label: ``train cnn3d K_VRH cv-fold-1`` for a training
    task, the display name for the others (``external-validation``)."""
    from ecdflow.tracking import split_label

    runs = {r.task_name: r for r in build_plan(settings)}
    out = {}
    for key, spec in pipeline_func.pipeline_spec.root.dag.tasks.items():
        name = spec.task_info.name
        r = runs.get(name)
        out[key] = f"train {r.model} {r.target} {split_label(r.split)}" if r else name
    return out


def _start_outputs(run_dir: Path | None) -> dict[str, str]:
    """The start task's outputs (``run_id``, ``parent_run_id``) of a kfp.local run folder."""
    path = run_dir / "start" / "executor_output.json" if run_dir else None
    if not path or not path.exists():
        return {}
    return json.loads(path.read_text()).get("parameterValues", {})


def publish_latest(settings: Settings, run_dir: Path) -> dict[str, Path]:
    """Copy a local run's records (shards + manifest) to ``paths.records_dir`` and its
    validation output (Data Docs + ``summary.json``) to ``paths.validation_dir``: the stable
    places README names. Returns what was written (missing outputs are skipped)."""
    out = {}
    for what, src, rel in (
            ("records", run_dir / "preprocess" / "records", settings.paths.records_dir),
            ("validation", run_dir / "validate" / "data_docs", settings.paths.validation_dir)):
        if not src.is_dir() or is_remote(rel):
            continue
        dest = settings.path(rel)
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(src, dest)
        out[what] = dest
    return out


def finish_run(settings: Settings, pipeline_run_id: str,
               failed_task: str | None = None) -> str | None:
    """``ecdflow.results.finish_pipeline_run`` (the exit task of a cluster run calls the same)."""
    from ecdflow.results import finish_pipeline_run

    return finish_pipeline_run(settings, pipeline_run_id, failed_task)


def run_local(settings: Settings, params_file: str | Path | None = None,
              arguments: dict[str, Any] | None = None, echo: Callable[..., None] | None = None,
              verbose: bool = False) -> dict[str, Any]:
    """Run ``ecd-elastic`` with kfp.local (``pipeline.local_runner``: subprocesses in this
    Python environment, or ``docker``: each task in its component's image through a Docker
    API, see ``ecdflow.containers``; the MLflow store is the configured one). With
    ``arguments["resume_run_id"]``, the training tasks that run already finished are left out
    of the graph (``ecdflow.plan.finished_tasks``; one ``echo`` line says how many).

    kfp.local's own output (the executor inputs, every task's streamed log) goes to
    ``<work_dir>/logs/run-local-<time>.log``; ``echo`` (``click.echo``-like: text, ``nl=``)
    gets one progress line per task, or everything when ``verbose``. At the end the MLflow
    parent run gets its results description and ends ``FINISHED`` (or ``FAILED``, tagged with
    the failing task), and the run's records and validation output are copied to
    ``paths.records_dir`` / ``paths.validation_dir``.

    Returns ``run_id``, ``seconds``, ``tasks``, ``log`` (path) and ``published``.

    Raises:
        EcdflowError: a task failed (the message names it and the log file).
    """
    from kfp import local

    from ecdflow.containers import kfp_local_runner

    root = local_root(settings)
    root.mkdir(parents=True, exist_ok=True)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    log_dir = settings.work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    log_file = log_dir / f"run-local-{time.strftime('%Y%m%d-%H%M%S')}.log"
    local.init(runner=kfp_local_runner(settings.pipeline.local_runner),
               pipeline_root=str(root), raise_on_error=True)
    say = echo or (lambda *a, **k: None)
    resume = (arguments or {}).get("resume_run_id")
    finished = finished_tasks(settings, str(resume), build_plan(settings)) if resume else None
    if finished and finished.tasks:
        say(f"{len(finished.tasks)} training tasks of {resume} finished before: left out of "
            f"this graph (their runs are reused; data version {finished.data_hash})")
    pipeline_func = build(settings, params_file, local=True, finished=finished)
    labels = task_labels(settings, pipeline_func)
    before = set(root.iterdir())
    stream = TaskLog(say, len(labels), labels, log_file, verbose)
    t0 = time.perf_counter()
    error = None
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(stream):
            # "non-Python base image": the images are ours
            warnings.filterwarnings("ignore", message=".*base image.*", category=RuntimeWarning)
            task = pipeline_func(**(arguments or {}))
    except RuntimeError as exc:  # kfp.local: "Task '...' finished with status FAILURE"
        error = ANSI.sub("", str(exc).splitlines()[0])
        if (m := _FINISHED.search(error)) and stream.failed is None:
            stream.finished(m.group(1), ok=False)
    finally:
        stream.close()
    seconds = time.perf_counter() - t0
    new = sorted(set(root.iterdir()) - before, key=lambda p: p.stat().st_mtime)
    run_dir = new[-1] if new else None
    run_id = task.output if error is None else _start_outputs(run_dir).get("run_id")
    if run_id:
        finish_run(settings, run_id, failed_task=stream.failed or (error and "unknown"))
    if error is not None:
        where = f"task '{stream.failed}'" if stream.failed else "a task"
        raise EcdflowError(f"local pipeline run failed in {where}: {error} (full log: "
                           f"{log_file})")
    published = publish_latest(settings, run_dir) if run_dir else {}
    return {"run_id": run_id, "seconds": seconds, "tasks": len(labels), "log": log_file,
            "published": published}


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
