"""Beam preprocessing on Dask (Beam's DaskRunner, a `distributed` cluster of worker processes):
the same records, data version and dead letters as the local runner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from ecdflow.beam_runtime import (
    ONE_THREAD_ENV,
    beam_runner_name,
    dask_scheduler,
    iter_tfrecords,
)
from ecdflow.config import load_settings
from ecdflow.preprocess import run_preprocess

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
GRID = 10


def _rows(n: int) -> list[dict]:
    """``n`` good rows of the committed table, spread over families (first of each in turn)."""
    rows = [json.loads(ln) for ln in (REPO / "data/fcc/materials.jsonl").read_text().splitlines()]
    by_family: dict[str, list[dict]] = {}
    for r in rows:
        by_family.setdefault(r["family"], []).append(r)
    out, i = [], 0
    while len(out) < n:
        for fam in sorted(by_family):
            if i < len(by_family[fam]) and len(out) < n:
                out.append(by_family[fam][i])
        i += 1
    return out


@pytest.fixture(scope="module")
def table(tmp_path_factory) -> Path:
    """9 good rows; a NaN label, a broken structure, a duplicate id (table checks) and a row
    without a structure (its ECD fails inside the pipeline)."""
    from ecdflow.data.table import STRUCTURE_KEYS

    good = _rows(9)
    bad = [dict(good[0], material_id="bad-nan-label", K_VRH=float("nan"), G_VRH=None),
           dict(good[1], material_id="bad-structure", positions=[[0.0, 0.0]]),
           dict(good[2]),
           {k: v for k, v in dict(good[3], material_id="no-structure").items()
            if k not in STRUCTURE_KEYS}]
    path = tmp_path_factory.mktemp("tab") / "materials.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in good[:4] + bad + good[4:]))
    return path


def _settings(tmp: Path, num_shards: int = 0):
    return load_settings(overrides={
        "density": {"grid": GRID}, "paths": {"work_dir": str(tmp / "work")},
        "records": {"num_shards": num_shards, "dtype": "float16", "compression": ""}})


def _records(man: dict, out: Path) -> list[bytes]:
    """Every record of a run (sorted bytes); manifest shard names are relative to ``out``."""
    return sorted(r for s in man["shards"] for r in iter_tfrecords(str(out / s),
                                                                    man["compression"]))


@pytest.fixture(scope="module")
def direct(table, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("direct") / "rec"
    return run_preprocess(_settings(out.parent), materials_path=str(table), out_dir=str(out),
                          runner="direct"), out


def test_dask_cluster_gives_the_local_runners_records(table, direct, tmp_path):
    """A running 2-worker cluster (addressed like a remote one): same records, data_hash,
    counts and dead letters; every worker process has one compute thread."""
    from distributed import Client

    man_d, out_d = direct
    assert man_d["counts"] == {"read": 13, "written": 9, "quarantined": 4,
                               "quarantined_table": 3, "quarantined_pipeline": 1}
    out = tmp_path / "rec"
    with dask_scheduler(2) as address, Client(address) as client:
        envs = client.run(lambda: {k: os.environ.get(k) for k in ONE_THREAD_ENV})
        assert len(envs) == 2 and all(e == ONE_THREAD_ENV for e in envs.values())
        assert all(w["nthreads"] == 1 for w in client.scheduler_info()["workers"].values())
        man = run_preprocess(_settings(tmp_path), materials_path=str(table), out_dir=str(out),
                             runner="dask", dask_address=address)
    assert man["data_hash"] == man_d["data_hash"]
    assert man["counts"] == man_d["counts"]
    assert _records(man, out) == _records(man_d, out_d)
    assert (out / "quarantine.jsonl").read_bytes() == (out_d / "quarantine.jsonl").read_bytes()
    assert len(man["shards"]) <= 4 and all((out / s).stat().st_size for s in man["shards"])


def test_cli_runner_dask_local_cluster_writes_to_s3(table, direct, tmp_path, monkeypatch):
    """`ecdflow preprocess` with `preprocess.runner: dask` in the params, `--dask-workers 1`
    (the local-cluster path) and `--out s3://...` on a local S3 server: the workers write the
    shards and dead letters there; same data version and dead letters as the local runner."""
    from ecdflow.cli import cli
    from ecdflow.testing import local_s3_server, s3_client

    params = tmp_path / "params.yaml"
    params.write_text(f"profile: plain\ndensity: {{grid: {GRID}}}\n"
                      "records: {num_shards: 0, compression: '', dtype: float16}\n"
                      "preprocess: {runner: dask, dask_workers: 1}\n")
    metrics = tmp_path / "m.json"
    with local_s3_server("dask-test") as env:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        res = CliRunner().invoke(
            cli, ["--params", str(params), "preprocess", "--materials", str(table),
                  "--out", "s3://dask-test/rec", "--metrics", str(metrics),
                  "--dask-workers", "1"],
            env={"ECDFLOW_WORK_DIR": str(tmp_path / "work")}, catch_exceptions=False)
        assert res.exit_code == 1, res.output  # 1: written, some rows quarantined
        dead = s3_client(env).get_object(Bucket="dask-test", Key="rec/quarantine.jsonl")
        dead = dead["Body"].read()
    man = json.loads(metrics.read_text())
    assert man["data_hash"] == direct[0]["data_hash"] and len(man["shards"]) <= 2
    assert man["counts"] == direct[0]["counts"] and man["count"] == 9
    assert dead == (direct[1] / "quarantine.jsonl").read_bytes()
    assert f"data {man['data_hash']}" in res.output


@pytest.mark.parametrize(("given", "configured", "expect"), [
    (None, "direct", "DirectRunner"), (None, "dask", "DaskRunner"), ("dask", "direct",
                                                                     "DaskRunner"),
    ("DASK", "direct", "DaskRunner"), ("DataflowRunner", "dask", "DataflowRunner")])
def test_runner_names(given, configured, expect):
    s = load_settings(overrides={"preprocess": {"runner": configured}})
    assert beam_runner_name(given, s) == expect
