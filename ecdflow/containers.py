"""Running the pipeline's tasks in the project's images on this machine (kfp.local).

kfp 2.13's ``local.DockerRunner`` runs each task in its component's ``base_image`` through a
Docker API (``DOCKER_HOST``; without Docker, podman's: ``infra/podman/docker-socket.sh``). It
mounts only the pipeline root, at the same absolute path, passes no environment variables and
runs as the image's user (UID 1000 in ours). So everything a task reads or writes - records,
the MLflow store, reports - must live under the pipeline root, with absolute paths, and the
root must be writable by that user. ``docker_overrides`` gives the settings that do this.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ecdflow.errors import InputError


def kfp_local_runner(kind: str):
    """The kfp.local runner object for ``pipeline.local_runner`` (``subprocess``/``docker``).

    Raises:
        InputError: an unknown kind.
    """
    from kfp import local

    if kind == "subprocess":
        return local.SubprocessRunner(use_venv=False)
    if kind == "docker":
        return local.DockerRunner()
    raise InputError("pipeline.local_runner", f"unknown kfp.local runner {kind!r} "
                                              "(subprocess, docker)")


def docker_overrides(root: str | Path, image: str) -> dict[str, Any]:
    """Settings overrides for a DockerRunner run under pipeline root ``root``: every task in
    ``image`` (training on CPU), work dir, records, reports and the SQLite MLflow store under
    the root by absolute path (the only folder the containers see). Creates the root with
    mode 0o777 (the image's non-root user writes there).
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o777)
    work = root / "work"
    return {
        "paths": {"work_dir": str(work), "records_dir": str(work / "records"),
                  "validation_dir": str(work / "validation"),
                  "reports_dir": str(work / "reports")},
        "mlflow": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
                   "artifact_root": str(work / "mlartifacts")},
        "pipeline": {"local_runner": "docker", "local_root": str(root), "cpu_image": image,
                     "gpu_image": image, "gpus_per_train_task": 0},
    }
