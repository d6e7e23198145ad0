"""Benchmark: Beam preprocessing end to end - 1 vs 2 workers, throughput, peak memory vs size.

Run: ``python -m bench.bench_beam [--grid 60] [--repeat 5]``. Writes bench/results/beam.json
and beam.md. ``--dask-only`` runs (and replaces) only the Dask section below.

Every measurement is one fresh subprocess running ``ecdflow.preprocess.run_preprocess`` on a
table in a temp dir (shards, manifest and Magpie cache there too; the Magpie cache is filled
before the first run so no run pays for featurisation):

- speed-up: DirectRunner ``in_memory`` with 1 worker (the baseline) vs ``multi_processing``
  with 2 workers on the table repeated ``--repeat`` times (enough work to amortise the
  workers' start-up), every process pinned to one BLAS/OpenMP thread (one worker per core);
- throughput: materials/s and MB/s of shards written, start-up and read-back check included;
- peak memory: max RSS of the process running the pipeline (``in_memory``, one process) on
  the quick profile's table (1x, paths.materials) and on that table repeated ``--repeat``
  times with suffixed material_ids (5x); the RSS after the imports, before the pipeline, is
  reported too, so the growth that belongs to the pipeline itself can be read apart from the
  libraries' footprint;
- on Dask (Beam's DaskRunner): the quick profile's table at ``--dask-grid`` (32^3) on a local
  ``distributed`` cluster of 1 and of 2 one-thread worker processes (cluster start-up
  included), the ratio of the two, and the data_hash of both against the local runner's.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import machine, write_results
from ecdflow.config import REPO_ROOT

ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
              "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")
"""Env vars that pin a process (and the Beam workers it starts) to one compute thread."""


def _rss_mb(who: int) -> float:
    """Max RSS (MB) of this process or of its waited-for children (Linux reports kB).

    For this process, VmHWM of /proc/self/status: getrusage's ru_maxrss survives fork+exec,
    so a worker started by a big parent (``python -m bench`` after the training benchmark)
    would report the parent's peak instead of its own."""
    status = Path("/proc/self/status")
    if who == resource.RUSAGE_SELF and status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(who).ru_maxrss / 1024


def _preimport() -> None:
    """Load what the pipeline loads lazily (TF, Beam's runner, pymatgen, matminer), so the
    RSS taken after this is the libraries' footprint and the rest belongs to the pipeline."""
    import apache_beam  # noqa: F401
    import tensorflow  # noqa: F401
    from apache_beam.runners.portability import fn_api_runner  # noqa: F401

    import ecdflow.data.table  # noqa: F401
    import ecdflow.density  # noqa: F401
    from ecdflow.features import _featurizer

    _featurizer()


def worker(table: str, grid: int, mode: str, workers: int, out: str, work: str) -> dict:
    """One measurement (runs in its own process): run_preprocess, its manifest and RSS.
    ``mode`` is a DirectRunner mode, or ``dask`` (a local cluster of ``workers``)."""
    from ecdflow.config import load_settings
    from ecdflow.preprocess import run_preprocess

    s = load_settings(overrides={"paths": {"work_dir": work}, "density": {"grid": grid}})
    if mode == "in_memory":  # its pipeline runs here, so it needs these anyway
        _preimport()
    rss_imports = _rss_mb(resource.RUSAGE_SELF)
    if mode == "dask":
        man = run_preprocess(s, materials_path=table, out_dir=out, runner="dask",
                             dask_workers=workers)
    else:
        man = run_preprocess(s, materials_path=table, out_dir=out, runner="direct",
                             direct_running_mode=mode, direct_num_workers=workers)
    size = sum(os.path.getsize(p) for p in Path(out).glob("*") if p.is_file())
    return {"mode": mode, "workers": workers, "rows": man["counts"]["read"],
            "written": man["counts"]["written"], "quarantined": man["counts"]["quarantined"],
            "seconds": man["seconds"], "materials_per_s": man["materials_per_s"],
            "MB_written": round(size / 1e6, 2),
            "MB_per_s": round(size / 1e6 / max(man["seconds"], 1e-9), 2),
            "data_hash": man["data_hash"],
            "rss_after_imports_MB": round(rss_imports, 1),
            "peak_rss_MB": round(_rss_mb(resource.RUSAGE_SELF), 1),
            "peak_rss_children_MB": round(_rss_mb(resource.RUSAGE_CHILDREN), 1)}


def _poll_tree_rss(proc: subprocess.Popen, every_s: float = 0.25) -> dict:
    """Wait for ``proc``, sampling the RSS of it and all its descendants (Beam's SDK workers
    included); returns the peak of the largest single process and of the tree's sum (MB)."""
    import psutil

    top, total = 0.0, 0.0
    root = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            rss = [p.memory_info().rss for p in [root, *root.children(recursive=True)]]
        except psutil.Error:
            rss = []
        if rss:
            top, total = max(top, max(rss) / 1e6), max(total, sum(rss) / 1e6)
        time.sleep(every_s)
    return {"sampled_max_process_rss_MB": round(top, 1), "sampled_tree_rss_MB": round(total, 1)}


def _measure(table: Path, grid: int, mode: str, workers: int, tmp: Path, tag: str) -> dict:
    """Run ``worker`` in a fresh interpreter and return its JSON line."""
    out = tmp / f"out-{tag}"
    cmd = [sys.executable, "-m", "bench.bench_beam", "--worker", str(table), "--grid", str(grid),
           "--mode", mode, "--workers", str(workers), "--out", str(out),
           "--work", str(tmp / "work")]
    env = dict(os.environ, **dict.fromkeys(ONE_THREAD, "1"))
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out_f, tempfile.TemporaryFile("w+") as err_f:
        proc = subprocess.Popen(cmd, stdout=out_f, stderr=err_f, text=True, cwd=REPO_ROOT,
                                env=env)
        tree_peak = _poll_tree_rss(proc)
        wall = round(time.perf_counter() - t0, 2)
        out_f.seek(0)
        err_f.seek(0)
        stdout, stderr = out_f.read(), err_f.read()
    if proc.returncode != 0:
        raise RuntimeError(f"{tag} failed:\n{stderr[-3000:]}")
    res = json.loads(stdout.strip().splitlines()[-1]) | {"wall_s": wall, **tree_peak}
    shutil.rmtree(out, ignore_errors=True)
    print(f"bench beam {tag}: {wall} s wall, {res['seconds']} s pipeline, "
          f"{res['materials_per_s']} materials/s, "
          f"peak RSS {res['peak_rss_MB']} MB", flush=True)
    return res | {"tag": tag}


def _repeated_table(lines: list[str], k: int, path: Path) -> Path:
    """The table repeated ``k`` times; copy j > 0 gets ids ``<id>-x<j>``."""
    with path.open("w") as fh:
        for j in range(k):
            for ln in lines:
                row = json.loads(ln)
                if j:
                    row["material_id"] = f"{row['material_id']}-x{j}"
                fh.write(json.dumps(row) + "\n")
    return path


def _warm_magpie(lines: list[str]) -> None:
    """Fill the in-memory Magpie cache of this (the driver's) process."""
    from ecdflow.features import magpie_features

    magpie_features(sorted({json.loads(ln)["formula"] for ln in lines}))


def _markdown(r: dict) -> str:
    small, big, multi = r["in_memory_1_1x"], r["in_memory_1_5x"], r["multi_processing_2_5x"]
    md = [
        "# Beam preprocessing end to end",
        "",
        f"The quick profile's table ({small['rows']} materials) and that table x{r['repeat']} "
        f"(suffixed ids), procrystal ECD at {r['grid']}^3, {r['records']}, DirectRunner "
        "(FnApiRunner), one fresh subprocess per run, one BLAS/OpenMP thread per process "
        f"(the Beam worker model: one process per core); machine: "
        f"{r['machine']['cpu_count']} CPU cores, {r['machine']['platform']}, load average "
        f"{r['machine']['loadavg_at_start']} at start.",
        "",
        "| run | materials | wall s | pipeline s | materials/s | MB/s written | peak RSS MB | "
        "RSS after imports MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for x in (small, big, multi, r["scale_run"]):
        if x is None:
            continue
        rss = (x["peak_rss_MB"] if x["mode"] == "in_memory"
               else x["sampled_max_process_rss_MB"])
        md.append(f"| {x['tag']} | {x['rows']} | {x['wall_s']} | {x['seconds']} | "
                  f"{x['materials_per_s']} | "
                  f"{x['MB_per_s']} | {rss} | {x['rss_after_imports_MB']} |")
    md += [
        "",
        f"- 2 workers (`multi_processing`) vs 1 worker (`in_memory`) on the x{r['repeat']} "
        f"table, whole-command wall time (each command imports what it runs: TF, pymatgen and "
        f"matminer in the driver for `in_memory`, in each worker for `multi_processing`): "
        f"**{r['speedup_2_workers']}x** (target >= 1.6x); same data_hash: "
        f"{r['same_data_hash']}. For `multi_processing` the peak RSS is the largest single "
        "process (driver or a worker, sampled every 0.25 s).",
        f"- Best end-to-end rate: **{r['best_materials_per_s']} materials/s** (target >= 10).",
        f"- Peak RSS at {r['repeat']}x the table vs 1x (in_memory, one process, "
        f"{r['MB_per_example']} MB per written example): "
        f"**{r['peak_rss_ratio_5x_vs_1x']}x** (target within 1.2x); growth over the "
        f"after-import footprint (TF, Beam, pymatgen, matminer loaded): "
        f"{r['pipeline_growth_MB']['1x']} MB at 1x, "
        f"{r['pipeline_growth_MB'][str(r['repeat']) + 'x']} MB at {r['repeat']}x "
        f"(**{r['pipeline_growth_ratio_5x_vs_1x']}x**).",
    ]
    sc = r["scale_run"]
    if sc:
        md.append(f"- Scale run: {sc['rows']} materials with 2 workers in {sc['wall_s']} s wall "
                  f"({sc['materials_per_s']} materials/s, {sc['MB_written']} MB written, "
                  f"largest process RSS {sc['sampled_max_process_rss_MB']} MB and all "
                  f"processes {sc['sampled_tree_rss_MB']} MB (sampled every 0.25 s) vs "
                  f"{multi['sampled_max_process_rss_MB']} / {multi['sampled_tree_rss_MB']} MB "
                  f"at {multi['rows']}).")
    md.append("")
    if r.get("note"):
        md += [r["note"], ""]
    if r.get("dask"):
        md += _dask_markdown(r["dask"])
    return "\n".join(md)


def _dask_markdown(d: dict) -> list[str]:
    m = d["machine"]
    md = ["## On Dask (Beam's DaskRunner, a local `distributed` cluster)", "",
          f"The quick profile's table ({d['direct']['rows']} materials), procrystal ECD at "
          f"{d['grid']}^3, one fresh subprocess per run, each Dask worker a process with one "
          f"thread and OMP/BLAS/TF threads pinned to 1; shards fixed at 2 per worker (the Dask "
          f"path's write). Wall time includes starting and closing the cluster. Machine: "
          f"{m['cpu_count']} CPU cores shared with other work, {m['platform']}, load average "
          f"{m['loadavg_at_start']} at start, {m['loadavg_at_end']} at end.", "",
          "| run | materials | wall s | pipeline s | materials/s | tree RSS MB | data_hash |",
          "|---|---|---|---|---|---|---|"]
    for x in (d["direct"], d["dask_1"], d["dask_2"]):
        md.append(f"| {x['tag']} | {x['rows']} | {x['wall_s']} | {x['seconds']} | "
                  f"{x['materials_per_s']} | {x['sampled_tree_rss_MB']} | "
                  f"`{x['data_hash'][:19]}` |")
    md += ["", f"- Dask 2 workers vs 1 worker, whole-command wall time: "
               f"**{d['speedup_2_vs_1']}x**; vs the local runner (`in_memory`, one process): "
               f"{d['dask_2_vs_direct']}x. Same data_hash on all three: "
               f"**{d['same_data_hash']}**.", ""]
    if d.get("note"):
        md += [d["note"], ""]
    return md


@contextmanager
def _bench_workspace(prefix: str) -> Iterator[tuple]:
    """The configured materials table's lines, a scratch folder (removed on exit) with Magpie
    warmed and the table written once as ``materials.jsonl``, and the load average at start:
    yields ``(settings, table, lines, tmp, t1, load0)``."""
    from ecdflow.config import load_settings

    settings = load_settings()
    table = settings.path(settings.paths.materials)
    lines = [ln for ln in table.read_text().splitlines() if ln.strip()]
    load0 = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        _warm_magpie(lines)
        t1 = tmp / "materials.jsonl"
        t1.write_text("".join(ln + "\n" for ln in lines))
        yield settings, table, lines, tmp, t1, load0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dask_scaling(grid: int) -> dict:
    """The Dask section: local runner, Dask with 1 and with 2 workers on the quick table."""
    with _bench_workspace("bench-beam-dask-") as (_, _, _, tmp, t1, load0):
        direct = _measure(t1, grid, "in_memory", 1, tmp, "direct_in_memory")
        d1 = _measure(t1, grid, "dask", 1, tmp, "dask_1_worker")
        d2 = _measure(t1, grid, "dask", 2, tmp, "dask_2_workers")
    d = {"grid": grid, "direct": direct, "dask_1": d1, "dask_2": d2,
         "speedup_2_vs_1": round(d1["wall_s"] / d2["wall_s"], 2),
         "dask_2_vs_direct": round(direct["wall_s"] / d2["wall_s"], 2),
         "same_data_hash": len({x["data_hash"] for x in (direct, d1, d2)}) == 1,
         "machine": machine(loadavg_at_start=[round(x, 2) for x in load0],
                            loadavg_at_end=[round(x, 2) for x in os.getloadavg()])}
    load = d["machine"]["loadavg_at_start"][0]
    if load > 1.0:
        d["note"] = (f"The machine has {d['machine']['cpu_count']} cores and was already "
                     f"loaded (load {load}) by other work, so the second worker did not have a "
                     "free core of its own: this ratio shows contention on this machine, not "
                     "how Dask scales with free cores. Dask's own cost shows in the 1-worker "
                     "run vs the local runner (cluster start, worker imports, two shuffles).")
    return d


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark (or, with ``--worker``, one measurement) and write the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--grid", type=int, default=60, help="ECD grid of every run")
    p.add_argument("--repeat", type=int, default=5, help="dataset multiple (memory, scaling)")
    p.add_argument("--scale", type=int, default=10000,
                   help="also run this many materials (table repeated) with 2 workers (0: skip)")
    p.add_argument("--dask-grid", type=int, default=32, help="ECD grid of the Dask runs")
    p.add_argument("--dask-only", action="store_true",
                   help="run only the Dask section and rewrite beam.md with it")
    p.add_argument("--worker", metavar="TABLE", help=argparse.SUPPRESS)
    p.add_argument("--mode", default="in_memory", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.worker:
        res = worker(a.worker, a.grid, a.mode, a.workers, a.out, a.work)
        print(json.dumps(res), flush=True)
        return res
    if a.dask_only:
        from bench import RESULTS

        res = json.loads((RESULTS / "beam.json").read_text())
        res["dask"] = dask_scaling(a.dask_grid)
        write_results("beam", res, _markdown(res))
        print("\n".join(_dask_markdown(res["dask"])))
        return res

    with _bench_workspace("bench-beam-") as (settings, table, lines, tmp, t1, load0):
        t5 = _repeated_table(lines, a.repeat, tmp / f"materials-x{a.repeat}.jsonl")
        small = _measure(t1, a.grid, "in_memory", 1, tmp, "in_memory_1_1x")
        big = _measure(t5, a.grid, "in_memory", 1, tmp, f"in_memory_1_{a.repeat}x")
        multi = _measure(t5, a.grid, "multi_processing", 2, tmp,
                         f"multi_processing_2_{a.repeat}x")
        scale = None
        if a.scale:
            k = -(-a.scale // len(lines))
            tk = _repeated_table(lines, k, tmp / f"materials-x{k}.jsonl")
            scale = _measure(tk, a.grid, "multi_processing", 2, tmp,
                             f"multi_processing_2_x{k}")
    rc = settings.records
    growth = {"1x": round(small["peak_rss_MB"] - small["rss_after_imports_MB"], 1),
              f"{a.repeat}x": round(big["peak_rss_MB"] - big["rss_after_imports_MB"], 1)}
    res = {
        "benchmark": "Beam preprocessing end to end (run_preprocess, DirectRunner)",
        "table": str(table.relative_to(REPO_ROOT)), "grid": a.grid, "repeat": a.repeat,
        "records": f"{rc.num_shards} shards, compression {rc.compression or 'none'}, {rc.dtype}",
        "in_memory_1_1x": small, "in_memory_1_5x": big, "multi_processing_2_5x": multi,
        "scale_run": scale,
        "speedup_2_workers": round(big["wall_s"] / multi["wall_s"], 2),
        "same_data_hash": big["data_hash"] == multi["data_hash"],
        "best_materials_per_s": max(x["materials_per_s"] for x in (small, big, multi)),
        "peak_rss_ratio_5x_vs_1x": round(big["peak_rss_MB"] / small["peak_rss_MB"], 3),
        "pipeline_growth_ratio_5x_vs_1x": None,
        "MB_per_example": round(small["MB_written"] / max(small["written"], 1), 3),
        "pipeline_growth_MB": growth,
        "machine": machine(loadavg_at_start=[round(x, 2) for x in load0],
                           loadavg_at_end=[round(x, 2) for x in os.getloadavg()]),
    }
    g1, g5 = growth["1x"], growth[f"{a.repeat}x"]
    res["pipeline_growth_ratio_5x_vs_1x"] = round(g5 / g1, 2) if g1 > 0 else None
    res["note"] = _note(res)
    res["dask"] = dask_scaling(a.dask_grid)
    write_results("beam", res, _markdown(res))
    print(_markdown(res))
    return res


def _note(r: dict) -> str:
    """Plain words on what the run can and cannot show."""
    load = r["machine"]["loadavg_at_start"][0]
    words = []
    if r["speedup_2_workers"] < 1.6 and load > 1.0:
        words.append(f"The 2-worker speed-up is bounded here: the machine has "
                     f"{r['machine']['cpu_count']} cores and was already loaded (load "
                     f"{load}) by other work, so the second worker did not get a free core.")
    gr = r["pipeline_growth_ratio_5x_vs_1x"]
    if r["peak_rss_ratio_5x_vs_1x"] <= 1.2:
        words.append("Peak memory is flat in the dataset size: with records.num_shards = 0 "
                     "the write streams per bundle (only file names are grouped); the "
                     "pipeline's own growth over the imported libraries is tens of MB.")
    elif gr and gr > 1.5:
        words.append(f"The pipeline's own memory grows with the dataset ({gr}x at "
                     f"{r['repeat']}x the data): it does not stream on this runner. "
                     "WriteToTFRecord with a fixed num_shards keys every encoded example by "
                     "shard and groups them (a GroupByKey over the whole dataset, "
                     "apache_beam/io/iobase.py WriteImpl), which the DirectRunner's "
                     "FnApiRunner holds in memory; distributed runners spill that shuffle to "
                     "disk. Writing per bundle (num_shards=0: only file names are grouped) "
                     "would remove it.")
    return " ".join(words)


if __name__ == "__main__":
    main()
