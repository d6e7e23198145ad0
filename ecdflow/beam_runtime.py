"""Beam's run-time around the preprocessing graph: runner choice (local FnApiRunner, Dask
``distributed`` cluster or any Beam runner), pipeline options (S3 flags from the env), and
the file-level I/O the graph and its read-back check share (TFRecord framing, shard writes,
dead letters, digests) through Beam's file systems (local paths or ``s3://``).

Split from ``ecdflow.preprocess`` (which builds and runs the graph) so each stays readable;
imports only the config, errors, records and schema layers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator, Sequence

from ecdflow.config import Settings
from ecdflow.errors import InputError
from ecdflow.records import shard_suffix
from ecdflow.schema import is_remote

BEAM_COMPRESSION = {"": "uncompressed", "GZIP": "gzip", "ZLIB": "deflate"}
"""TF codec name -> Beam CompressionTypes value (Beam's DEFLATE writes a zlib stream)."""


def worker_filesystems() -> None:
    """Give Beam's file systems the S3 settings of the env in a worker process that has none
    (a Dask worker: Beam sets them only in the driver and its own SDK workers)."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.options.pipeline_options import PipelineOptions

    if getattr(FileSystems, "_pipeline_options", None) is None:
        FileSystems.set_options(PipelineOptions(flags=s3_args_from_env()))


def iter_tfrecords(path: str, compression: str) -> Iterator[bytes]:
    """Records of one TFRecord shard via Beam's file systems (length framing; no TF needed)."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=BEAM_COMPRESSION[compression]) as fh:
        while header := fh.read(12):
            if len(header) < 12:
                raise InputError(path, "truncated record header")
            (length,) = struct.unpack("<Q", header[:8])
            data = fh.read(length + 4)
            if len(data) < length + 4:
                raise InputError(path, "truncated record")
            yield data[:length]


def _shard_digests(path: str, compression: str) -> list[bytes]:
    return [hashlib.sha256(r).digest() for r in iter_tfrecords(path, compression)]


def records_digest(paths: Sequence[str], compression: str) -> tuple[int, str]:
    """(count, ``sha256:`` of the sorted per-record sha256 digests) over the shards.

    Shards are read in a thread pool (file reads and hashlib release the GIL), so the
    read-back check keeps up with the parallel write instead of serialising the run."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, min(len(paths), os.cpu_count() or 1, 8))) as ex:
        parts = list(ex.map(lambda p: _shard_digests(p, compression), paths))
    digests = sorted(d for part in parts for d in part)
    return len(digests), "sha256:" + hashlib.sha256(b"".join(digests)).hexdigest()


def read_lines(path: str) -> list[str]:
    """Non-empty lines of a text file ([] when it does not exist)."""
    from apache_beam.io.filesystems import FileSystems

    lines: list[str] = []
    for m in FileSystems.match([path])[0].metadata_list:
        with FileSystems.open(m.path, compression_type="uncompressed") as fh:
            lines += [ln for ln in fh.read().decode().splitlines() if ln.strip()]
    return lines


def write_dead_letters(lines: list[str], path: str) -> int:
    """Write the dead letters as JSON lines sorted by item id (no file when there are none:
    Beam's S3 I/O cannot create an empty object). Returns the number written."""
    worker_filesystems()
    if lines:
        lines = sorted(lines, key=lambda ln: (json.loads(ln)["item_id"], ln))
        write_text(path, "".join(ln + "\n" for ln in lines))
    return len(lines)


def write_text(path: str, text: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, mime_type="text/plain",
                            compression_type="uncompressed") as fh:
        fh.write(text.encode())


def pipeline_options(runner: str, direct_running_mode: str, direct_num_workers: int,
                     extra_pipeline_args: Sequence[str] = ()):
    """Beam options from explicit values only (never ``sys.argv``); S3 flags from the env."""
    from apache_beam.options.pipeline_options import PipelineOptions

    if direct_running_mode == "multi_threading":
        raise InputError("--mode", "multi_threading drops records on Beam 2.77; use in_memory "
                                   "or multi_processing")
    if direct_running_mode not in ("in_memory", "multi_processing"):
        raise InputError("--mode", f"unknown DirectRunner mode {direct_running_mode!r}")
    flags = list(s3_args_from_env()) + list(extra_pipeline_args)
    return PipelineOptions(flags=flags, runner=runner, direct_running_mode=direct_running_mode,
                           direct_num_workers=int(direct_num_workers), save_main_session=False)


RUNNER_NAMES = {"direct": "DirectRunner", "dask": "DaskRunner"}
"""Short runner names of the config (``preprocess.runner``) and CLI -> Beam runner names."""


ONE_THREAD_ENV = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                   "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")}
"""Env of every Dask worker process: one compute thread each (one worker process per core)."""


def beam_runner_name(runner: str | None, settings: Settings) -> str:
    """The Beam runner name for ``runner`` (None: ``preprocess.runner`` of the config)."""
    name = runner or settings.preprocess.runner
    return RUNNER_NAMES.get(name.lower(), name)


@contextlib.contextmanager
def dask_scheduler(workers: int, address: str | None = None) -> Iterator[str]:
    """The address of a Dask scheduler for the DaskRunner: ``address`` (a running cluster,
    ``tcp://host:8786``) as is, else a local ``distributed.LocalCluster`` of ``workers``
    processes with one thread each and ``ONE_THREAD_ENV`` set, closed on exit.

    Raises:
        InputError: workers < 1, or dask/distributed not installed.
    """
    if address:
        yield address
        return
    if workers < 1:
        raise InputError("--dask-workers", f"needs at least 1 worker (got {workers})")
    try:
        import dask
        from distributed import LocalCluster
    except ImportError:
        raise InputError("--runner dask", "needs dask and distributed (apache-beam[dask]); "
                                          "pip install -r requirements/lock.txt") from None
    quiet = logging.getLogger("distributed")  # its INFO lines: a screen per run
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": dict(ONE_THREAD_ENV)}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None, env=dict(ONE_THREAD_ENV),
                                   silence_logs=logging.WARNING)
        try:
            yield cluster.scheduler_address
        finally:
            cluster.close()
    finally:
        quiet.setLevel(level)


def local_runner(runner: str):
    """The runner object for ``runner``: Beam's ``DirectRunner`` would first try Prism, which
    downloads a binary from GitHub at run time (refused offline); its local fallback, the
    FnApiRunner, is used directly (it honours direct_running_mode/direct_num_workers).
    ``DaskRunner`` is not in Beam's name table: its class is returned."""
    if runner == "DaskRunner":
        from apache_beam.runners.dask.dask_runner import DaskRunner

        return DaskRunner()
    if runner != "DirectRunner":
        return runner
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    return FnApiRunner()


def s3_args_from_env() -> list[str]:
    """Beam S3 flags from the tensorflow-io style env (S3_ENDPOINT, AWS_* keys and region),
    so one environment configures both Beam writes and tf.data reads."""
    env = os.environ
    args = []
    if env.get("S3_ENDPOINT"):
        ep = env["S3_ENDPOINT"]
        if not is_remote(ep):
            ep = ("http://" if env.get("S3_USE_HTTPS") == "0" else "https://") + ep
        args.append(f"--s3_endpoint_url={ep}")
    for var, flag in (("AWS_ACCESS_KEY_ID", "s3_access_key_id"),
                      ("AWS_SECRET_ACCESS_KEY", "s3_secret_access_key"),
                      ("AWS_REGION", "s3_region_name")):
        if env.get(var):
            args.append(f"--{flag}={env[var]}")
    if env.get("S3_VERIFY_SSL") == "0":
        args.append("--s3_verify=False")
    return args


def shard_of(record: bytes, num_shards: int) -> tuple[int, bytes]:
    """``(shard, record)``: a stable shard of the record's bytes (sha256)."""
    return int.from_bytes(hashlib.sha256(record).digest()[:8], "big") % num_shards, record


def write_shard(keyed: tuple[int, list[bytes]], prefix: str, num_shards: int,
                 compression: str) -> Iterator[str]:
    """Write one whole shard ``<prefix>-SSSSS-of-NNNNN<suffix>`` (Beam's shard names) with its
    records sorted by sha256, so a recomputed task rewrites the same bytes; yields its path.

    The Dask path's write: Beam's ``WriteToTFRecord`` needs its side inputs computed once
    (its temp dir name is random), and Beam 2.77's DaskRunner recomputes them per consumer."""
    from apache_beam.io.filesystems import FileSystems
    from apache_beam.io.tfrecordio import _TFRecordUtil

    worker_filesystems()
    shard, records = keyed
    path = f"{prefix}-{shard:05d}-of-{num_shards:05d}{shard_suffix(compression)}"
    with FileSystems.create(path, mime_type="application/octet-stream",
                            compression_type=BEAM_COMPRESSION[compression]) as fh:
        for rec in sorted(records, key=lambda b: hashlib.sha256(b).digest()):
            _TFRecordUtil.write_record(fh, rec)
    yield path


def file_sha256(path: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    h = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()

