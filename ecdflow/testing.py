"""Helpers for tests and benchmarks: a real, local S3 server (moto) on 127.0.0.1.

Used by tests/e2e/test_s3_records.py and bench/bench_s3.py, so records are written to and read
from an actual S3 endpoint (HTTP, signed requests) without any network access.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def local_s3_server(bucket: str, timeout_s: float = 60.0) -> Iterator[dict[str, str]]:
    """Run ``moto_server`` on a free port with ``bucket`` created; yields the environment
    (``S3_ENDPOINT``, ``AWS_*``, the tensorflow-io ``S3_*`` flags) that ecdflow's Beam writes
    and tf.data reads use. The server is stopped on exit.

    Raises:
        RuntimeError: the server did not accept connections within ``timeout_s``.
    """
    port = free_port()
    moto = Path(sys.executable).parent / "moto_server"
    proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = {"S3_ENDPOINT": f"http://127.0.0.1:{port}", "S3_USE_HTTPS": "0", "S3_VERIFY_SSL": "0",
           "AWS_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing"}
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.3)
        s3_client(env).create_bucket(Bucket=bucket)
        yield env
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def s3_client(env: dict[str, str]):
    """A boto3 S3 client for the endpoint and keys in ``env``."""
    import boto3

    return boto3.client("s3", endpoint_url=env["S3_ENDPOINT"], region_name=env["AWS_REGION"],
                        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"])


def upload_dir(env: dict[str, str], local_dir: str | Path, bucket: str, prefix: str) -> int:
    """Upload the files of ``local_dir`` to ``s3://bucket/prefix/``; returns bytes sent."""
    client, sent = s3_client(env), 0
    for p in sorted(Path(local_dir).iterdir()):
        if p.is_file():
            client.upload_file(str(p), bucket, f"{prefix}/{p.name}")
            sent += p.stat().st_size
    return sent
