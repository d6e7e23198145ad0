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
loses records on this Beam version and is refused). ``runner="dask"`` runs it on a Dask
``distributed`` cluster (a local one of N one-thread worker processes, or a remote scheduler;
docs/scaling.md). The graph uses only single-output steps, key-grouped batches and a fixed
shard count on Dask, because Beam 2.77's DaskRunner does not route tagged outputs, drops what a
DoFn emits in ``finish_bundle`` (``BatchElements``, the per-bundle write) and computes only the
graph's last leaf: each of these was seen to lose or misroute records here.

Runner choice, options and the file-level I/O live in ``ecdflow.beam_runtime``. This module
stays near 500 lines on purpose: the per-material steps, the graph and ``run_preprocess``'s
checks read top to bottom as one data flow.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ecdflow.beam_runtime import (
    BEAM_COMPRESSION,
    beam_runner_name,
    dask_scheduler,
    file_sha256,
    local_runner,
    pipeline_options,
    read_lines,
    records_digest,
    shard_of,
    worker_filesystems,
    write_dead_letters,
    write_shard,
    write_text,
)
from ecdflow.config import Settings
from ecdflow.errors import InputError
from ecdflow.log import get_logger
from ecdflow.records import (
    SHARD_PREFIX,
    build_manifest,
    density_source,
    encode_example,
    shard_suffix,
)
from ecdflow.schema import is_remote

log = get_logger("ecdflow.preprocess")
DEADLETTER_NAME = "quarantine.jsonl"


# ---------------------------------------------------------------- per-material functions


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def _dead(item_id: str, where: str, reason: str) -> str:
    """One dead-letter line (the fields of ``ecdflow.data.quarantine.Quarantine`` entries)."""
    kind = reason.split(":", 1)[0].strip()
    return json.dumps({"item_id": str(item_id), "where": where, "reason": reason, "kind": kind},
                      sort_keys=True)


OK, FAILED = "ok", "failed"
"""Tags of a step's ``(tag, value)`` outputs: a value for the next step, or a dead-letter line.
Plain tuples split by two ``FlatMap`` s (``_pick``) rather than Beam's tagged outputs, which
Beam 2.77's DaskRunner does not route (every consumer gets every output)."""


def _failed(item_id: str, where: str, reason: str) -> tuple[str, str]:
    return FAILED, _dead(item_id, where, reason)


def _pick(tagged: tuple[str, Any], tag: str) -> Iterator[Any]:
    if tagged[0] == tag:
        yield tagged[1]


def _routed(pcoll, label: str, fn, *args):
    """``(ok, failed)`` PCollections of ``fn`` (which yields ``(OK, x)`` / ``(FAILED, line)``)."""
    import apache_beam as beam

    out = pcoll | label >> beam.FlatMap(fn, *args)
    return (out | f"{label}Ok" >> beam.FlatMap(_pick, OK),
            out | f"{label}Failed" >> beam.FlatMap(_pick, FAILED))


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
    from ecdflow.cube import conventional_cell

    mid = str(row["material_id"])
    if chgcar_dir:
        from ecdflow.chgcar import read_chgcar, to_model_grid

        worker_filesystems()
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


PROGRESS_EVERY = 1000
"""Rows between two progress lines of the Magpie step (Beam gives no total to a bar)."""
_FEATURIZED = [0]


def _bucket(row: dict, n_buckets: int) -> tuple[int, dict]:
    """``(bucket, row)``: a stable bucket of the material id (sha256), for Magpie batches."""
    digest = hashlib.sha256(str(row["material_id"]).encode()).digest()
    return int.from_bytes(digest[:8], "big") % max(1, n_buckets), row


def _featurize_batch(keyed: tuple[int, list[dict]]) -> Iterator[Any]:
    """Magpie features for one bucket of rows (``ecdflow.features.featurize``: the same
    finiteness check as serving, naming the element without data); bad rows go to the dead
    letters."""
    from ecdflow.features import featurize

    rows = sorted(keyed[1], key=lambda r: str(r["material_id"]))
    feats, errors = featurize([r["formula"] for r in rows],
                              where=[str(r["material_id"]) for r in rows])
    _FEATURIZED[0] += len(rows)  # progress for big tables: a counted line per 1,000 rows
    if _FEATURIZED[0] // PROGRESS_EVERY > (_FEATURIZED[0] - len(rows)) // PROGRESS_EVERY:
        log.info("preprocess: Magpie features of %d rows so far (this worker)", _FEATURIZED[0])
    for r, m, err in zip(rows, feats, errors, strict=True):
        if err:
            yield _failed(r["material_id"], "preprocess:magpie",
                          f"magpie: {err.split(': ', 1)[-1]}")
        else:
            yield OK, (r, np.asarray(m, dtype=np.float32))


def _check(row: dict, targets: Sequence[str]) -> Iterator[Any]:
    reason = check_labels(row, targets)
    if reason:
        yield _failed(row["material_id"], "preprocess:labels", reason)
    else:
        yield OK, row


def _build(pair: tuple[dict, np.ndarray], grid: int, smearing_A: float, dtype: str,
           chgcar_dir: str | None, density: bool = True) -> Iterator[Any]:
    row, magpie = pair
    try:
        if density:
            ecd, prov = material_ecd(row, grid, smearing_A, chgcar_dir)
        else:
            ecd, prov = None, {"ecd_source": "none"}
        row = dict(row, provenance={**(row.get("provenance") or {}), **prov})
        yield OK, encode_example(row, ecd, magpie, dtype)
    except Exception as exc:  # noqa: BLE001 - every bad item is quarantined, the rest goes on
        yield _failed(row["material_id"], "preprocess:ecd", _one_line(exc))


# ---------------------------------------------------------------- reading back


def _clear_outputs(out_dir: str) -> None:
    """Remove earlier shards / dead letters / manifest (a rerun must not mix old shards)."""
    from apache_beam.io.filesystems import FileSystems

    pats = [f"{out_dir}/{SHARD_PREFIX}-*", f"{out_dir}/{DEADLETTER_NAME}*",
            f"{out_dir}/manifest.json"]
    old = [m.path for r in FileSystems.match(pats) for m in r.metadata_list]
    if old:
        FileSystems.delete(old)


# ---------------------------------------------------------------- the pipeline


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
    from ecdflow.data.table import check_row, clean_row

    i, row = numbered
    problem = check_row(row)
    if problem is None:
        yield OK, clean_row(row, i)
    else:
        yield _failed(str(row.get("material_id", f"row {i}")), f"{where}:{i}", problem)


def run_preprocess(
    settings: Settings,
    materials_path: str | None = None,
    chgcar_dir: str | None = None,
    out_dir: str | None = None,
    runner: str | None = None,
    direct_running_mode: str = "in_memory",
    direct_num_workers: int = 1,
    extra_pipeline_args: Sequence[str] = (),
    dask_workers: int | None = None,
    dask_address: str | None = None,
) -> dict:
    """Run the Beam pipeline; write shards, ``quarantine.jsonl`` and ``manifest.json``.

    Args:
        settings: configuration (density.grid, density.smearing_A, records.*, targets, seed,
            preprocess.*).
        materials_path: materials table (default ``paths.materials``); local or s3://.
        chgcar_dir: directory/bucket of ``<id>.CHGCAR`` or ``<id>/CHGCAR`` (None: procrystal).
        out_dir: output directory (default ``paths.records_dir``); local or s3://.
        runner: ``direct``, ``dask`` or a Beam runner name (None: ``preprocess.runner``).
        direct_running_mode, direct_num_workers, extra_pipeline_args: Beam options
            (e.g. ``--runner=FlinkRunner``-style flags for a cluster; docs/data_pipeline.md).
        dask_workers, dask_address: Dask runner only (None: ``preprocess.dask_workers`` /
            ``preprocess.dask_address``); an address uses that cluster, else a local one of
            ``dask_workers`` one-thread processes is started and closed. On Dask the shard
            count is fixed (``records.num_shards``, or 2 per worker when 0): the per-bundle
            write relies on ``finish_bundle``, which Beam 2.77's DaskRunner drops.

    Returns:
        The manifest: count, shards, schema_version, grid, dtype, compression, data_hash and
        counts {read, written, quarantined, quarantined_table, quarantined_pipeline}.

    Raises:
        InputError: missing table/CHGCAR dir, refused runner mode.
        RuntimeError: written + quarantined != read (records lost by the runner).
    """
    from apache_beam.io.filesystems import FileSystems

    t0 = time.perf_counter()
    materials_path = str(materials_path or settings.path(settings.paths.materials))
    out_dir = str(out_dir or settings.path(settings.paths.records_dir)).rstrip("/")
    if not is_remote(materials_path) and not Path(materials_path).is_file():
        raise InputError(materials_path, "no such materials table")
    if chgcar_dir and not is_remote(chgcar_dir) and not Path(chgcar_dir).is_dir():
        raise InputError(str(chgcar_dir), "no such CHGCAR directory")
    runner = beam_runner_name(runner, settings)
    on_dask = runner == "DaskRunner"
    workers = int(dask_workers or settings.preprocess.dask_workers)
    address = dask_address or settings.preprocess.dask_address or None
    grid, rc = settings.density.grid, settings.records
    num_shards = rc.num_shards or (2 * workers if on_dask else 0)
    options = pipeline_options(runner, direct_running_mode, direct_num_workers,
                               extra_pipeline_args)
    FileSystems.set_options(options)  # S3 settings for the driver's own reads/writes
    with tempfile.TemporaryDirectory() as tmp:
        rows, table_bad = _load_rows(materials_path, tmp)
    if not is_remote(out_dir):
        Path(out_dir).mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    mode = (f"{address or f'local cluster of {workers} workers'}" if on_dask
            else direct_running_mode)
    log.info("preprocess: %d rows (%d duplicate ids set aside) -> %s, grid %d, %s, "
             "compression %r, %d shards, runner %s/%s", len(rows), len(table_bad), out_dir,
             grid, rc.dtype, rc.compression, num_shards, runner, mode)
    density = bool(chgcar_dir) or has_structures(rows)
    if not density:
        log.info("preprocess: composition-only table (no structure in any row): records carry "
                 "Magpie features and no density; density models will be skipped")
    dead_path = f"{out_dir}/{DEADLETTER_NAME}"
    args = dict(density=density, materials_path=materials_path, rows=rows, table_bad=table_bad,
                settings=settings, chgcar_dir=chgcar_dir, out_dir=out_dir,
                num_shards=num_shards, dead_path=dead_path)
    if on_dask:
        with dask_scheduler(workers, address) as addr:
            dask_flags = [f"--dask_client_address={addr}"]
            if not any(a.startswith(("--dask_npartitions", "--dask_partition_size"))
                       for a in extra_pipeline_args):
                dask_flags.append(f"--dask_npartitions={max(1, min(len(rows), 4 * workers))}")
            options = pipeline_options(runner, direct_running_mode, direct_num_workers,
                                       [*extra_pipeline_args, *dask_flags])
            _run_graph(runner, options, **args)
    else:
        _run_graph(runner, options, **args)

    dead = [json.loads(ln) for ln in read_lines(dead_path)]
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
                                  "materials_sha256": file_sha256(materials_path),
                                  "smearing_A": settings.density.smearing_A,
                                  "density_source": density_source(
                                      ("chgcar" if chgcar_dir else "procrystal")
                                      if density else "none", grid if density else 0,
                                      settings.density.smearing_A),
                              })
    write_text(f"{out_dir}/manifest.json",
                json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("preprocess: read %d, written %d, quarantined %d in %.1f s (%.2f materials/s); "
             "data %s", counts["read"], written, len(dead), seconds,
             len(rows) / max(seconds, 1e-9), digest[:19])
    first = (f"{dead[0]['item_id']}: {dead[0]['reason']}" if dead else "")
    return manifest | {"seconds": round(seconds, 2), "out_dir": out_dir,
                       "first_quarantined": first,
                       "materials_per_s": round(len(rows) / max(seconds, 1e-9), 3)}


def _one(_: Any) -> int:
    return 1


def _keyed_once(line: str) -> tuple[int, str]:
    return 0, line


def _write_dead_group(group: tuple[int, Iterable[str]], path: str) -> int:
    """``write_dead_letters`` of the one gathered group. A ``GroupByKey`` gathers them, not
    ``combiners.ToList``: its empty-input default is a side input, which Beam 2.77's
    DaskRunner computes apart from the main graph (every upstream step ran twice)."""
    return write_dead_letters(list(group[1]), path)


MAGPIE_BATCH = 32
"""Mean rows per Magpie batch (rows are bucketed by a hash of their id, then grouped)."""


def _run_graph(runner: str, options, *, materials_path: str, rows: list, table_bad: list,
               settings: Settings, chgcar_dir: str | None, out_dir: str, num_shards: int,
               dead_path: str, density: bool = True) -> None:
    """Build and run the graph to completion. Every step has one output and the graph one
    leaf (``Done``, fed by the write and the dead letters), so any runner computes all of it
    (the DaskRunner computes only the last leaf). On Dask the write is ``write_shard``."""
    import apache_beam as beam

    rc = settings.records
    n_buckets = max(1, math.ceil(len(rows) / MAGPIE_BATCH))
    p = beam.Pipeline(runner=local_runner(runner), options=options)
    numbered = p | "Rows" >> beam.Create(rows, reshuffle=True)
    table_ok, table_failed = _routed(numbered, "Table", _table_check, materials_path)
    labels_ok, labels_failed = _routed(table_ok, "Labels", _check, list(settings.targets))
    batches = (labels_ok
               | "Bucket" >> beam.Map(_bucket, n_buckets)
               | "Batch" >> beam.GroupByKey())
    feats_ok, feats_failed = _routed(batches, "Magpie", _featurize_batch)
    built_ok, built_failed = _routed(feats_ok, "ECD", _build, settings.density.grid,
                                     settings.density.smearing_A, rc.dtype, chgcar_dir,
                                     density)
    if runner == "DaskRunner":
        files = (built_ok
                 | "Shard" >> beam.Map(shard_of, num_shards)
                 | "GroupShards" >> beam.GroupByKey()
                 | "Write" >> beam.FlatMap(write_shard, f"{out_dir}/{SHARD_PREFIX}",
                                           num_shards, rc.compression))
    else:  # streams per bundle when num_shards == 0 (flat memory on the local runner)
        files = built_ok | "Write" >> beam.io.WriteToTFRecord(
            f"{out_dir}/{SHARD_PREFIX}", file_name_suffix=shard_suffix(rc.compression),
            num_shards=num_shards, compression_type=BEAM_COMPRESSION[rc.compression])
    table_lines = [json.dumps(d, sort_keys=True) for d in table_bad]
    n_dead = ((table_failed, labels_failed, feats_failed, built_failed,
               p | "TableQuarantine" >> beam.Create(table_lines))
              | "Failures" >> beam.Flatten()
              | "Key" >> beam.Map(_keyed_once)
              | "Gather" >> beam.GroupByKey()
              | "DeadLetter" >> beam.Map(_write_dead_group, dead_path))
    _ = ((files, n_dead) | "Ends" >> beam.Flatten() | "Done" >> beam.Map(_one))
    result = p.run()
    try:
        result.wait_until_finish()
    finally:
        client = getattr(result, "client", None)  # DaskRunnerResult holds its Client
        if client is not None:
            client.close()


def summarize(manifest: dict) -> str:
    """One line for the CLI: counts, data hash, location."""
    c = manifest.get("counts", {})
    grid = (f"grid {manifest['grid']}" if manifest.get("has_density", True)
            else "no density (composition only)")
    return (f"read {c.get('read')}, written {c.get('written')}, quarantined "
            f"{c.get('quarantined')}; {len(manifest['shards'])} shards, {grid}, "
            f"{manifest['dtype']}, compression {manifest['compression'] or 'none'}; "
            f"data {manifest['data_hash']}")
