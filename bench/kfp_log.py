"""Parse the log of a local pipeline run (``<work_dir>/logs/run-local-<time>.log``, written by
``ecdflow.kfp.runners.TaskLog``): one shared parser for the `make run` bench (bench_e2e) and the
standard-profile bench (bench_standard).

kfp.local prints ``HH:MM:SS.mmm - INFO - Executing task 'X'`` and ``... Task 'X' finished with
status S`` for every task, then ``Task 'X' outputs:`` and the task's output value; the task's
executor input (its parameter values: model, target, split, pipeline_run_id, overrides) is
echoed inside its block, and every training run ends with an ``ecdflow.train: <label>: MAE ...
(<n> epochs, <s> s)`` line (preceded by ``... resuming after epoch <k>`` when a restarted run
resumed from a checkpoint). The log is block-buffered while a run goes on, so it may end in the
middle of a task, or of a line: such a task is returned as open, never as finished.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta

ANSI = re.compile(r"\x1b\[[0-9;]*m")
STAMP = r"^(\d\d:\d\d:\d\d\.\d+) - INFO - "
START = re.compile(STAMP + r"Executing task '([^']+)'")
END = re.compile(STAMP + r"Task '([^']+)' finished with status (\w+)")
PIPE = re.compile(STAMP + r"Running pipeline: '([^']+)'")
PIPE_END = re.compile(STAMP + r"Pipeline '([^']+)' finished with status (\w+)")
ANY_STAMP = re.compile(STAMP)
EXEC_STAMP = re.compile(r"\[KFP Executor (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d+) ")
OUTPUT = re.compile(r"^\s+Output: '(.*)'\s*$")
PARAM = re.compile(r'^\s+"(model|target|split|pipeline_run_id|resume_run_id|profile|overrides)": '
                   r'("(?:[^"\\]|\\.)*")')
#: label is ``cnn3d · K_VRH · cv-fold-0 · r0`` (older logs: ``cnn3d-K_VRH-cv-0-r0``)
TRAIN = re.compile(r"ecdflow\.train: (.+?): MAE ([\d.]+) .*\((\d+) epochs, ([\d.]+) s\)")
RESUME = re.compile(r": resuming after epoch (\d+) from ")
LOG_DATE = re.compile(r"run-local-(\d{8})-\d{6}")
#: a backwards jump of the wall clock larger than this is a new day, not a reordered line
_NEW_DAY = timedelta(hours=12)


def step_of(task: str) -> str:
    """Pipeline step of a kfp task name (``train-12`` -> ``train``)."""
    return re.sub(r"-\d+$", "", task)


def log_day(name: str) -> date | None:
    """The day a ``run-local-YYYYMMDD-HHMMSS.log`` was started, from its file name."""
    m = LOG_DATE.search(name)
    return datetime.strptime(m.group(1), "%Y%m%d").date() if m else None


class _Clock:
    """Absolute times from the log's ``HH:MM:SS.mmm`` stamps: a stamp earlier than the last one
    by more than 12 h starts the next day (a run of any length, across any midnight)."""

    def __init__(self, day: date | None):
        self.day = day or date(1900, 1, 1)
        self.last: datetime | None = None

    def at(self, stamp: str) -> datetime:
        t = datetime.combine(self.day, datetime.strptime(stamp, "%H:%M:%S.%f").time())
        if self.last is not None and t < self.last - _NEW_DAY:
            self.day += timedelta(days=1)
            t += timedelta(days=1)
        self.last = max(self.last or t, t)
        return t


def _label_fields(label: str) -> tuple[str, int | None]:
    """(model, repeat) of a run label (``cnn3d · K_VRH · cv-fold-0 · r0``)."""
    model = re.split(r" · |-", label, maxsplit=1)[0]
    m = re.search(r"(?:^|[ ·-])r(\d+)$", label)
    return model, int(m.group(1)) if m else None


def parse_kfp_log(text: str, day: date | None = None) -> dict:
    """Tasks of one local pipeline run, from its log text.

    Returns ``tasks`` (finished, in log order) and ``open`` (started, not finished: the run
    was still going, or was killed), each a dict: ``task`` (kfp name), ``step``, ``start`` /
    ``end`` (datetime; ``end`` None when open), ``seconds`` (wall, finished tasks), ``status``,
    ``params`` (model, target, split, ... from the executor input), ``overrides`` (dict),
    ``runs`` (one per ``ecdflow.train`` line: ``run`` label, ``model``, ``repeat``,
    ``mae_GPa``, ``epochs``, ``train_s``, ``resumed_from``), ``train_s`` (sum over the runs)
    and ``output`` (the task's output value, parsed JSON, or None); plus ``pipeline_start`` /
    ``pipeline_end`` / ``pipeline_status``, ``first_start`` / ``last_end`` (tasks), ``last_seen``
    (latest time stamp anywhere in the log), ``pipeline_run_id`` and ``profile`` (from the
    executor inputs; a ``--resume`` attempt's ``start`` task gets a fresh id and the resumed
    one as ``resume_run_id``: the resumed one is the run's id). Times are on ``day`` (the
    log's start day; 1900-01-01 when unknown).
    """
    clock = _Clock(day)
    tasks: list[dict] = []
    open_: dict[str, dict] = {}
    out: dict = {"pipeline_start": None, "pipeline_end": None, "pipeline_status": None,
                 "pipeline_run_id": None, "profile": None}
    current: dict | None = None  # the task whose block we are in
    last_done: dict | None = None  # the task whose outputs may follow
    last_seen: datetime | None = None
    pending_resume: int | None = None
    for raw in text.splitlines():
        line = ANSI.sub("", raw)
        if m := ANY_STAMP.match(line):
            now = clock.at(m.group(1))
            last_seen = max(last_seen or now, now)
        elif (m := EXEC_STAMP.search(line)) and day is not None:
            t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S")
            last_seen = max(last_seen or t, t)
        if m := PIPE.match(line):
            out["pipeline_start"] = clock.at(m.group(1))
        elif m := START.match(line):
            current = {"task": m.group(2), "step": step_of(m.group(2)),
                       "start": clock.at(m.group(1)), "end": None, "seconds": None,
                       "status": None, "params": {}, "overrides": {}, "runs": [],
                       "output": None}
            open_[m.group(2)] = current
            last_done, pending_resume = None, None
        elif m := END.match(line):
            task = open_.pop(m.group(2), None)
            if task is not None:
                task["end"] = clock.at(m.group(1))
                task["seconds"] = round((task["end"] - task["start"]).total_seconds(), 3)
                task["status"] = m.group(3)
                tasks.append(task)
                last_done = task
            current = None
        elif m := PIPE_END.match(line):
            out["pipeline_status"], out["pipeline_end"] = m.group(3), clock.at(m.group(1))
        elif last_done is not None and (m := OUTPUT.match(line)):
            try:
                last_done["output"] = json.loads(m.group(1))
            except json.JSONDecodeError:
                pass  # a value that is no JSON (or a cut line): no output
            last_done = None
        elif current is not None and (m := PARAM.match(line)) and \
                m.group(1) not in current["params"]:
            try:
                value = json.loads(m.group(2))
            except json.JSONDecodeError:
                continue
            if m.group(1) == "overrides":
                try:
                    current["overrides"] = json.loads(value) if value else {}
                except json.JSONDecodeError:
                    current["overrides"] = {}
            current["params"][m.group(1)] = value
            if m.group(1) in ("pipeline_run_id", "profile"):
                out[m.group(1)] = out[m.group(1)] or value
            elif m.group(1) == "resume_run_id" and value:
                out["pipeline_run_id"] = value  # a resumed run goes on under its own id
        elif current is not None and (m := RESUME.search(line)):
            pending_resume = int(m.group(1))
        elif current is not None and (m := TRAIN.search(line)):
            model, repeat = _label_fields(m.group(1))
            current["runs"].append({"run": m.group(1), "model": model, "repeat": repeat,
                                    "mae_GPa": float(m.group(2)), "epochs": int(m.group(3)),
                                    "train_s": float(m.group(4)),
                                    "resumed_from": pending_resume or 0})
            pending_resume = None
    for t in [*tasks, *open_.values()]:
        t["train_s"] = round(sum(r["train_s"] for r in t["runs"]), 3)
    starts = [t["start"] for t in [*tasks, *open_.values()]]
    out.update({"tasks": tasks, "open": list(open_.values()),
                "first_start": min(starts) if starts else None,
                "last_end": max((t["end"] for t in tasks), default=None),
                "last_seen": last_seen})
    return out
