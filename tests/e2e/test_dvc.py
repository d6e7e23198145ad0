"""DVC stages in a temporary copy of the repository: repro, no-op repro, params-driven reruns,
push to the local remote. Tiny table (12 materials) and an 8^3 grid."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
VENV = Path(sys.executable).parent.parent


def _dvc(copy: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "ECDFLOW_PROFILE"}
    env |= {"PYTHONPATH": str(copy), "ECDFLOW_NO_PROGRESS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "ECDFLOW_WORK_DIR": str(copy / ".ecdflow")}
    res = subprocess.run([str(VENV / "bin" / "dvc"), *args], cwd=copy, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"dvc {' '.join(args)}:\n{res.stdout[-3000:]}{res.stderr[-3000:]}"
    return res


def _find(obj, key: str):
    """First value of ``key`` anywhere in nested dicts (dvc metrics show --json)."""
    if isinstance(obj, dict):
        if key in obj:
            return obj[key]
        for v in obj.values():
            found = _find(v, key)
            if found is not None:
                return found
    return None


def _set_params(copy: Path, edit) -> None:
    p = copy / "params.yaml"
    params = yaml.safe_load(p.read_text())
    edit(params)
    p.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def copy(tmp_path_factory) -> Path:
    """The working tree (tracked + untracked, not ignored) in a fresh git repo."""
    dst = tmp_path_factory.mktemp("clone") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.splitlines()
    for rel in files:
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    (dst / ".venv").symlink_to(VENV)
    table = dst / "data/fcc/materials.jsonl"
    small = [ln for ln in table.read_text().splitlines()
             if json.loads(ln)["family"] in ("fcc-element", "rocksalt-ionic")]
    table.write_text("".join(ln + "\n" for ln in small[:12]))

    def tiny(p: dict) -> None:
        p["profile"] = "quick"
        p["profiles"]["quick"]["density"] = {"grid": 8}
        p["records"]["num_shards"] = 3

    _set_params(dst, tiny)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    return dst


def test_repro_noop_and_param_reruns(copy: Path):
    first = _dvc(copy, "repro")
    assert "Running stage 'preprocess'" in first.stdout
    assert "Running stage 'validate'" in first.stdout
    man = json.loads((copy / ".ecdflow/dvc/records/manifest.json").read_text())
    assert man["count"] == 12 and man["grid"] == 8 and len(man["shards"]) == 3
    assert json.loads((copy / ".ecdflow/metrics/validate.json").read_text())["success"]
    assert (copy / ".ecdflow/dvc/validation/gx").is_dir()

    again = _dvc(copy, "repro")
    assert "Running stage" not in again.stdout
    assert "up to date" in _dvc(copy, "status").stdout

    _set_params(copy, lambda p: p["validation"].update(min_rows=5))
    only_validate = _dvc(copy, "repro")
    assert "Running stage 'validate'" in only_validate.stdout
    assert "Running stage 'preprocess'" not in only_validate.stdout

    _set_params(copy, lambda p: p["records"].update(num_shards=2))
    assert "preprocess" in _dvc(copy, "status").stdout
    shards = _dvc(copy, "repro")
    assert "Running stage 'preprocess'" in shards.stdout
    man2 = json.loads((copy / ".ecdflow/dvc/records/manifest.json").read_text())
    assert len(man2["shards"]) == 2 and man2["data_hash"] == man["data_hash"]

    shown = json.loads(_dvc(copy, "metrics", "show", "--json").stdout)
    assert _find(shown, "written") == 12 and _find(shown, "n_records") == 12
    _dvc(copy, "push")
    remote = copy / ".ecdflow/dvc-remote"
    assert remote.is_dir() and any(p.is_file() for p in remote.rglob("*"))
