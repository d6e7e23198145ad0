"""The CPU image as a cluster would pull it: built here (podman, a locally bootstrapped Debian
12 base, infra/podman/images.sh), a pipeline component run in it as its non-root user on a few
materials, and its records checked against the same step run on the host."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from ecdflow.config import REPO_ROOT, load_settings

pytestmark = pytest.mark.slow
IMAGE_REPO, IMAGE_TAG = "localhost/ecdflow", "test"
CPU_IMAGE = f"{IMAGE_REPO}/ecdflow-cpu:{IMAGE_TAG}"
CONF = REPO_ROOT / "infra" / "podman" / "containers.conf"
N_MATERIALS = 6


def _podman(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"CONTAINERS_CONF": str(CONF)})


@pytest.fixture(scope="module")
def cpu_image() -> str:
    """The CPU image, built from a local Debian base (layers and the base tarball are cached:
    an unchanged lock and project rebuild in seconds)."""
    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: `make apt-deps` installs it")
    env = os.environ | {"BASE_IMAGE": "local", "IMAGE_REPO": IMAGE_REPO,
                        "IMAGE_TAG": IMAGE_TAG}
    out = subprocess.run(["bash", str(REPO_ROOT / "infra" / "podman" / "images.sh"), "cpu"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, (out.stdout[-3000:] + out.stderr[-3000:])
    return CPU_IMAGE


def _table(path: Path) -> Path:
    """The first rows of the configured (quick profile) materials table."""
    settings = load_settings()
    rows = [ln for ln in settings.path(settings.paths.materials).read_text().splitlines()
            if ln.strip()]
    path.write_text("".join(ln + "\n" for ln in rows[:N_MATERIALS]))
    return path


def test_cpu_image_runs_preprocess_as_non_root(cpu_image, tmp_path):
    """`ecdflow preprocess` in the image (no network, uid 1000, one BLAS thread) writes the
    same records (data_hash) as the same step on the host."""
    from ecdflow.preprocess import run_preprocess

    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    out.mkdir()
    table = _table(src / "materials.jsonl")
    os.chmod(src, 0o755)
    os.chmod(table, 0o644)
    os.chmod(out, 0o777)  # written by the image's user (uid 1000)
    script = ("id -u; echo $OMP_NUM_THREADS; ecdflow preprocess --materials /in/materials.jsonl"
              " --out /out/rec --metrics /out/manifest.json")
    res = _podman("run", "--rm", "--network", "none", "-v", f"{src}:/in:ro",
                  "-v", f"{out}:/out", cpu_image, "sh", "-c", script)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    uid, threads = res.stdout.split()[:2]
    assert uid == "1000" and threads == "1"
    man = json.loads((out / "manifest.json").read_text())
    assert man["counts"]["read"] == N_MATERIALS
    assert man["counts"]["written"] + man["counts"]["quarantined"] == N_MATERIALS
    assert man["counts"]["written"] >= N_MATERIALS - 1
    host = run_preprocess(load_settings(overrides={"paths": {"work_dir": str(tmp_path / "w")}}),
                          materials_path=str(table), out_dir=str(tmp_path / "host"))
    assert man["grid"] == host["grid"] and man["counts"] == host["counts"]
    assert man["data_hash"] == host["data_hash"]


def test_cpu_image_has_the_lock_and_no_pip_cache(cpu_image):
    """The image holds exactly the lock (pip check, kfp/mlflow versions) and no pip cache."""
    lock = {ln.split("==")[0].lower(): ln.split("==")[1] for ln in
            (REPO_ROOT / "requirements" / "lock.txt").read_text().splitlines()
            if "==" in ln and not ln.startswith("#")}
    res = _podman("run", "--rm", "--network", "none", "--user", "0", cpu_image, "sh", "-c",
                  "pip check && pip freeze && if [ -d /root/.cache/pip ]; then echo PIPCACHE; fi")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    frozen = dict(ln.lower().split("==") for ln in res.stdout.splitlines() if "==" in ln)
    for pkg in ("kfp", "mlflow", "apache-beam", "tensorflow", "dask", "psycopg2-binary"):
        assert frozen[pkg] == lock[pkg].lower(), pkg
    assert "PIPCACHE" not in res.stdout
