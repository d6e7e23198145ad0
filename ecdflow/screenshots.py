"""Headless-Chromium pictures of what a user looks at after a pipeline run: the MLflow run
list, the pipeline's parent run, a registered model version and the evaluation report.

``make screenshots`` (``python -m ecdflow.screenshots``) takes them from the project's store into
``.ecdflow/screenshots/``; ``tests/e2e/test_user_path.py`` takes them from a tiny demo store.
The browser is ``ecdflow.testing.offline_browser`` (nothing leaves the machine); the MLflow UI
is a ``mlflow server`` started here on a free localhost port and stopped at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.testing import free_port, offline_browser, visit

PAGES = ("mlflow-run-list", "mlflow-cv-runs", "mlflow-parent-run", "mlflow-model-version",
         "report")
"""The PNG names (``<name>.png``) written by :func:`take_screenshots`."""


@contextmanager
def mlflow_ui(settings: Settings, log_file: Path, timeout_s: float = 120.0) -> Iterator[str]:
    """``mlflow server`` over the configured tracking store on a free 127.0.0.1 port; yields
    its base URL and stops it (its own process group) on exit.

    Raises:
        EcdflowError: the server did not answer ``/health`` within ``timeout_s``.
    """
    port = free_port()
    bindir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "w") as log:
        proc = subprocess.Popen(
            [str(bindir / "mlflow"), "server", "--backend-store-uri", settings.tracking_uri,
             "--registry-store-uri", settings.registry_uri, "--host", "127.0.0.1", "--port",
             str(port), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + timeout_s
            while True:
                try:
                    with urllib.request.urlopen(f"{url}/health", timeout=3) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if proc.poll() is not None or time.time() > deadline:
                    raise EcdflowError(f"mlflow server did not start (log: {log_file})")
                time.sleep(0.5)
            yield url
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait(timeout=10)


def take_screenshots(settings: Settings, out_dir: str | Path,
                     pipeline_run_id: str | None = None, settle_s: float = 3.0) -> dict[str, Path]:
    """Save PNGs of the run list, the parent run of ``pipeline_run_id`` (default: the newest
    parent run), the registered version it produced (else the newest version) and its report
    (``<reports_dir>/<id>/report.html``, when there is one) under ``out_dir``, each MLflow
    page's visible text beside it (``<name>.txt``). Returns name -> PNG path.

    Raises:
        EcdflowError: no parent run in the store (run the pipeline first).
    """
    import mlflow

    from ecdflow import tracking

    out_dir = Path(out_dir)
    exp_id = tracking.configure(settings)
    client = mlflow.MlflowClient()
    flt = f"tags.\"{tracking.TAG_ROLE}\" = 'parent'"
    if pipeline_run_id:
        flt += f" and tags.\"{tracking.TAG_PIPELINE_RUN}\" = '{pipeline_run_id}'"
    parents = client.search_runs([exp_id], filter_string=flt, max_results=1,
                                 order_by=["attributes.start_time DESC"])
    if not parents:
        raise EcdflowError("no pipeline parent run in the MLflow store: run `make run` first")
    parent = parents[0]
    pid = parent.data.tags[tracking.TAG_PIPELINE_RUN]
    versions = []
    for name in settings.registry.model_names.values():
        try:
            versions += client.search_model_versions(f"name = '{name}'")
        except mlflow.exceptions.MlflowException:
            continue
    mine = [v for v in versions if v.tags.get(tracking.TAG_PIPELINE_RUN) == pid] or versions
    mine.sort(key=lambda v: int(v.creation_timestamp or 0))
    out: dict[str, Path] = {}
    with mlflow_ui(settings, out_dir / "mlflow-server.log") as url, \
            offline_browser(width=1600, height=1400) as ctx:
        # the UI's assistant panel opens itself on localhost and hides half the page
        ctx.add_init_script("localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1',"
                            " 'true'); localStorage.setItem('mlflow.assistant.panelOpen_v1',"
                            " 'false');")
        # (page URL, a text that shows the page has rendered): the UI polls, never "idle"
        run_name = parent.info.run_name or f"pipeline-{pid}"
        pages = {"mlflow-run-list": (tracking.ui_url(url, exp_id, None), run_name),
                 "mlflow-cv-runs": (tracking.ui_url(url, exp_id), "cv-fold-0"),
                 "mlflow-parent-run": (f"{url}/#/experiments/{exp_id}/runs/"
                                       f"{parent.info.run_id}?{tracking.UI_WORKFLOW}",
                                       run_name)}
        if mine:
            v = mine[-1]
            pages["mlflow-model-version"] = (f"{url}/#/models/{v.name}/versions/{v.version}",
                                             f"Version {v.version}")
        for name, (page_url, ready) in pages.items():
            page = ctx.new_page()
            page.goto(page_url, wait_until="load", timeout=60_000)
            try:
                page.get_by_text(ready).first.wait_for(timeout=60_000)
            except Exception:  # noqa: BLE001 - the picture shows what did render
                pass
            page.wait_for_timeout(settle_s * 1000)  # charts and tables settle
            more = page.get_by_text("Show more", exact=True)
            if more.count():  # the parent run's description, in full
                more.first.click()
                page.wait_for_timeout(500)
            out_dir.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out_dir / f"{name}.png"), full_page=True)
            (out_dir / f"{name}.txt").write_text(page.inner_text("body"))
            page.close()
            out[name] = out_dir / f"{name}.png"
        report = settings.path(settings.paths.reports_dir) / pid / "report.html"
        if report.exists():
            visit(ctx, report, screenshot=out_dir / "report.png").close()
            out["report"] = out_dir / "report.png"
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m ecdflow.screenshots [OUT_DIR]``: the project's store -> PNGs (default
    ``<work_dir>/screenshots``)."""
    from ecdflow.config import load_settings

    argv = sys.argv[1:] if argv is None else argv
    settings = load_settings()
    out = Path(argv[0]) if argv else settings.work_dir / "screenshots"
    try:
        shots = take_screenshots(settings, out)
    except EcdflowError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, path in shots.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
