"""CLI: `ecdflow serve --target K_VRH` — the registered model behind an alias as a REST server
(`mlflow models serve`), with the project's MLflow store and the venv's tools (uvicorn)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ecdflow.cli.common import settings as load


def serve_command(tracking_uri: str, registry_uri: str, model_uri: str, host: str, port: int,
                  workers: int, bindir: Path) -> tuple[list[str], dict[str, str]]:
    """argv and environment of ``mlflow models serve`` for ``model_uri``: the tracking and
    registry URIs set (no stray ``./mlflow.db``), ``bindir`` first on ``PATH`` (mlflow starts
    ``uvicorn`` from ``PATH``), no environment built (``--env-manager local``)."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri,
           "MLFLOW_REGISTRY_URI": registry_uri,
           "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    argv = [str(bindir / "mlflow"), "models", "serve", "-m", model_uri, "--env-manager", "local",
            "-h", host, "-p", str(port), "-w", str(workers)]
    return argv, env


@click.command("serve")
@click.option("--target", required=True, help="bulk, shear, K_VRH or G_VRH.")
@click.option("--alias", default="champion", show_default=True,
              help="Registered-model alias to serve (champion, challenger).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=5001, show_default=True)
@click.option("--workers", type=int, default=1, show_default=True)
@click.pass_context
def serve(ctx: click.Context, target: str, alias: str, host: str, port: int,
          workers: int) -> None:
    """Serve the registered model of TARGET behind ALIAS over REST (POST /invocations; the
    request format is in README and docs/registry.md). Runs until stopped (Ctrl-C)."""
    from ecdflow.registry import aliased_version

    s = load(ctx)
    mv = aliased_version(s, target, alias)  # one-line error when there is none
    uri = f"models:/{mv.name}@{alias}"
    argv, env = serve_command(s.tracking_uri, s.registry_uri, uri, host, port, workers,
                              Path(sys.executable).parent)
    click.echo(f"serving {mv.name} v{mv.version} ({mv.tags.get('ecdflow.model', '?')}) as {uri} "
               f"on http://{host}:{port}/invocations", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, env)
