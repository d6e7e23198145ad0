"""Benchmark: where the time of a long local pipeline run goes (the ``standard`` profile:
60^3 grid, 5 folds x 2 repeats, 11 LOEO elements), from its kfp.local log and, optionally,
its MLflow store.

Run: ``python -m bench standard --logs-dir <work_dir>/logs`` (every attempt of the newest
log's pipeline run, or of ``--pipeline-run-id ID``) or ``--log <run-local log>`` (repeatable:
the attempts of one run stopped and continued with ``run-local --resume``)
``[--tracking-uri URI] [--profile standard]``. Writes bench/results/standard.json and
standard.md. Across attempts, the wall time is the sum of the attempts' spans, the steps run
again and the training tasks that only reused finished runs are "restart overhead", and each
training task is counted once, with the wall seconds of every attempt where it ran epochs
(``summarise``).

Sources: the log (``bench.kfp_log``) gives every task's wall time and each training run's
``train_seconds`` and epochs (the ``ecdflow.train`` line), and a restart's resume epoch; the
MLflow store (read from a snapshot: a ``sqlite:///`` store is copied to a temp dir with
SQLite's backup API first, so a live run's store is never opened for writing) adds
``resumed_from_epoch``, ``epochs_run``, ``n_train`` and the epoch limit (``training.epochs``).
``train_seconds`` spans `ecdflow.train._train` from reading the records index to the logged
model (data loading + fit + test prediction + artifact logging); the task overhead is the rest
of the task's wall time (subprocess start, imports, kfp executor, the MLflow look-up of a
finished run, run start/end).

A run that has not finished (still going, or stopped) is reported as such: the elapsed part
(first task start to the latest time stamp in the log) and a projection of the rest from the
plan (``ecdflow.kfp.plan.build_plan``) and the finished tasks' mean seconds per task of the
same model and split kind (resumed or reused tasks are left out of the means).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from statistics import mean

from bench import machine, write_results
from bench.kfp_log import log_day, parse_kfp_log

NAME = "standard"


# ------------------------------------------------------------------------------------------
# Inputs: plan and MLflow
# ------------------------------------------------------------------------------------------


def load_plan(profile: str, params: str | None = None) -> tuple[list[dict], int]:
    """The planned training tasks of ``profile`` (model, target, split, kind, repeats and
    ``train_rows``: the materials in the split's training part, before label filtering and
    the validation hold-out, None for a remote table) and the epoch limit
    (``training.epochs``)."""
    from ecdflow.config import load_settings
    from ecdflow.kfp.plan import build_plan, table_facts
    from ecdflow.splits import make_splits, split_kind
    from ecdflow.train import run_repeats

    s = load_settings(params, profile)
    facts = table_facts(s)
    sizes = {name: len(sp["train"]) for name, sp in make_splits(
        facts.index, s.splits.n_folds, list(s.splits.loeo_elements), s.seed).items()} \
        if facts is not None else {}
    plan = [{"model": r.model, "target": r.target, "split": r.split,
             "kind": split_kind(r.split)[0], "repeats": run_repeats(s, r.model, r.split),
             "train_rows": sizes.get(r.split)} for r in build_plan(s)]
    return plan, int(s.training.epochs)


def snapshot_uri(uri: str, tmp: Path) -> str:
    """A read-only view of a tracking URI: a ``sqlite:///`` store is copied (SQLite backup API,
    the source opened read-only) into ``tmp`` and the copy's URI returned; others unchanged."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    src, dst = uri[len(prefix):], tmp / "mlflow.db"
    if not Path(src).exists():
        raise FileNotFoundError(f"{src}: no MLflow SQLite store there")
    s = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    d = sqlite3.connect(dst)
    try:
        s.backup(d)
    finally:
        s.close()
        d.close()
    return f"{prefix}{dst}"


def mlflow_train_runs(uri: str, pipeline_run_id: str) -> list[dict]:
    """The training runs of one pipeline run in an MLflow store (read from a snapshot):
    model, target, split, repeat, status, end (local time, ISO), train_seconds, epochs_run,
    resumed_from_epoch, n_train, grid, epochs_max (param ``training.epochs``)."""
    import mlflow

    from ecdflow.tracking import (
        TAG_MODEL,
        TAG_PIPELINE_RUN,
        TAG_REPEAT,
        TAG_ROLE,
        TAG_SPLIT,
        TAG_TARGET,
    )

    with tempfile.TemporaryDirectory() as tmp:
        client = mlflow.MlflowClient(tracking_uri=snapshot_uri(uri, Path(tmp)))
        exps = [e.experiment_id for e in client.search_experiments()]
        flt = f"tags.\"{TAG_PIPELINE_RUN}\" = '{pipeline_run_id}' and tags.\"{TAG_ROLE}\" = 'train'"
        runs = client.search_runs(exps, flt, max_results=50000) if exps else []
    out = []
    for r in runs:
        m, p, t = r.data.metrics, r.data.params, r.data.tags

        def num(d: dict, k: str, cast=float):
            return cast(float(d[k])) if k in d else None

        out.append({"run_id": r.info.run_id, "status": r.info.status,
                    "pipeline_run_id": pipeline_run_id,
                    "end": (datetime.fromtimestamp(r.info.end_time / 1000)
                            .isoformat(timespec="seconds") if r.info.end_time else None),
                    "model": t.get(TAG_MODEL), "target": t.get(TAG_TARGET),
                    "split": t.get(TAG_SPLIT), "repeat": int(t.get(TAG_REPEAT, 0)),
                    "train_seconds": num(m, "train_seconds"),
                    "epochs_run": num(m, "epochs_run", int),
                    "resumed_from_epoch": num(m, "resumed_from_epoch", int),
                    "n_train": num(p, "n_train", int), "grid": num(p, "grid", int),
                    "epochs_max": num(p, "training.epochs", int)})
    return out


# ------------------------------------------------------------------------------------------
# Summary
# ------------------------------------------------------------------------------------------


def _kind(split: str | None) -> str:
    return (split or "?").partition("-")[0]


def _round(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def train_tasks(log: dict, mlflow_runs: list[dict] | None = None) -> list[dict]:
    """Finished training tasks of a parsed log, one row each: task, model, target, split,
    kind, seconds (wall), train_s (sum of the runs' train_seconds), overhead_s, runs (each
    with epochs and resumed_from, MLflow's values where it has the run), resumed (a run
    resumed from a checkpoint), reused (a finished run of this pipeline run was reused, no
    training)."""
    by_key = {(r["model"], r["target"], r["split"], r["repeat"]): r for r in mlflow_runs or []}
    rows = []
    for t in log["tasks"]:
        if t["step"] != "train":
            continue
        p = t["params"]
        runs = []
        for r in t["runs"]:
            ml = by_key.get((r["model"], p.get("target"), p.get("split"), r["repeat"]), {})
            runs.append({**r, "epochs": ml.get("epochs_run") or r["epochs"],
                         "resumed_from": max(r["resumed_from"], ml.get("resumed_from_epoch") or 0),
                         "n_train": ml.get("n_train"), "epochs_max": ml.get("epochs_max")})
        outputs = t["output"] if isinstance(t["output"], list) else []
        reused = (bool(outputs) and all(isinstance(o, dict) and o.get("reused") for o in outputs)
                  and not runs) or (t["status"] == "SUCCESS" and not runs)
        rows.append({"task": t["task"], "model": p.get("model") or (runs[0]["model"] if runs
                                                                     else "?"),
                     "target": p.get("target"), "split": p.get("split"),
                     "kind": _kind(p.get("split")), "status": t["status"],
                     "seconds": t["seconds"], "train_s": t["train_s"],
                     "overhead_s": round(t["seconds"] - t["train_s"], 3), "runs": runs,
                     "resumed": any(r["resumed_from"] > 0 for r in runs), "reused": reused,
                     "epochs_limit": (t["overrides"].get("training") or {}).get("epochs")})
    return rows


def _per_model(rows: list[dict], epochs_max: int | None, keras: dict[str, bool]) -> dict:
    out: dict[str, dict] = {}
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        clean = [r for r in mine if not r["resumed"] and not r["reused"]]
        runs = [x for r in mine for x in r["runs"] if x["model"] == model]
        eps = [x["epochs"] for x in runs if x["resumed_from"] == 0]
        limits = {x["epochs_max"] for x in runs if x["epochs_max"]} | {
            r["epochs_limit"] for r in mine if r["epochs_limit"]}
        limit = max(limits) if limits else epochs_max
        is_keras = keras.get(model, any(x["epochs"] > 1 for x in runs))
        n_train = [x["n_train"] for x in runs if x["n_train"]]
        per_kind = {}
        for kind in ("cv", "loeo"):
            k = [r["seconds"] for r in clean if r["kind"] == kind]
            per_kind[kind] = {"tasks": len(k), "mean_s": _round(mean(k)) if k else None}
        out[model] = {
            "tasks": len(mine), "resumed_tasks": sum(r["resumed"] for r in mine),
            "reused_tasks": sum(r["reused"] for r in mine),
            "seconds": round(sum(r["seconds"] for r in mine), 1),
            "train_s": round(sum(r["train_s"] for r in mine), 1),
            "overhead_s": round(sum(r["overhead_s"] for r in mine), 1),
            "overhead_per_task_s": _round(mean(r["overhead_s"] for r in mine)),
            "runs": len(runs),
            "per_kind": per_kind,
            "epochs_mean": _round(mean(eps)) if eps and is_keras else None,
            "epochs_min": min(eps) if eps and is_keras else None,
            "epochs_max_run": max(eps) if eps and is_keras else None,
            "epochs_limit": limit if is_keras else None,
            "early_stopped_runs": sum(e < limit for e in eps) if is_keras and limit else None,
            "epoch_runs": len(eps) if is_keras else None,
            "n_train_mean": _round(mean(n_train), 0) if n_train else None}
    return out


def _estimate(model: str, kind: str, repeats: int, rows: int | None, per_model: dict,
              overhead_s: float | None, rates: dict[str, tuple]) -> tuple[float | None, str]:
    """Seconds one task of ``model`` on a ``kind`` split (``rows`` training materials) is
    expected to take, and how: the mean of the finished tasks of the same model and kind;
    else ``repeats`` x the model's ``train_seconds`` per run, scaled by the task's training
    rows over those of the measured runs when both are known (LOEO trains on more materials
    than a CV fold), + the mean task overhead."""
    pm = per_model.get(model)
    if pm is not None and pm["per_kind"][kind]["mean_s"] is not None:
        return pm["per_kind"][kind]["mean_s"], "mean of finished tasks"
    if model not in rates or overhead_s is None:
        return None, "no finished run of this model yet"
    per_run, per_row, src = rates[model]
    if per_row is not None and rows:
        run_s, how = per_row * rows, "x training rows "
    else:
        run_s, how = per_run, ""
    return (round(repeats * run_s + overhead_s, 1),
            f"{repeats} x mean train_seconds per run {how}({src}) + mean task overhead (no "
            f"finished {kind} task in the log)")


def _rates(rows: list[dict], mlflow_runs: list[dict], train_rows: dict) -> dict[str, tuple]:
    """Per model: (mean train_seconds per run, train_seconds per training row or None,
    source) from the log's finished un-resumed runs, else MLflow's finished ones;
    ``train_rows``: split -> training rows."""
    log_runs = [(x["model"], (r["target"], r["split"]), x["train_s"]) for r in rows
                if not r["reused"] for x in r["runs"] if x["resumed_from"] == 0]
    ml_runs = [(m["model"], (m["target"], m["split"]), m["train_seconds"])
               for m in mlflow_runs if m.get("status") == "FINISHED"
               and m.get("train_seconds") is not None and not m.get("resumed_from_epoch")]
    out: dict[str, tuple] = {}
    for src, runs in (("MLflow", ml_runs), ("log", log_runs)):  # the log's win
        for model in {m for m, _, _ in runs}:
            mine = [(train_rows.get(k[1]), secs) for m, k, secs in runs if m == model]
            per_row = (sum(s for _, s in mine) / sum(n for n, _ in mine)
                       if all(n for n, _ in mine) else None)
            out[model] = (mean(s for _, s in mine), per_row, src)
    return out


def project(plan: list[dict], rows: list[dict], open_tasks: list[dict], per_model: dict,
            last_seen: datetime | None, mlflow_runs: list[dict] | None = None) -> dict:
    """Seconds left for the planned training tasks not finished yet: per model, tasks left x
    the estimate of ``_estimate``; an open task's elapsed part is taken off its estimate.
    ``unknown`` lists the models with tasks left and no estimate (the total is then a lower
    bound)."""
    done = {(r["model"], r["target"], r["split"]) for r in rows if r["status"] == "SUCCESS"}
    running = {(t["params"].get("model"), t["params"].get("target"), t["params"].get("split")):
               t for t in open_tasks if t["step"] == "train"}
    overheads = [r["overhead_s"] for r in rows if not r["resumed"] and not r["reused"]]
    overhead = mean(overheads) if overheads else None
    rates = _rates(rows, mlflow_runs or [], {p["split"]: p.get("train_rows") for p in plan})
    left: dict[str, dict] = {}
    unplanned = sorted({"/".join(k) for k in done} - {
        "/".join((p["model"], p["target"], p["split"])) for p in plan})
    for p in plan:
        key = (p["model"], p["target"], p["split"])
        if key in done:
            continue
        est, how = _estimate(p["model"], p["kind"], p["repeats"], p.get("train_rows"),
                             per_model, overhead, rates)
        e = left.setdefault(p["model"], {"tasks": 0, "seconds": 0.0, "how": set()})
        e["tasks"] += 1
        e["how"].add(how)
        if est is None:
            e["seconds"] = None
            continue
        if key in running and last_seen is not None:
            est = max(0.0, est - (last_seen - running[key]["start"]).total_seconds())
        if e["seconds"] is not None:
            e["seconds"] = round(e["seconds"] + est, 1)
    for e in left.values():
        e["how"] = "; ".join(sorted(e["how"]))
    known = [e["seconds"] for e in left.values() if e["seconds"] is not None]
    return {"planned_tasks": len(plan), "finished_tasks": len(done & {
        (p["model"], p["target"], p["split"]) for p in plan}), "tasks_left": sum(
        e["tasks"] for e in left.values()), "per_model": left,
        "seconds_left": round(sum(known), 1),
        "unknown": sorted(m for m, e in left.items() if e["seconds"] is None),
        "finished_not_in_plan": unplanned}


def _span_end(log: dict) -> datetime | None:
    finished = log["pipeline_end"] is not None and not log["open"]
    return log["last_end"] if finished else log["last_seen"]


def _key(t: dict) -> tuple:
    p = t["params"]
    return (p.get("model"), p.get("target"), p.get("split"))


def summarise(logs: dict | list[dict], plan: list[dict] | None = None,
              mlflow_runs: list[dict] | None = None, epochs_max: int | None = None,
              keras: dict[str, bool] | None = None,
              prior_runs: list[dict] | None = None) -> dict:
    """The whole report from the parsed log(s) of one pipeline run
    (``bench.kfp_log.parse_kfp_log``; several: its attempts, a run stopped and continued with
    ``run-local --resume``, in any order), the plan (``load_plan``), MLflow's training runs
    (``mlflow_train_runs``) and which models train by epochs (``keras``: model -> bool;
    default: a run of more than one epoch); ``prior_runs``: MLflow training runs of earlier
    pipeline runs, used only for the estimates of the projection.

    Wall time: the sum over attempts of each attempt's span (first task start to the last
    task end of a finished attempt, else to its latest time stamp). Each training task
    (model, target, split) is counted once, under its model, with the wall seconds of every
    attempt where it ran epochs: a finished task that trained, and a task open when an
    earlier attempt stopped (killed mid-task: its elapsed part). A training task that only
    reused finished MLflow runs, and a non-training task (start, preprocess, ...) run again
    by a later attempt, are ``restart overhead``. ``where`` splits the wall time into rows
    that add up to it exactly.
    """
    logs = sorted(logs if isinstance(logs, list) else [logs], key=lambda x: x["first_start"])
    final = logs[-1]
    finished = final["pipeline_end"] is not None and not final["open"]
    attempts, merged, reused_rows, restart = [], {}, [], {}
    seen_steps: set[str] = set()
    steps: dict[str, dict] = {}
    still_open: list[dict] = []
    between, spans = 0.0, []
    for i, log in enumerate(logs):
        first, last = log["first_start"], _span_end(log)
        end_from = "log"
        if i < len(logs) - 1 and last is not None:
            # a stopped attempt's log lags it (block-buffered): a training run of this
            # pipeline run that MLflow saw end after the log's last stamp and before the next
            # attempt started ended in this attempt (MLflow's end time: local time, as the log)
            later = [e for e in (datetime.fromisoformat(m["end"]) for m in mlflow_runs or []
                                 if m.get("end")) if last < e < logs[i + 1]["first_start"]]
            if later:
                last, end_from = max(later), "MLflow run end"
        span = (last - first).total_seconds() if first and last else 0.0
        is_last = i == len(logs) - 1
        rows = {r["task"]: r for r in train_tasks(log, mlflow_runs)}
        accounted = 0.0
        for t in log["tasks"]:
            accounted += t["seconds"]
            if t["step"] == "train":
                r = rows[t["task"]]
                if r["reused"]:
                    reused_rows.append({**r, "attempt": i + 1})
                    continue
                m = merged.setdefault(_key(t), {**r, "parts": [], "killed_s": 0.0,
                                                "seconds": 0.0, "train_s": 0.0,
                                                "overhead_s": 0.0, "runs": []})
                m["parts"].append(i + 1)
                m["status"] = r["status"] if m["status"] != "SUCCESS" else m["status"]
                for k in ("seconds", "train_s", "overhead_s"):
                    m[k] = round(m[k] + r[k], 3)
                m["runs"] += r["runs"]
                m["task"] = r["task"]
            elif t["task"] in seen_steps:
                what = f"{t['step']} run again"
                restart[what] = round(restart.get(what, 0.0) + t["seconds"], 3)
                continue
            seen_steps.add(t["task"])
            s = steps.setdefault(t["step"], {"tasks": 0, "seconds": 0.0})
            s["tasks"] += t["step"] != "train"
            s["seconds"] = round(s["seconds"] + t["seconds"], 3)
        for t in log["open"]:
            secs = (last - t["start"]).total_seconds() if last else 0.0
            accounted += secs
            if is_last:
                still_open.append({"task": t["task"], "seconds": secs})
            elif t["step"] == "train":
                r = train_tasks({"tasks": [{**t, "seconds": secs, "status": None}]})[0]
                m = merged.setdefault(_key(t), {**r, "parts": [], "killed_s": 0.0,
                                                "seconds": 0.0, "train_s": 0.0,
                                                "overhead_s": 0.0, "runs": []})
                m["parts"].append(i + 1)
                m["killed_s"] = round(m["killed_s"] + secs, 3)
                m["seconds"] = round(m["seconds"] + secs, 3)
                m["runs"] += r["runs"]
                steps.setdefault("train", {"tasks": 0, "seconds": 0.0})
                steps["train"]["seconds"] = round(steps["train"]["seconds"] + secs, 3)
            else:
                what = f"{t['step']} killed by a stop"
                restart[what] = round(restart.get(what, 0.0) + secs, 3)
        between += span - accounted
        spans.append(span)
        attempts.append({"attempt": i + 1, "log": log.get("name"),
                         "first_task_start": _iso(first), "end": _iso(last), "end_from": end_from,
                         "span_s":
                         round(span, 1), "finished": log["pipeline_end"] is not None
                         and not log["open"], "open_tasks": [t["task"] for t in log["open"]],
                         "reused_tasks": sum(r["reused"] for r in rows.values()),
                         "trained_tasks": sum(not r["reused"] for r in rows.values())})
    rows = list(merged.values())
    for r in rows:
        r["resumed"] = r["resumed"] or len(r["parts"]) > 1 or r["killed_s"] > 0
        r["reused"] = False
    if "train" in steps:
        steps["train"]["tasks"] = len(rows)
    if reused_rows:
        restart[f"training tasks reusing finished runs ({len(reused_rows)})"] = round(
            sum(r["seconds"] for r in reused_rows), 3)
    wall = round(sum(spans), 3)
    per_model = _per_model(rows, epochs_max, keras or {})
    for model, pm in per_model.items():
        pm["killed_s"] = round(sum(r["killed_s"] for r in rows if r["model"] == model), 1)
        pm["reused_tasks"] = sum(r["model"] == model for r in reused_rows)
    where: list[dict] = []
    for step, s in steps.items():
        if step != "train":
            where.append({"what": f"{step} (task)", "seconds": s["seconds"]})
    for model, pm in per_model.items():
        where.append({"what": f"train {model}: train_seconds (data, fit, predict, logging)",
                      "seconds": pm["train_s"]})
        where.append({"what": f"train {model}: task overhead (start-up, imports, lookup)",
                      "seconds": pm["overhead_s"]})
        if pm["killed_s"]:
            where.append({"what": f"train {model}: task killed mid-way by a stop (its "
                          "elapsed part, resumed later)", "seconds": pm["killed_s"]})
    for what, secs in restart.items():
        where.append({"what": f"restart overhead: {what}", "seconds": secs})
    for t in still_open:
        where.append({"what": f"{t['task']} (still open, elapsed so far)",
                      "seconds": t["seconds"]})
    where.append({"what": "between tasks (kfp.local bookkeeping)", "seconds": between})
    for w in where:
        w["seconds"] = round(w["seconds"], 1)
        w["share"] = round(w["seconds"] / wall, 4) if wall else None
    where.sort(key=lambda w: -w["seconds"])
    last = _span_end(final)
    res = {"finished": finished, "pipeline_run_id": final["pipeline_run_id"],
           "profile": final["profile"], "first_task_start": _iso(logs[0]["first_start"]),
           "last_task_end": _iso(final["last_end"]), "last_seen": _iso(final["last_seen"]),
           "wall_s": round(wall, 1), "attempts": attempts,
           "restart_overhead_s": round(sum(restart.values()), 1),
           "restart_overhead": {k: round(v, 1) for k, v in restart.items()},
           "steps": steps, "per_model": per_model,
           "where": where, "open_tasks": [t["task"] for t in final["open"]],
           "train_tasks": rows, "reused_tasks": [
               {k: r[k] for k in ("attempt", "task", "model", "target", "split", "seconds")}
               for r in reused_rows],
           "mlflow_runs": len(mlflow_runs) if mlflow_runs is not None else None}
    seen = {(r["model"], r["target"], r["split"]) for r in rows}
    res["mlflow_only_runs"] = sum((m["model"], m["target"], m["split"]) not in seen
                                  for m in mlflow_runs or [])
    res["mlflow_train_s_per_run"] = {m: round(v[0], 1) for m, v in
                                     _rates([], mlflow_runs or [], {}).items()}
    res["mlflow_last_end"] = max((m["end"] for m in mlflow_runs or [] if m.get("end")),
                                 default=None)
    if not finished and plan is not None:
        res["projection"] = project(plan, rows, final["open"], per_model, last,
                                    [*(mlflow_runs or []), *(prior_runs or [])])
        res["projection"]["total_s"] = round(wall + res["projection"]["seconds_left"], 1)
    return res


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def _h(s: float | None) -> str:
    if s is None:
        return "-"
    return f"{s / 3600:.2f} h" if s >= 3600 else f"{s / 60:.1f} min" if s >= 60 else f"{s:.0f} s"


def _v(x) -> str:
    return "-" if x is None else str(x)


def markdown(r: dict) -> str:
    """The report of ``summarise`` (+ ``log``, ``machine``, ``parsed_at`` keys) as Markdown."""
    state = ("complete run" if r["finished"] else
             "**IN PROGRESS (or stopped): the run had not finished when this was parsed**")
    md = [f"# Where the time of a `{r.get('profile') or '?'}`-profile local run goes", "",
          f"Log: `{r['log']}` ({state}); pipeline run `{r['pipeline_run_id']}`; parsed "
          f"{r['parsed_at']}, log last written {r['log_mtime']}; MLflow: "
          + (f"{r['mlflow_runs']} training runs of this pipeline run read from a snapshot of "
             f"`{r['tracking_uri']}`" if r.get("mlflow_runs") is not None else "not read")
          + (f" ({r['mlflow_only_runs']} of them belong to tasks not finished in the log yet)"
             if r.get("mlflow_only_runs") else "")
          + f". Machine: {r['machine']['cpu_count']} CPU cores. Made by `python -m bench "
          "standard` (bench/bench_standard.py).", ""]
    if r["finished"]:
        md.append(f"Wall time, first task start to last task end: **{_h(r['wall_s'])}** "
                  f"({r['wall_s']:.0f} s).")
    else:
        n = len(r.get("attempts") or [])
        md.append((f"Elapsed so far, the sum of the {n} attempts' spans (below), first task "
                   f"start {r['first_task_start']}, latest stamp in the newest log "
                   f"{r['last_seen']}: " if n > 1 else
                   f"Elapsed so far, first task start ({r['first_task_start']}) to the latest "
                   f"stamp in the log ({r['last_seen']}): ") + f"**{_h(r['wall_s'])}** "
                  f"({r['wall_s']:.0f} s). Open task(s): {', '.join(r['open_tasks']) or 'none'}"
                  ". The log is block-buffered, so it lags the run by up to a few tasks"
                  + (f" (the last training run in MLflow ended {r['mlflow_last_end']})"
                     if r.get("mlflow_last_end") else "") + "; everything below is as of "
                  "the log's last line.")
        pr = r.get("projection")
        if pr:
            md += ["", f"Projection: {pr['finished_tasks']} of {pr['planned_tasks']} planned "
                   f"training tasks finished, {pr['tasks_left']} left, about "
                   f"**{_h(pr['seconds_left'])}** more"
                   + (f" for the models with an estimate (no estimate yet for "
                      f"{', '.join(pr['unknown'])}: the total is a LOWER BOUND)"
                      if pr["unknown"] else "")
                   + f", so about **{_h(pr['total_s'])}** of training-phase wall time in all; "
                   "the steps after training (evaluate, register, external validation) are "
                   "not included. Estimates: mean wall seconds per finished task of the same "
                   "model and split kind (resumed and reused tasks left out)"
                   + (" and the un-resumed MLflow runs of earlier attempts "
                      + ", ".join(f"`{k}` ({v} runs)" for k, v in r["estimates_from"].items())
                      if r.get("estimates_from") else "") + ".", "",
                   "| model | tasks left | est. seconds left | how |", "|---|---|---|---|"]
            for m, e in pr["per_model"].items():
                md.append(f"| {m} | {e['tasks']} | {_h(e['seconds'])} | {e['how']} |")
            if pr["finished_not_in_plan"]:
                md += ["", "Finished tasks not in the plan built here (the run used another "
                       f"configuration?): {', '.join(pr['finished_not_in_plan'])}."]
    ats = r.get("attempts") or []
    if len(ats) > 1:
        md += ["", f"## Attempts ({len(ats)}: the run was stopped and continued with "
               "`run-local --resume`)", "",
               f"Wall time = the sum of the attempts' spans (first task start to the last task "
               f"end, or to the latest stamp of a stopped attempt or the latest end of a "
               f"training run MLflow saw finish before the next attempt began; the time "
               f"between attempts is not counted, nor what a stopped attempt did after that): "
               f"**{_h(r['wall_s'])}**. Restart overhead "
               f"(non-training tasks run again, "
               f"training tasks that only reused finished runs): **{_h(r['restart_overhead_s'])}**"
               + (" (" + ", ".join(f"{k}: {v:.0f} s" for k, v in r["restart_overhead"].items())
                  + ")" if r["restart_overhead"] else "") + ". A training task killed by a "
               "stop and resumed from its checkpoint counts, under its model, the wall seconds "
               "of every attempt where it ran epochs.", "",
               "| attempt | log | first task start | end (last stamp, or a later MLflow run end) "
               "| span | trained tasks | "
               "reused tasks | open at its end | log last written |",
               "|---|---|---|---|---|---|---|---|---|"]
        for a in ats:
            md.append(f"| {a['attempt']} | `{a['log']}` | {a['first_task_start']} | {a['end']}"
                      + (f" ({a['end_from']})" if a.get("end_from", "log") != "log" else "")
                      + " "
                      f"| {_h(a['span_s'])} | {a['trained_tasks']} | {a['reused_tasks']} | "
                      f"{', '.join(a['open_tasks']) or '-'} | {_v(a.get('log_mtime'))} |")
    md += ["", "## Where the time goes", "",
           "Rows add up to the wall time above; sorted by share.", "",
           "| what | seconds | share |", "|---|---|---|"]
    for w in r["where"]:
        share = f"{w['share']:.1%}" if w["share"] is not None else "-"
        md.append(f"| {w['what']} | {w['seconds']:.1f} | {share} |")
    md += ["", "## Per step", "", "| step | tasks | seconds | share |", "|---|---|---|---|"]
    for name, s in r["steps"].items():
        share = f"{s['seconds'] / r['wall_s']:.1%}" if r["wall_s"] else "-"
        md.append(f"| {name} | {s['tasks']} | {s['seconds']:.1f} | {share} |")
    md += ["", "## Per model (training tasks, each counted once)", "",
           "A task counts the wall seconds of every attempt where it ran epochs (a task killed "
           "by a stop: its elapsed part, then its resumed part); `reused` counts the tasks a "
           "later attempt found finished (their seconds are restart overhead, not here).", "",
           "`train_seconds` spans the training function from reading the records index to "
           "the logged model (data loading, fit, test prediction, artifact logging); the task "
           "overhead is the rest of the task's wall time (subprocess start, imports, kfp "
           "executor, MLflow run look-up and start/end). Means per task leave out resumed "
           "tasks (a restart resumed them from a checkpoint: `resumed_from_epoch` > 0) and "
           "reused ones (a finished run of the same pipeline run was reused). Epochs: the "
           "Keras runs that started from epoch 0, against the limit (`training.epochs`; "
           "early stopping ends a run before it).", "",
           "| model | tasks | resumed | reused | total s | train_seconds | overhead s | "
           "overhead/task s | mean s/task cv (n) | mean s/task loeo (n) | epochs mean "
           "(min-max) / limit | early-stopped runs | mean n_train |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for m, p in r["per_model"].items():
        cv, lo = p["per_kind"]["cv"], p["per_kind"]["loeo"]
        ep = (f"{p['epochs_mean']} ({p['epochs_min']}-{p['epochs_max_run']}) / "
              f"{_v(p['epochs_limit'])}" if p["epochs_mean"] is not None else "-")
        es = (f"{p['early_stopped_runs']} of {p['epoch_runs']}"
              if p["early_stopped_runs"] is not None else "-")
        md.append(f"| {m} | {p['tasks']} | {p['resumed_tasks']} | {p['reused_tasks']} | "
                  f"{p['seconds']:.0f} | {p['train_s']:.0f} | {p['overhead_s']:.0f} | "
                  f"{_v(p['overhead_per_task_s'])} | {_v(cv['mean_s'])} ({cv['tasks']}) | "
                  f"{_v(lo['mean_s'])} ({lo['tasks']}) | {ep} | {es} | "
                  f"{_v(p['n_train_mean'])} |")
    resumed = [t for t in r["train_tasks"] if t["resumed"] or t["reused"]]
    if resumed:
        md += ["", "Resumed tasks (counted apart from the means; attempts where they ran "
               "epochs in brackets):", ""]
        if any(t.get("parts", [1])[0] == 1 and not t.get("killed_s") for t in resumed):
            md += ["A task resumed in the first attempt continued a checkpoint written before "
                   "this pipeline run began (by an earlier run, restarted before `--resume` "
                   "existed): the epochs before its resume are not in this wall time.", ""]
        for t in resumed:
            how = ", ".join(f"{x['run']} from epoch {x['resumed_from']}" for x in t["runs"]
                            if x["resumed_from"]) or "no epoch checkpoint logged"
            md.append(f"- {t['task']} ({t['model']} {t['target']} {t['split']}): "
                      f"{t['seconds']:.0f} s"
                      + (f" [attempts {', '.join(map(str, t['parts']))}; killed part "
                         f"{t['killed_s']:.0f} s]" if t.get("killed_s") else "") + f"; {how}")
    return "\n".join(md) + "\n"


def _keras_models(names) -> dict[str, bool]:
    from ecdflow.models import get_spec

    out = {}
    for n in names:
        try:
            out[n] = get_spec(n).is_keras
        except Exception:  # noqa: BLE001 - a model this checkout does not know: guess
            continue
    return out


def _fail(msg: str) -> None:
    """One line on stderr, exit status 2 (a user mistake: no traceback)."""
    print(f"bench standard: {msg}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> dict:
    """Parse the log (+ MLflow, + plan) and write bench/results/standard.{json,md}."""
    p = argparse.ArgumentParser(prog="python -m bench standard",
                                description=__doc__.splitlines()[0])
    p.add_argument("--log", action="append", default=[],
                   help="a kfp.local log of the run (<work_dir>/logs/run-local-*.log); "
                   "repeatable: the attempts of one pipeline run stopped and resumed")
    p.add_argument("--logs-dir", help="take every run-local-*.log here whose pipeline run is "
                   "--pipeline-run-id (default: the newest log's)")
    p.add_argument("--tracking-uri", help="its MLflow store (read from a snapshot)")
    p.add_argument("--pipeline-run-id", help="default: the one in the (newest) log")
    p.add_argument("--estimates-from", action="append", default=[], metavar="PIPELINE_RUN_ID",
                   help="an earlier attempt's pipeline run (same store) whose finished runs "
                   "also feed the projection's estimates (repeatable)")
    p.add_argument("--profile", default=None, help="for the plan; default: the log's")
    p.add_argument("--params", default=None, help="params.yaml for the plan")
    a = p.parse_args(argv)
    paths = [Path(x) for x in a.log]
    if a.logs_dir:
        if not Path(a.logs_dir).is_dir():
            _fail(f"--logs-dir {a.logs_dir}: no such directory")
        paths += sorted(Path(a.logs_dir).glob("run-local-*.log"))
    if not paths:
        _fail("no log (pass --log <work_dir>/logs/run-local-*.log or --logs-dir DIR)")
    for path in paths:
        if not path.is_file():
            _fail(f"no log {str(path)!r} (pass --log <work_dir>/logs/run-local-*.log)")
    parsed = []
    for path in dict.fromkeys(paths):
        log = parse_kfp_log(path.read_text(errors="replace"), log_day(path.name))
        if log["first_start"] is None:
            if a.logs_dir and str(path) not in a.log:
                continue  # an empty attempt in the directory: nothing to count
            _fail(f"{path}: no kfp.local task in this log")
        log.update(name=path.name, path=path)
        parsed.append(log)
    if not parsed:
        _fail(f"--logs-dir {a.logs_dir}: no run-local-*.log with a kfp.local task")
    newest = max(parsed, key=lambda x: x["first_start"])
    run_id = a.pipeline_run_id or newest["pipeline_run_id"]
    if a.logs_dir:  # only the attempts of the run asked for
        parsed = [x for x in parsed if x["pipeline_run_id"] == run_id or
                  str(x["path"]) in a.log]
        if not parsed:
            _fail(f"--logs-dir {a.logs_dir}: no log of pipeline run {run_id}")
        newest = max(parsed, key=lambda x: x["first_start"])
    others = sorted({str(x["pipeline_run_id"]) for x in parsed} - {str(run_id)})
    if len(parsed) > 1 and others:
        _fail(f"the logs belong to other pipeline runs ({', '.join(others)}) than {run_id}: "
              "pass the attempts of one run")
    if a.tracking_uri and not run_id:
        _fail(f"{newest['path']}: no pipeline_run_id in the log (pass --pipeline-run-id)")
    try:
        runs = mlflow_train_runs(a.tracking_uri, run_id) if a.tracking_uri else None
        prior = [x for pid in a.estimates_from
                 for x in mlflow_train_runs(a.tracking_uri, pid)] if a.tracking_uri else []
    except (FileNotFoundError, sqlite3.Error) as exc:
        _fail(f"--tracking-uri {a.tracking_uri}: {exc}")
    log = newest
    profile = a.profile or log["profile"] or "standard"
    plan, epochs_max = load_plan(profile, a.params)
    models = {pl["model"] for pl in plan} | {t["params"].get("model") for x in parsed
                                             for t in x["tasks"]}
    res = summarise(parsed, plan, runs, epochs_max, _keras_models(m for m in models if m), prior)
    res["estimates_from"] = {pid: sum(1 for x in prior if x.get("pipeline_run_id") == pid)
                             for pid in a.estimates_from}
    mtime = {x["name"]: time.strftime("%Y-%m-%dT%H:%M:%S",
                                      time.localtime(x["path"].stat().st_mtime)) for x in parsed}
    for at in res["attempts"]:
        at["log_mtime"] = mtime.get(at["log"])
    res.update({"log": ", ".join(str(x["path"]) for x in sorted(
                    parsed, key=lambda x: x["first_start"])),
                "tracking_uri": a.tracking_uri, "machine": machine(),
                "parsed_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
                "log_mtime": mtime[newest["name"]]})
    if not res.get("profile"):
        res["profile"] = profile
    md = markdown(res)
    write_results(NAME, res, md)
    print(md)
    return res


if __name__ == "__main__":
    main()
