"""Benchmark: end-to-end ``make run`` wall time split by pipeline step, from its log.

Run: ``python -m bench.bench_e2e [--log /tmp/makerun.log] [--rerun]``. Writes
bench/results/e2e.json and e2e.md.

kfp.local prints ``HH:MM:SS.mmm - INFO - Executing task 'X'`` and ``... Task 'X' finished
with status S`` for every task; the wall time of a task is the difference (``bench.kfp_log``,
shared with bench_standard). Each train task's runs (``cnn3d · K_VRH · cv-fold-0 · r0``) and
their in-task training seconds come from the ``ecdflow.train: <name>: MAE ...`` lines, so the
per-task overhead (subprocess start, imports, MLflow logging) is the wall time minus the
training time. With
``--rerun`` the log is produced first by ``make run`` (minutes; not part of ``make bench``'s
default, which parses an existing log and writes nothing when there is none).
"""

from __future__ import annotations

import argparse
import re
import subprocess
from pathlib import Path

from bench import machine, write_results
from bench.kfp_log import parse_kfp_log
from ecdflow.config import REPO_ROOT

DEFAULT_LOG = "/tmp/makerun.log"


def parse_log(text: str) -> dict:
    """Tasks (name, step, seconds, status, train labels), steps summed, whole-run wall time
    (``bench.kfp_log.parse_kfp_log`` reads the kfp.local lines)."""
    log = parse_kfp_log(text)
    tasks = []
    for t in log["tasks"]:
        row = {"task": t["task"], "step": t["step"], "seconds": round(t["seconds"], 2),
               "status": t["status"],
               "runs": [{"run": r["run"], "mae_GPa": r["mae_GPa"], "train_s": r["train_s"]}
                        for r in t["runs"]],
               "train_s": round(t["train_s"], 2)}
        if t["step"] == "train":
            row["overhead_s"] = round(row["seconds"] - row["train_s"], 2)
        tasks.append(row)
    steps: dict[str, dict] = {}
    for t in tasks:
        s = steps.setdefault(t["step"], {"tasks": 0, "seconds": 0.0})
        s["tasks"] += 1
        s["seconds"] = round(s["seconds"] + t["seconds"], 2)
    first = log["pipeline_start"] or log["first_start"]
    last = max((x for x in (log["last_end"], log["pipeline_end"]) if x), default=None)
    wall = round((last - first).total_seconds(), 2) if first and last else None
    finished = bool(re.search(r"^registered versions:", text, re.M)) and not log["open"]
    m = re.search(r"^pipeline run (\S+): (\d+) tasks in (\d+) s", text, re.M)
    reported = {"run_id": m.group(1), "tasks": int(m.group(2)),
                "seconds": int(m.group(3))} if m else None
    m = re.search(r"^real\s+(\d+)m([\d.]+)s", text, re.M)
    make_wall = round(int(m.group(1)) * 60 + float(m.group(2)), 1) if m else None
    return {"tasks": tasks, "make_wall_s": make_wall, "steps": steps, "wall_s": wall,
            "pipeline_status": log["pipeline_status"],
            "unfinished_tasks": sorted(t["task"] for t in log["open"]), "finished": finished,
            "reported_by_cli": reported}


def _markdown(r: dict) -> str:
    wall = r["wall_s"] or 0.0
    md = ["# End-to-end `make run` split by pipeline step", "",
          f"Log: `{r['log']}` ({'complete run' if r['finished'] else 'PARTIAL: run not finished'}"
          f"), machine: {r['machine']['cpu_count']} CPU cores, {r['machine']['platform']}; "
          "tasks run one after another (kfp.local), so the step times add up to the wall time.",
          "", f"Wall time, first task start to last task end: **{wall:.0f} s**"
          + (f" (the CLI reports {r['reported_by_cli']['tasks']} tasks in "
             f"{r['reported_by_cli']['seconds']} s)" if r.get("reported_by_cli") else "")
          + (f"; whole command (`time`, incl. setup, MLflow results and registry "
             f"listing): {r['make_wall_s']:.0f} s" if r.get("make_wall_s") else ""), "",
          "| step | tasks | seconds | share |", "|---|---|---|---|"]
    for name, s in r["steps"].items():
        md.append(f"| {name} | {s['tasks']} | {s['seconds']:.1f} | "
                  f"{s['seconds'] / wall:.0%} |" if wall else f"| {name} | {s['tasks']} | "
                  f"{s['seconds']:.1f} | |")
    tr = [t for t in r["tasks"] if t["step"] == "train"]
    if tr:
        tot, fit = sum(t["seconds"] for t in tr), sum(t["train_s"] for t in tr)
        md += ["", f"Train tasks: {len(tr)}, {tot:.0f} s wall, of which {fit:.0f} s inside "
               f"`fit` (the rest, {tot - fit:.0f} s = {(tot - fit) / len(tr):.1f} s per task, "
               "is task start-up: subprocess, imports, data loading, MLflow logging).", "",
               "| task | runs | wall s | train s | overhead s |", "|---|---|---|---|---|"]
        for t in tr:
            runs = ", ".join(x["run"] for x in t["runs"]) or "-"
            md.append(f"| {t['task']} | {runs} | {t['seconds']} | {t['train_s']} | "
                      f"{t['overhead_s']} |")
    if r["unfinished_tasks"]:
        md += ["", f"Still running when parsed: {', '.join(r['unfinished_tasks'])}."]
    return "\n".join(md) + "\n"


def main(argv: list[str] | None = None) -> dict:
    """Parse the log (or rerun ``make run`` first) and write the results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--log", default=DEFAULT_LOG)
    p.add_argument("--rerun", action="store_true", help="run `make run` into --log first")
    a = p.parse_args(argv)
    log = Path(a.log)
    if a.rerun:
        with log.open("w") as fh:
            subprocess.run(["make", "run"], cwd=REPO_ROOT, stdout=fh, stderr=subprocess.STDOUT,
                           check=True)
    if not log.exists():
        print(f"bench e2e: no log at {log} (run `make run > {log} 2>&1` or pass --rerun)")
        return {}
    res = parse_log(log.read_text(errors="replace"))
    res["log"] = str(log)
    res["machine"] = machine()
    write_results("e2e", res, _markdown(res))
    print(_markdown(res))
    return res


if __name__ == "__main__":
    main()
