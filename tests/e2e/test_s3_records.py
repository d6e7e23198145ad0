"""Records on S3 for real: a moto S3 server on 127.0.0.1, Beam writes, tf.data reads.

A process that read s3:// through tensorflow-io must leave with os._exit (STACK.md), so every
tensorflow-io read runs in a subprocess that prints JSON and calls os._exit(0).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ecdflow import records_reader as RD
from ecdflow.config import load_settings
from ecdflow.preprocess import run_preprocess

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
BUCKET = "ecdflow-test"


@pytest.fixture(scope="module")
def s3_env():
    from ecdflow.testing import local_s3_server

    with local_s3_server(BUCKET) as env:
        old = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        try:
            yield env
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v


_READER = """
import json, os, sys
import numpy as np
from ecdflow import records as R
from ecdflow import records_reader as RD
d = sys.argv[1]
out = {"manifest": R.read_manifest(d), "ecd": {}, "index": []}
for f, y in RD.make_dataset(d, target="K_VRH", batch_size=2):
    for mid, e, k in zip(f["material_id"].numpy(), f["ecd"].numpy(), y.numpy()[:, 0]):
        out["ecd"][mid.decode()] = [float(np.sum(e, dtype=np.float64)), float(k)]
out["index"] = RD.read_index(d)["material_id"].tolist()
print(json.dumps(out))
sys.stdout.flush()
os._exit(0)
"""


def _run(args: list[str], timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout,
                          env=os.environ | {"TF_CPP_MIN_LOG_LEVEL": "2"}, cwd=REPO)


def test_beam_writes_to_s3_and_tf_data_reads_back(tmp_path: Path, s3_env):
    import boto3

    rows = [json.loads(ln) for ln in
            (REPO / "data/fcc/materials.jsonl").read_text().splitlines()]
    rows = [r for r in rows if r["family"] in ("fcc-element", "rocksalt-ionic")][:4]
    table = tmp_path / "materials.jsonl"
    table.write_text("".join(json.dumps(r) + "\n" for r in rows))
    s3 = boto3.client("s3", endpoint_url=s3_env["S3_ENDPOINT"], region_name="us-east-1")
    s3.upload_file(str(table), BUCKET, "in/materials.jsonl")
    settings = load_settings(overrides={
        "density": {"grid": 8}, "paths": {"work_dir": str(tmp_path / "w")},
        "records": {"num_shards": 2, "dtype": "float32", "compression": "GZIP"},
        "validation": {"min_rows": 2}})
    remote = f"s3://{BUCKET}/records"
    man = run_preprocess(settings, materials_path=f"s3://{BUCKET}/in/materials.jsonl",
                         out_dir=remote)
    assert man["counts"]["written"] == 4
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="records/")
                  ["Contents"])
    assert keys == ["records/manifest.json", "records/part-00000-of-00002.tfrecord.gz",
                    "records/part-00001-of-00002.tfrecord.gz"]  # no dead letters: no file
    # the same pipeline locally: the S3 copy must hold the same data version and arrays
    local = tmp_path / "local"
    man_local = run_preprocess(settings, materials_path=str(table), out_dir=str(local))
    assert man_local["data_hash"] == man["data_hash"]

    res = _run([sys.executable, "-c", _READER, remote])
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["manifest"]["data_hash"] == man["data_hash"]
    assert sorted(got["index"]) == sorted(r["material_id"] for r in rows)
    want = {f["material_id"].numpy().decode(): float(f["ecd"].numpy().sum(dtype="float64"))
            for f, _ in RD.make_dataset(str(local), target="K_VRH", batch_size=0)}
    assert {k: v[0] for k, v in got["ecd"].items()} == want

    cli = _run([str(BIN / "ecdflow"), "validate", "--records", remote, "--materials", str(table),
                "--out", str(tmp_path / "val")])
    assert cli.returncode == 2, cli.stderr[-2000:]  # 4 rows < default min_rows 10
    assert "expect_table_row_count_to_be_between" in cli.stderr
