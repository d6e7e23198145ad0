"""The built wheel compiles the pipeline with no checkout present: its own params.yaml, its own
KFP wing (ecdflow.kfp), relative paths against the working directory."""

import json
import os
import shutil
import subprocess
import sys
import zipfile

import yaml

from ecdflow.config import REPO_ROOT, load_settings

COMPILE = ("import sys, ecdflow; from ecdflow.cli import main; "
           "print('ECDFLOW', ecdflow.__file__, file=sys.stderr); main()")


def test_the_wheel_compiles_the_pipeline_outside_the_checkout(tmp_path):
    src, dist = tmp_path / "src", tmp_path / "dist"  # a copy: the build leaves the tree clean
    shutil.copytree(REPO_ROOT, src, symlinks=True, ignore=shutil.ignore_patterns(
        ".*", "__pycache__", "build", "dist", "*.egg-info", "data", "tests", "bench", "docs"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(dist), str(src)], check=True, cwd=tmp_path,
                   capture_output=True, timeout=300)
    wheel = next(dist.glob("ecdflow-*.whl"))
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        zf.extractall(site)
    assert "ecdflow/params.yaml" in names and "ecdflow/kfp/components/gate.py" in names
    assert not any(n.startswith(("pipelines/", "components/", "tests/")) for n in names)
    # the shipped pretrained models travel as package data (MLmodel, members, card)
    shipped = {n for n in names if n.startswith("ecdflow/pretrained/ecdflow-")}
    for part in ("MLmodel", "MODEL_CARD.md", "card.json", "artifacts/member_4.skops",
                 "artifacts/calibration.json", "artifacts/domain.npz",
                 "artifacts/oof_predictions.json", "python_model.pkl"):
        assert sum(n.endswith("/" + part) for n in shipped) == 2, part
    # the packaged params.yaml is the repository's (a file in the wheel, not a link)
    assert (site / "ecdflow" / "params.yaml").read_text() == (REPO_ROOT / "params.yaml").read_text()
    # a project folder with nothing but a small materials table at the default relative path
    work = tmp_path / "elsewhere"
    rel = load_settings(profile="quick").paths.materials
    table = work / rel
    table.parent.mkdir(parents=True)
    rows = (REPO_ROOT / rel).read_text().splitlines()[:60]
    table.write_text("\n".join(rows) + "\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ECDFLOW_", "MLFLOW_")) and k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(site), ECDFLOW_NO_PROGRESS="1")
    out = subprocess.run([sys.executable, "-c", COMPILE, "pipeline", "compile", "--out",
                          "ir.yaml"], cwd=work, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    used = next(ln for ln in out.stderr.splitlines() if ln.startswith("ECDFLOW "))
    assert used.split()[1].startswith(str(site))  # the wheel's copy, not the checkout
    ir = next(yaml.safe_load_all((work / "ir.yaml").read_text()))
    names = {t["taskInfo"]["name"] for t in ir["root"]["dag"]["tasks"].values()}
    for comp in ir["components"].values():
        names |= {t["taskInfo"]["name"] for t in comp.get("dag", {}).get("tasks", {}).values()}
    assert {"start", "preprocess", "validate", "evaluate", "register", "gate"} <= names
    assert any(n.startswith("train-") for n in names)
    # the work dir came out relative to where the command ran
    assert json.dumps(ir).count(str(REPO_ROOT)) == 0
