"""Helpers for tests and benchmarks: a real, local S3 server (moto) on 127.0.0.1, and an
offline headless Chromium that records every request a page makes.

The S3 server is used by tests/e2e/test_s3_records.py and bench/bench_s3.py, so records are
written to and read from an actual S3 endpoint (HTTP, signed requests) without any network
access. ``offline_browser``/``visit`` open the HTML artifacts (Data Docs, the evaluation report,
MLflow UI pages) with every request off the machine blocked and recorded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: environment variables a local pipeline run's task subprocesses must not inherit (an outside
#: MLflow server, a work dir or profile of the shell)
RUN_ENV_VARS = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "ECDFLOW_WORK_DIR",
                "ECDFLOW_PROFILE")


def write_profile(params_file: Path, name: str, work: Path, profile: dict) -> Path:
    """Write the checkout's ``params.yaml`` plus one profile ``name`` to ``params_file``: the
    given ``profile`` with every store (work, records, validation, reports) under ``work``
    (keys in ``profile["paths"]`` win). Returns ``params_file``."""
    import yaml

    from ecdflow.config import REPO_ROOT

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    paths = {"work_dir": str(work), "records_dir": str(work / "records"),
             "validation_dir": str(work / "validation"), "reports_dir": str(work / "reports")}
    params["profiles"][name] = {**profile, "paths": {**paths, **profile.get("paths", {})}}
    params_file.write_text(yaml.safe_dump(params))
    return params_file


def stop_process_group(proc: subprocess.Popen, grace_s: float = 30.0) -> None:
    """Stop a server started with ``start_new_session=True`` and its children: SIGTERM to its
    process group, SIGKILL if it has not exited after ``grace_s`` seconds; returns once reaped."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)  # the server's own session
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


@contextmanager
def local_s3_server(bucket: str, timeout_s: float = 60.0) -> Iterator[dict[str, str]]:
    """Run ``moto_server`` on a free port with ``bucket`` created; yields the environment
    (``S3_ENDPOINT``, ``AWS_*``, the tensorflow-io ``S3_*`` flags) that ecdflow's Beam writes
    and tf.data reads use. The server is stopped on exit.

    Raises:
        RuntimeError: the server did not accept connections within ``timeout_s``.
    """
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"S3_ENDPOINT": f"http://127.0.0.1:{port}", "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0",
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.3)
        s3_client(env).create_bucket(Bucket=bucket)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def s3_client(env: dict[str, str]):
    """A boto3 S3 client for the endpoint and keys in ``env``."""
    import boto3

    return boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name=env["AWS_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def upload_dir(env: dict[str, str], local_dir: str | Path, bucket: str, prefix: str) -> int:
    """Upload the files of ``local_dir`` to ``s3://bucket/prefix/``; returns bytes sent."""
    client, sent = s3_client(env), 0
    for p in sorted(Path(local_dir).iterdir()):
        if p.is_file():
            client.upload_file(str(p), bucket, f"{prefix}/{p.name}")
            sent += p.stat().st_size
    return sent


CHROMIUM = "/usr/bin/chromium"
"""Debian's ``chromium`` package (``make browser`` installs it with ``chromium-driver``)."""
CHROMIUM_ARGS = ("--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage")
"""Flags for root in a container, and no traffic of the browser's own (updates, sync)."""
_LOCAL_SCHEMES = ("file", "data", "blob", "about", "chrome", "chrome-extension")
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_local_url(url: str) -> bool:
    """True for a URL that stays on this machine (file:, data:, blob:, about:, localhost)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in _LOCAL_SCHEMES or (parts.hostname or "") in _LOCAL_HOSTS


@contextmanager
def offline_browser(executable: str = CHROMIUM, width: int = 1280, height: int = 900):
    """A headless Chromium (Playwright driving ``executable``, empty throw-away profile) whose
    pages cannot reach another host: every request is recorded in ``context.requests`` and
    any that would leave the machine is aborted and listed in ``context.external``.

    Raises:
        FileNotFoundError: ``executable`` is missing (run ``make browser``).
    """
    import tempfile

    from playwright.sync_api import sync_playwright

    if not Path(executable).exists():
        raise FileNotFoundError(f"{executable}: no Chromium (run `make browser`)")
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path=executable, headless=True, args=list(CHROMIUM_ARGS),
            viewport={"width": width, "height": height}, service_workers="block")
        ctx.requests, ctx.external = [], []

        def _route(route):
            url = route.request.url
            ctx.requests.append(url)
            if is_local_url(url):
                route.continue_()
            else:
                ctx.external.append(url)
                route.abort("internetdisconnected")

        ctx.route("**/*", _route)
        try:
            yield ctx
        finally:
            ctx.close()


def visit(ctx, url_or_path: str | Path, screenshot: str | Path | None = None,
          wait_for: str | None = None, timeout_ms: int = 30_000):
    """Open a page (a path becomes its file:// URL) in ``ctx`` from ``offline_browser``, wait
    for the load event, network idle and the ``wait_for`` CSS selector, and save a full-page
    PNG to ``screenshot`` (fixed-position elements put back in the flow first). Returns the
    page (still open; ``page.errors`` lists its uncaught JavaScript errors)."""
    url = Path(url_or_path).resolve().as_uri() if isinstance(url_or_path, Path) or \
        "://" not in str(url_or_path) else str(url_or_path)
    page = ctx.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    page.goto(url, wait_until="load", timeout=timeout_ms)
    page.wait_for_load_state("networkidle", timeout=timeout_ms)
    if wait_for:
        page.wait_for_selector(wait_for, timeout=timeout_ms)
    if screenshot:
        # a full-page capture would stamp fixed-position bars (GX's footer) mid-page
        page.evaluate("() => { for (const e of document.querySelectorAll('body *')) "
                      "if (getComputedStyle(e).position === 'fixed') e.style.position = "
                      "'static'; }")
        Path(screenshot).parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot), full_page=True)
    return page
PG_ROOT = Path("/usr/lib/postgresql")
"""Where Debian's ``postgresql`` package puts ``<major>/bin/{initdb,pg_ctl}``."""


@contextmanager
def local_postgres(db: str = "mlflow", user: str = "mlflow", password: str = "mlflow-test",
                   timeout_s: int = 60) -> Iterator[str]:
    """A throwaway PostgreSQL cluster on a free 127.0.0.1 port; yields its SQLAlchemy URL
    ``postgresql://user:password@127.0.0.1:PORT/db`` (the form infra/k8s gives MLflow).

    Debian's ``initdb``/``pg_ctl`` (highest major under /usr/lib/postgresql) run as a non-root
    user: as root (PostgreSQL refuses to run as root) through ``runuser -u nobody``. Data dir,
    Unix socket and log live in a fresh temp dir; password auth (scram-sha-256) over TCP;
    ``fsync=off`` (a test cluster). Stopped and removed on exit.

    Raises:
        RuntimeError: no PostgreSQL binaries (``make apt-deps`` installs ``postgresql``), or
            the cluster did not start (the message carries the end of its log).
    """
    import os
    import pwd
    import shutil
    import tempfile

    bins = sorted(PG_ROOT.glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not bins:
        raise RuntimeError(f"no PostgreSQL under {PG_ROOT} (make apt-deps installs postgresql)")
    bindir = bins[-1].parent
    tmp = Path(tempfile.mkdtemp(prefix="ecdflow-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.chown(tmp, nobody.pw_uid, nobody.pw_gid)
        prefix = ["runuser", "-u", "nobody", "--"]
    pwfile = tmp / "pw"
    pwfile.write_text(password + "\n")
    if prefix:
        os.chown(pwfile, nobody.pw_uid, nobody.pw_gid)
    data, log = tmp / "data", tmp / "server.log"
    port = free_port()

    def run(args: list[str]) -> None:
        out = subprocess.run(prefix + args, cwd=tmp, capture_output=True, text=True,
                             timeout=timeout_s + 30)
        if out.returncode != 0:
            tail = (log.read_text()[-800:] if log.exists() else "") or out.stderr[-800:]
            raise RuntimeError(f"{Path(args[0]).name} failed: {tail.strip()}")

    started = False
    try:
        run([str(bindir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
             "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"])
        run([str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t",
             str(timeout_s), "-o", f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 "
             "-c fsync=off", "start"])
        started = True
        import psycopg2

        conn = psycopg2.connect(host="127.0.0.1", port=port, user=user, password=password,
                                dbname="postgres")
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{db}"')
        conn.close()
        yield f"postgresql://{user}:{password}@127.0.0.1:{port}/{db}"
    finally:
        if started:
            subprocess.run(prefix + [str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast",
                                     "-w", "stop"], cwd=tmp, capture_output=True,
                           timeout=timeout_s)
        shutil.rmtree(tmp, ignore_errors=True)
