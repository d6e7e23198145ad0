"""Apache Beam preprocessing: materials table (+ CHGCARs) -> sharded schema-1 TFRecords.

Per material: labels checked (K_VRH/G_VRH in GPa), Magpie features (batched,
``ecdflow.features.featurize``: non-finite rows refused naming the element), the ECD on the
conventional cube (procrystal from the structure, or a CHGCAR read by the input layer and
resampled), one serialized example. The table is read by the input layer (CSV/TSV/semicolon/
JSONL, compressed or not; docs/inputs.md). A table without any structure (and no
``--chgcar-dir``) is composition-only: its records carry Magpie features and no density
(manifest ``has_density: false``, ``ecd_source: "none"``, grid 0). Failures go to a dead-letter
output with a one-line reason (``quarantine.jsonl`` beside the shards) and the rest goes on.
After the run the shards are read back with Beam's file systems (local or ``s3://``): the
written count must equal read - quarantined, else the run fails. The manifest's
``data_hash`` is the data version.

Runs on any Beam runner; the DirectRunner default uses ``in_memory`` (``multi_threading``
loses records on this Beam version and is refused).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import struct
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecdflow.config import Settings
from ecdflow.errors import InputError
from ecdflow.log import get_logger
from ecdflow.records import (
    SHARD_PREFIX,
    build_manifest,
    encode_example,
    shard_suffix,
)
from ecdflow.schema import is_remote

log = get_logger("ecdflow.preprocess")
DEADLETTER_NAME = "quarantine.jsonl"
_BEAM_COMPRESSION = {"": "uncompressed", "GZIP": "gzip", "ZLIB": "deflate"}
"""TF codec name -> Beam CompressionTypes value (Beam's DEFLATE writes a zlib stream)."""


# ---------------------------------------------------------------- per-material functions


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _dead(item_id: str, where: str, reason: str) -> str:
    """One dead-letter line (the fields of ``ecdflow.data.quarantine.Quarantine`` entries)."""
    kind = reason.split(":", 1)[0].strip()
    return json.dumps({"item_id": str(item_id), "where": where, "reason": reason, "kind": kind},
                      sort_keys=True)


def check_labels(row: dict, targets: Sequence[str]) -> str | None:
    """Why a row's labels are unusable (None when fine): every target NaN/missing, or a given
    modulus that is infinite or <= 0 GPa."""
    vals = {t: row.get(t) for t in targets}
    finite = {}
    for t, v in vals.items():
        try:
            x = float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            return f"{t} is not a number ({v!r})"
        if math.isinf(x):
            return f"{t} is infinite"
        if not math.isnan(x):
            if x <= 0:
                return f"{t} = {x:g} GPa is not positive"
            finite[t] = x
    if not finite:
        return f"no finite label among {', '.join(targets)} (NaN or missing)"
    return None


CHGCAR_NAMES = ("{id}.CHGCAR", "{id}/CHGCAR")
"""Where a material's CHGCAR sits in ``--chgcar-dir``; each may end in .gz, .bz2 or .xz."""


def find_chgcar(chgcar_dir: str, material_id: str) -> str | None:
    """``<dir>/<id>.CHGCAR`` or ``<dir>/<id>/CHGCAR``, plain or .gz/.bz2/.xz (local or any
    Beam file system). The file's content, not its name, is checked when it is read."""
    from apache_beam.io.filesystems import FileSystems

    base = str(chgcar_dir).rstrip("/")
    for name in CHGCAR_NAMES:
        for ext in ("", ".gz", ".bz2", ".xz"):
            cand = f"{base}/{name.format(id=material_id)}{ext}"
            if FileSystems.exists(cand):
                return cand
    return None


def _local_copy(path: str, tmp: str) -> str:
    """``path`` itself when local, else a copy under ``tmp`` (Beam file systems, e.g. s3://)."""
    if not is_remote(path):
        return path
    from apache_beam.io.filesystems import FileSystems

    dest = Path(tmp) / path.rstrip("/").rsplit("/", 2)[-2] / Path(path).name
    dest.parent.mkdir(parents=True, exist_ok=True)
    with FileSystems.open(path) as src, open(dest, "wb") as out:
        out.write(src.read())
    return str(dest)


def material_ecd(
    row: dict, grid: int, smearing_A: float, chgcar_dir: str | None = None
) -> tuple[np.ndarray, dict]:
    """The ECD (grid^3, e/Å^3, conventional cube) of one row and its provenance entries.

    Procrystal from the row's structure, or (``chgcar_dir`` given) the material's CHGCAR read
    by the input layer (any compression; the content must be a volumetric file whose
    composition is the row's formula) and resampled. Raises InputError (missing CHGCAR, bad
    structure/file, formula mismatch).
    """
    from ecdflow.density import conventional_cell

    mid = str(row["material_id"])
    if chgcar_dir:
        from ecdflow.chgcar import read_chgcar, to_model_grid

        path = find_chgcar(chgcar_dir, mid)
        if path is None:
            raise InputError(mid, f"no CHGCAR ({mid}.CHGCAR or {mid}/CHGCAR, optionally "
                                  f".gz/.bz2/.xz) in {chgcar_dir}")
        with tempfile.TemporaryDirectory() as tmp:
            structure, rho = read_chgcar(_local_copy(path, tmp), elements=species_order(row),
                                         where=path)
        want = str(row.get("formula") or "")
        if want and structure.composition.reduced_formula != want:
            raise InputError(path, f"CHGCAR holds {structure.composition.reduced_formula}, "
                                   f"the table says {want} for {mid}")
        ecd = to_model_grid(structure, rho, grid)
        prov = {"ecd_source": "chgcar", "chgcar": path.rsplit("/", 1)[-1]}
    else:
        from ecdflow.data.table import STRUCTURE_KEYS, structure_of
        from ecdflow.density import procrystal_density

        missing = [k for k in STRUCTURE_KEYS if k not in row]
        if missing:
            raise InputError(mid, "no structure (cell/numbers/positions) in a table whose "
                                  "other rows have one; split composition-only rows into "
                                  "their own table")
        structure = structure_of(row)
        ecd = procrystal_density(structure, grid=grid, smearing_A=smearing_A)
        prov = {"ecd_source": "procrystal", "smearing_A": smearing_A}
    prov["cube_edge_A"] = round(float(conventional_cell(structure).lattice.a), 6)
    if not np.all(np.isfinite(ecd)):
        raise InputError(mid, "ECD has NaN/inf values")
    return ecd, prov


def has_structures(rows: Sequence[tuple[int, dict]]) -> bool:
    """Whether any row of the table carries a structure (then every row needs one, or a
    CHGCAR); a table without any is composition-only: records with Magpie features and no
    density."""
    from ecdflow.data.table import STRUCTURE_KEYS

    return any(k in r for _, r in rows for k in STRUCTURE_KEYS)


# ---------------------------------------------------------------- Beam transforms (thin)


def _featurize_batch(rows: list[dict]) -> Iterator[Any]:
    """Magpie features for a batch (``ecdflow.features.featurize``: the same finiteness check
    as serving, naming the element without data); bad rows go to the dead letters."""
    import apache_beam as beam

    from ecdflow.features import featurize

    feats, errors = featurize([r["formula"] for r in rows],
                              where=[str(r["material_id"]) for r in rows])
    for r, m, err in zip(rows, feats, errors, strict=True):
        if err:
            yield beam.pvalue.TaggedOutput(
                "failed", _dead(r["material_id"], "preprocess:magpie",
                                f"magpie: {err.split(': ', 1)[-1]}"))
        else:
            yield r, np.asarray(m, dtype=np.float32)


def _check(row: dict, targets: Sequence[str]) -> Iterator[Any]:
    import apache_beam as beam

    reason = check_labels(row, targets)
    if reason:
        yield beam.pvalue.TaggedOutput("failed", _dead(row["material_id"], "preprocess:labels",
                                                       reason))
    else:
        yield row


def _build(pair: tuple[dict, np.ndarray], grid: int, smearing_A: float, dtype: str,
           chgcar_dir: str | None, density: bool = True) -> Iterator[Any]:
    import apache_beam as beam

    row, magpie = pair
    try:
        if density:
            ecd, prov = material_ecd(row, grid, smearing_A, chgcar_dir)
        else:
            ecd, prov = None, {"ecd_source": "none"}
        row = dict(row, provenance={**(row.get("provenance") or {}), **prov})
        yield encode_example(row, ecd, magpie, dtype)
    except Exception as exc:  # noqa: BLE001 - every bad item is quarantined, the rest goes on
        yield beam.pvalue.TaggedOutput("failed", _dead(row["material_id"], "preprocess:ecd",
                                                       _one_line(exc)))


# ---------------------------------------------------------------- reading back


def iter_tfrecords(path: str, compression: str) -> Iterator[bytes]:
    """Records of one TFRecord shard via Beam's file systems (length framing; no TF needed)."""
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.open(path, compression_type=_BEAM_COMPRESSION[compression]) as fh:
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


def _read_lines(path: str) -> list[str]:
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
    if lines:
        lines = sorted(lines, key=lambda ln: (json.loads(ln)["item_id"], ln))
        _write_text(path, "".join(ln + "\n" for ln in lines))
    return len(lines)


def _write_text(path: str, text: str) -> None:
    from apache_beam.io.filesystems import FileSystems

    with FileSystems.create(path, mime_type="text/plain",
                            compression_type="uncompressed") as fh:
        fh.write(text.encode())


def _clear_outputs(out_dir: str) -> None:
    """Remove earlier shards / dead letters / manifest (a rerun must not mix old shards)."""
    from apache_beam.io.filesystems import FileSystems

    pats = [f"{out_dir}/{SHARD_PREFIX}-*", f"{out_dir}/{DEADLETTER_NAME}*",
            f"{out_dir}/manifest.json"]
    old = [m.path for r in FileSystems.match(pats) for m in r.metadata_list]
    if old:
        FileSystems.delete(old)


# ---------------------------------------------------------------- the pipeline


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


def species_order(row: dict) -> list[str] | None:
    """Element symbols in the order the row's structure lists them (order of first appearance
    in ``numbers``), which is the species order of its POSCAR/VASP 4 CHGCAR; None when the row
    has no structure (read_chgcar then uses a POSCAR beside the file or its comment line).
    The table's ``elements`` field is sorted alphabetically and cannot serve for this."""
    numbers = row.get("numbers")
    if not numbers:
        return None
    from pymatgen.core import Element

    return [Element.from_Z(int(z)).symbol for z in dict.fromkeys(numbers)]


def local_runner(runner: str):
    """The runner object for ``runner``: Beam's ``DirectRunner`` would first try Prism, which
    downloads a binary from GitHub at run time (refused offline); its local fallback, the
    FnApiRunner, is used directly (it honours direct_running_mode/direct_num_workers)."""
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


def _load_rows(materials_path: str, tmp: str) -> tuple[list[tuple[int, dict]], list[dict]]:
    """Numbered raw rows of the materials table and the duplicate-id quarantine entries.

    Only the whole-table check runs here, in the driver; the per-row checks (Fm-3m by spglib,
    formula, labels: ~20 ms a row) run in the pipeline's ``Table`` step, on the workers."""
    from ecdflow.data.table import read_rows, split_duplicates

    local = _local_copy(materials_path, tmp)
    return split_duplicates(read_rows(Path(local), where=materials_path), materials_path)


def _table_check(numbered: tuple[int, dict], where: str) -> Iterator[Any]:
    """The table's per-row checks (``ecdflow.data.table.check_row``) as a pipeline step:
    a good row is normalised, a bad one goes to the dead letters as ``<table>:<row>``."""
    import apache_beam as beam

    from ecdflow.data.table import check_row, clean_row

    i, row = numbered
    problem = check_row(row)
    if problem is None:
        yield clean_row(row, i)
    else:
        yield beam.pvalue.TaggedOutput(
            "failed", _dead(str(row.get("material_id", f"row {i}")), f"{where}:{i}", problem))


def run_preprocess(
    settings: Settings,
    materials_path: str | None = None,
    chgcar_dir: str | None = None,
    out_dir: str | None = None,
    runner: str = "DirectRunner",
    direct_running_mode: str = "in_memory",
    direct_num_workers: int = 1,
    extra_pipeline_args: Sequence[str] = (),
) -> dict:
    """Run the Beam pipeline; write shards, ``quarantine.jsonl`` and ``manifest.json``.

    Args:
        settings: configuration (density.grid, density.smearing_A, records.*, targets, seed).
        materials_path: materials table (default ``paths.materials``); local or s3://.
        chgcar_dir: directory/bucket of ``<id>.CHGCAR`` or ``<id>/CHGCAR`` (None: procrystal).
        out_dir: output directory (default ``paths.records_dir``); local or s3://.
        runner, direct_running_mode, direct_num_workers, extra_pipeline_args: Beam options
            (e.g. ``--runner=FlinkRunner``-style flags for a cluster; docs/data_pipeline.md).

    Returns:
        The manifest: count, shards, schema_version, grid, dtype, compression, data_hash and
        counts {read, written, quarantined, quarantined_table, quarantined_pipeline}.

    Raises:
        InputError: missing table/CHGCAR dir, refused runner mode.
        RuntimeError: written + quarantined != read (records lost by the runner).
    """
    import apache_beam as beam
    from apache_beam.io.filesystems import FileSystems

    t0 = time.perf_counter()
    materials_path = str(materials_path or settings.path(settings.paths.materials))
    out_dir = str(out_dir or settings.path(settings.paths.records_dir)).rstrip("/")
    if not is_remote(materials_path) and not Path(materials_path).is_file():
        raise InputError(materials_path, "no such materials table")
    if chgcar_dir and not is_remote(chgcar_dir) and not Path(chgcar_dir).is_dir():
        raise InputError(str(chgcar_dir), "no such CHGCAR directory")
    grid, rc = settings.density.grid, settings.records
    options = pipeline_options(runner, direct_running_mode, direct_num_workers,
                               extra_pipeline_args)
    FileSystems.set_options(options)  # S3 settings for the driver's own reads/writes
    with tempfile.TemporaryDirectory() as tmp:
        rows, table_bad = _load_rows(materials_path, tmp)
    if not is_remote(out_dir):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    log.info("preprocess: %d rows (%d duplicate ids set aside) -> %s, grid %d, %s, "
             "compression %r, %d shards, runner %s/%s", len(rows), len(table_bad), out_dir,
             grid, rc.dtype, rc.compression, rc.num_shards, runner, direct_running_mode)
    targets = list(settings.targets)
    density = bool(chgcar_dir) or has_structures(rows)
    if not density:
        log.info("preprocess: composition-only table (no structure in any row): records carry "
                 "Magpie features and no density; density models will be skipped")
    dead_path = f"{out_dir}/{DEADLETTER_NAME}"

    with beam.Pipeline(runner=local_runner(runner), options=options) as p:
        table = (p | "Rows" >> beam.Create(rows, reshuffle=True)
                 | "Table" >> beam.FlatMap(_table_check, materials_path)
                 .with_outputs("failed", main="ok"))
        checked = (table.ok
                   | "Labels" >> beam.FlatMap(_check, targets).with_outputs("failed", main="ok"))
        feats = (checked.ok
                 | "Batch" >> beam.BatchElements(min_batch_size=8, max_batch_size=64)
                 | "Magpie" >> beam.FlatMap(_featurize_batch)
                 .with_outputs("failed", main="ok"))
        built = (feats.ok
                 | "ECD" >> beam.FlatMap(_build, grid, settings.density.smearing_A, rc.dtype,
                                         chgcar_dir, density).with_outputs("failed", main="ok"))
        _ = built.ok | "Write" >> beam.io.WriteToTFRecord(
            f"{out_dir}/{SHARD_PREFIX}", file_name_suffix=shard_suffix(rc.compression),
            num_shards=rc.num_shards, compression_type=_BEAM_COMPRESSION[rc.compression])
        table_lines = [json.dumps(d, sort_keys=True) for d in table_bad]
        _ = ((table.failed, checked.failed, feats.failed, built.failed,
              p | "TableQuarantine" >> beam.Create(table_lines))
             | "Failures" >> beam.Flatten()
             | "Gather" >> beam.combiners.ToList()
             | "DeadLetter" >> beam.Map(write_dead_letters, dead_path))

    dead = [json.loads(ln) for ln in _read_lines(dead_path)]
    n_table = sum(not d["where"].startswith("preprocess:") for d in dead)  # table:row entries
    shards = sorted(m.path for m in FileSystems.match(
        [f"{out_dir}/{SHARD_PREFIX}-*"])[0].metadata_list)
    written, digest = records_digest(shards, rc.compression)
    if written + len(dead) != len(rows) + len(table_bad):
        raise RuntimeError(f"record count mismatch: read {len(rows) + len(table_bad)}, "
                           f"written {written}, quarantined {len(dead)} (runner lost records)")
    seconds = time.perf_counter() - t0
    counts = {"read": len(rows) + len(table_bad), "written": written, "quarantined": len(dead),
              "quarantined_table": n_table, "quarantined_pipeline": len(dead) - n_table}
    manifest = build_manifest(out_dir, shards, count=written, grid=grid if density else 0,
                              dtype=rc.dtype, compression=rc.compression, digest=digest, extra={
                                  "counts": counts, "seed": settings.seed,
                                  "has_density": density,
                                  "has_volume": density,  # both need the structures
                                  "ecd_source": ("chgcar" if chgcar_dir else "procrystal")
                                  if density else "none",
                                  "materials": materials_path.rsplit("/", 1)[-1],
                                  "materials_sha256": _file_sha256(materials_path),
                                  "smearing_A": settings.density.smearing_A,
                              })
    _write_text(f"{out_dir}/manifest.json",
                json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("preprocess: read %d, written %d, quarantined %d in %.1f s (%.2f materials/s); "
             "data %s", counts["read"], written, len(dead), seconds,
             len(rows) / max(seconds, 1e-9), digest[:19])
    first = (f"{dead[0]['item_id']}: {dead[0]['reason']}" if dead else "")
    return manifest | {"seconds": round(seconds, 2), "out_dir": out_dir,
                       "first_quarantined": first,
                       "materials_per_s": round(len(rows) / max(seconds, 1e-9), 3)}


def _file_sha256(path: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    h = hashlib.sha256()
    with FileSystems.open(path, compression_type="uncompressed") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def summarize(manifest: dict) -> str:
    """One line for the CLI: counts, data hash, location."""
    c = manifest.get("counts", {})
    grid = (f"grid {manifest['grid']}" if manifest.get("has_density", True)
            else "no density (composition only)")
    return (f"read {c.get('read')}, written {c.get('written')}, quarantined "
            f"{c.get('quarantined')}; {len(manifest['shards'])} shards, {grid}, "
            f"{manifest['dtype']}, compression {manifest['compression'] or 'none'}; "
            f"data {manifest['data_hash']}")
