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
    the root by absolute path (the only folder the containers see). Creates the root and
    ``<root>/work`` with mode 0o777 (the image's non-root user writes there).
    """
    root = Path(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o777)
    work = root / "work"
    work.mkdir(exist_ok=True)
    os.chmod(work, 0o777)  # the tasks create the MLflow store and their outputs here
    return {
        "paths": {"work_dir": str(work), "records_dir": str(work / "records"),
                  "validation_dir": str(work / "validation"),
                  "reports_dir": str(work / "reports")},
        "mlflow": {"tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
                   "artifact_root": str(work / "mlartifacts")},
        "pipeline": {"local_runner": "docker", "local_root": str(root), "cpu_image": image,
                     "gpu_image": image, "gpus_per_train_task": 0},
    }


def container_settings(settings, root: str | Path) -> Path:
    """Write ``settings`` (already merged: params file, profile, CLI and ``docker_overrides``)
    to ``<root>/settings.yaml`` and return it: the tasks' params file. DockerRunner passes no
    environment and the image's own ``params.yaml`` points at its own folders, so this file,
    under the one mounted folder, is how the run's settings reach the containers. Profiles are
    left out (already applied); relative paths resolve against the image's project root
    (``/opt/ecdflow``, which holds the bundled data).

    The materials table (a local file, resolved on this host: the image bundles only
    ``materials.jsonl``, not e.g. the quick profile's subset) is copied to
    ``<root>/work/inputs/`` first (the containers see nothing else); ``settings.yaml``'s
    ``paths.materials`` names the copy.

    Raises:
        FileNotFoundError: the materials table does not exist.
    """
    import shutil

    import yaml

    from ecdflow.schema import is_remote

    root = Path(root).resolve()
    data = settings.model_dump(mode="json")
    data["profiles"] = {}
    materials = data["paths"]["materials"]
    src = None if is_remote(materials) else settings.path(materials).resolve()
    if src is not None and not src.is_relative_to(root):
        inputs = root / "work" / "inputs"
        inputs.mkdir(parents=True, exist_ok=True)
        os.chmod(inputs, 0o777)
        dest = inputs / src.name
        shutil.copyfile(src, dest)
        data["paths"]["materials"] = str(dest)
    path = root / "settings.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.chmod(path, 0o644)
    return path


def check_image(image: str) -> None:
    """Fail in one line, before any task starts, when no Docker API answers (``DOCKER_HOST``;
    podman's: ``infra/podman/docker-socket.sh``) or ``image`` is not there (DockerRunner would
    try to pull it).

    Raises:
        EcdflowError: no engine, or no such image.
    """
    import docker

    from ecdflow.errors import EcdflowError

    try:
        client = docker.from_env()
        client.ping()
    except Exception as exc:  # docker raises several kinds for "nothing answers"
        raise EcdflowError(f"no Docker API answers at DOCKER_HOST="
                           f"{os.environ.get('DOCKER_HOST', '(unset)')}: "
                           f"{str(exc).splitlines()[0][:120]} (without Docker: "
                           "bash infra/podman/docker-socket.sh <command>)") from None
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        raise EcdflowError(f"image {image} not found on the Docker API (build it: make images "
                           "BASE_IMAGE=local IMAGE_REPO=localhost/ecdflow IMAGE_TAG=local)"
                           ) from None


def remove_task_containers(root: str | Path) -> int:
    """Remove the stopped task containers of DockerRunner runs under pipeline root ``root``
    and return how many: kfp 2.13 starts each task with ``containers.run(detach=True)`` and
    never removes it, so every task would leave a stopped container behind. Only containers
    whose command names ``root`` (their executor input holds its output paths) are touched.
    """
    import docker

    root = str(Path(root).resolve())
    client = docker.from_env()
    n = 0
    try:
        for c in client.containers.list(all=True, filters={"status": "exited"}):
            if any(root in str(part) for part in (c.attrs.get("Config") or {}).get("Cmd") or []):
                c.remove()
                n += 1
    finally:
        client.close()
    return n
