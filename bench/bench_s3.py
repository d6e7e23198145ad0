"""Benchmark: tf.data reading of TFRecords from a local S3 server vs local files.

Run: ``python -m bench.bench_s3 [--n 512] [--grid 60]``. Writes bench/results/s3.json and
s3.md.

The same ``--n`` synthetic examples (float16, uncompressed, 4 shards, the default record
format) are read with ``ecdflow.records_reader.make_dataset`` (batch 32, no cache, best of 3 full
passes) from a local folder and from ``s3://`` on a moto S3 server on 127.0.0.1 (signed HTTP
requests through tensorflow-io's S3 file system). Each read runs in its own subprocess,
because a process that read s3:// through tensorflow-io must leave with ``os._exit``
(STACK.md). The ratio S3 / local is what the object-store protocol costs on one machine; a
real S3 or MinIO over a network adds its latency and bandwidth limits on top.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import machine, write_results
from ecdflow.config import REPO_ROOT

BUCKET = "ecdflow-bench"


def _reader(records: str, env: dict[str, str]) -> float:
    """Uncached samples/s of ``records`` (``bench.bench_records.read_rate``) in a fresh
    interpreter, which leaves with os._exit after printing the figure."""
    code = ("import json, os, sys\nfrom bench.bench_records import read_rate\n"
            "print(json.dumps(read_rate(sys.argv[1])))\nsys.stdout.flush()\nos._exit(0)\n")
    proc = subprocess.run([sys.executable, "-c", code, records], capture_output=True, text=True,
                          cwd=REPO_ROOT, env=os.environ | env | {"TF_CPP_MIN_LOG_LEVEL": "2"},
                          timeout=600, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"reading {records} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and write its JSON and Markdown results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=512, help="examples (16 batches of 32)")
    p.add_argument("--grid", type=int, default=60)
    a = p.parse_args(argv)
    from ecdflow.records import write_synthetic_records
    from ecdflow.testing import local_s3_server, upload_dir

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(tmp) / "records"
        write_synthetic_records(str(local), a.n, a.grid, 0, dtype="float16", num_shards=4)
        size = sum(p.stat().st_size for p in local.iterdir() if p.name.startswith("part-"))
        with local_s3_server(BUCKET) as env:
            upload_dir(env, local, BUCKET, "records")
            here = _reader(str(local), {})
            remote = _reader(f"s3://{BUCKET}/records", env)
    mb = size / 1e6
    res = {
        "benchmark": "tf.data read, local files vs local S3 (moto), uncached",
        "n": a.n, "grid": a.grid, "records": "float16, uncompressed, 4 shards",
        "MB": round(mb, 1),
        "local": {"samples_per_s": round(here, 1), "MB_per_s": round(mb * here / a.n, 1)},
        "s3": {"samples_per_s": round(remote, 1), "MB_per_s": round(mb * remote / a.n, 1)},
        "s3_over_local": round(remote / here, 2),
        "machine": machine(),
    }
    md = ["# tf.data reading: local files vs a local S3 server", "",
          f"{a.n} synthetic examples at {a.grid}^3 ({res['records']}, {res['MB']} MB), "
          "`make_dataset` (batch 32, no cache, best of 3 passes), one subprocess per source; "
          f"S3 = moto on 127.0.0.1 through tensorflow-io; machine: "
          f"{res['machine']['cpu_count']} cores, {res['machine']['platform']}.", "",
          "| source | samples/s | MB/s |", "|---|---|---|",
          f"| local files | {res['local']['samples_per_s']} | {res['local']['MB_per_s']} |",
          f"| s3:// (local moto server) | {res['s3']['samples_per_s']} | {res['s3']['MB_per_s']} |",
          "", f"S3 / local: **{res['s3_over_local']}x** (the protocol's cost on one machine; "
          "a networked object store adds latency and bandwidth limits).", ""]
    write_results("s3", res, "\n".join(md))
    print("\n".join(md))
    return res


if __name__ == "__main__":
    main()
