"""End to end: `ecdflow pipeline run-local --containers IMAGE` (kfp.local DockerRunner through
podman's Docker API, infra/podman/docker-socket.sh) runs every task of a tiny `ecd-elastic`
(rf_magpie x K_VRH x one CV fold, 24 materials at grid 8) in the CPU image as its non-root
user, tracking to a SQLite store under the pipeline root."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ecdflow.config import REPO_ROOT

pytestmark = pytest.mark.slow
IMAGE = "localhost/ecdflow/ecdflow-cpu:test"  # the tag tests/e2e/test_images.py builds too
N_MATERIALS = 24


@pytest.fixture(scope="module")
def image() -> str:
    """The CPU image, built from a local Debian base (cached layers: seconds when unchanged)."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (`make apt-deps` installs it)")
    env = os.environ | {"BASE_IMAGE": "local", "IMAGE_REPO": "localhost/ecdflow",
                        "IMAGE_TAG": "test"}
    out = subprocess.run(["bash", str(REPO_ROOT / "infra" / "podman" / "images.sh"), "cpu"],
                         cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=3000)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return IMAGE


@pytest.fixture()
def tiny(tmp_path: Path) -> tuple[Path, Path]:
    """A params file with profile `tiny` and its table (two-atom rock salts, physical moduli)."""
    rows = [json.loads(line) for line in
            (REPO_ROOT / "data" / "fcc" / "materials.jsonl").read_text().splitlines()]
    rows = [r for r in rows if 0 < r["K_VRH"] < 600 and 0 < r["G_VRH"] < 600
            and r.get("family", "").startswith("rocksalt")][:N_MATERIALS]
    table = tmp_path / "materials.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["profiles"]["tiny"] = {
        "paths": {"work_dir": str(tmp_path / "work")},
        "targets": ["K_VRH"], "density": {"grid": 8, "smearing_A": 0.3},
        "records": {"num_shards": 1},
        "splits": {"n_folds": 2, "folds": [0], "loeo_elements": []},
        "training": {"epochs": 1, "repeats": 1, "patience": 1, "batch_size": 16},
        "models": {"enabled": ["rf_magpie"]}, "mlflow": {"experiment": "e2e"},
    }
    pfile = tmp_path / "params.yaml"
    pfile.write_text(yaml.safe_dump(params))
    return pfile, table


def test_every_task_runs_in_the_image_as_its_user(image, tiny, tmp_path):
    pfile, table = tiny
    env = {k: v for k, v in os.environ.items()
           if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "ECDFLOW_WORK_DIR",
                        "ECDFLOW_PROFILE", "DOCKER_HOST")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    cli = [sys.executable, "-c", "from ecdflow.cli import main; main()"]
    out = subprocess.run(
        ["bash", str(REPO_ROOT / "infra" / "podman" / "docker-socket.sh"), *cli,
         "--params", str(pfile), "--profile", "tiny", "pipeline", "run-local",
         "--containers", image, "--materials", str(table)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
    assert "8 tasks in" in out.stdout  # start ... train x1 ... gate
    assert "removed 8 stopped task containers" in out.stdout  # kfp.local leaves them behind
    root = tmp_path / "work" / "kfp-containers"
    # everything the tasks wrote is the image user's (uid 1000), not this process's (root)
    (run_dir,) = [p for p in root.iterdir() if p.name.startswith("ecd-elastic-")]
    manifest = run_dir / "preprocess" / "records" / "manifest.json"
    assert manifest.stat().st_uid == 1000
    assert json.loads(manifest.read_text())["counts"]["read"] == N_MATERIALS
    assert (root / "work" / "mlflow.db").stat().st_uid == 1000
    # the copied table is the one read, and the tasks' MLflow runs come from the image's venv
    assert (root / "work" / "inputs" / "materials.jsonl").read_bytes() == table.read_bytes()
    with sqlite3.connect(root / "work" / "mlflow.db") as db:
        rows = db.execute(
            "SELECT r.status, t1.value, t2.value FROM runs r "
            "JOIN tags t1 ON t1.run_uuid = r.run_uuid AND t1.key = 'mlflow.source.name' "
            "JOIN tags t2 ON t2.run_uuid = r.run_uuid AND t2.key = 'mlflow.user' "
            "JOIN tags t3 ON t3.run_uuid = r.run_uuid AND t3.key = 'ecdflow.role' "
            "AND t3.value = 'train'").fetchall()
    assert len(rows) == 1
    status, source, user = rows[0]
    assert status == "FINISHED" and source.startswith("/opt/venv/") and user == "ecdflow"
    assert "ecdflow-bulk-modulus v1" in out.stdout  # register ran in its container too


@pytest.mark.parametrize("profile", ["quick", "paper"])
def test_settings_file_gives_the_tasks_the_same_settings(profile, tmp_path):
    """What the tasks load from <root>/settings.yaml is what the CLI merged, with the
    materials table (relative in params.yaml) copied under the root; no profile re-applied."""
    from ecdflow.config import deep_merge, load_settings
    from ecdflow.containers import container_settings, docker_overrides

    root = tmp_path / "kfp-containers"
    ov = deep_merge({"models": {"enabled": ["rf_magpie"]}, "splits": {"folds": [1]}},
                    docker_overrides(root, IMAGE))
    merged = load_settings(None, profile, ov)
    loaded = load_settings(container_settings(merged, root), profile)
    copy = root / "work" / "inputs" / Path(merged.paths.materials).name
    assert loaded.paths.materials == str(copy)
    assert copy.read_bytes() == merged.path(merged.paths.materials).read_bytes()
    expect = merged.model_dump() | {"profiles": {}}
    expect["paths"] = expect["paths"] | {"materials": str(copy)}
    assert loaded.model_dump() == expect
    assert loaded.models.enabled == ["rf_magpie"] and loaded.splits.folds == [1]
    assert loaded.work_dir == (root / "work").resolve()
