"""Per-task container start-up and tear-down of a kfp.local run, from its full log
(``<work_dir>/logs/run-local-*.log``; `make run-containers` prints its path).

start-up: kfp.local's ``Executing task`` line -> the task's first ``[KFP Executor`` line (image
lookup, container create and start, Python and the KFP executor loading); tear-down: the last
``[KFP Executor`` line -> ``Task ... finished`` (container exit, log drain, removal); work: in
between. Prints a Markdown table and the sums.

    python infra/podman/task_startup.py .ecdflow/kfp-containers/work/logs/run-local-*.log
"""

from __future__ import annotations

import re
import sys
from datetime import datetime

_HOST = re.compile(r"^(\d\d:\d\d:\d\d\.\d+) - INFO - (Executing task '([^']+)'|"
                   r"Task '([^']+)' finished)")
_EXEC = re.compile(r"\[KFP Executor \d{4}-\d\d-\d\d (\d\d:\d\d:\d\d,\d+) ")


def _t(stamp: str) -> float:
    t = datetime.strptime(stamp.replace(",", "."), "%H:%M:%S.%f")
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


def task_phases(lines) -> list[tuple[str, float, float, float]]:
    """(task, start-up s, work s, tear-down s) for every finished task, in run order."""
    out, task, t0, first, last = [], None, 0.0, None, None
    for line in lines:
        if m := _HOST.match(line):
            if m.group(3):
                task, t0, first, last = m.group(3), _t(m.group(1)), None, None
            elif task and first is not None:
                end = _t(m.group(1))
                out.append((task, first - t0, last - first, end - last))
                task = None
        elif task and (m := _EXEC.search(line)):
            first = _t(m.group(1)) if first is None else first
            last = _t(m.group(1))
    return out


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        rows = task_phases(fh)
    print("| task | start-up s | work s | tear-down s |\n|---|---|---|---|")
    for task, up, work, down in rows:
        print(f"| {task} | {up:.1f} | {work:.1f} | {down:.1f} |")
    n = len(rows) or 1
    ups, downs = sum(r[1] for r in rows), sum(r[3] for r in rows)
    print(f"\n{len(rows)} tasks; start-up {ups:.0f} s in all ({ups / n:.1f} s per task), "
          f"tear-down {downs:.0f} s ({downs / n:.1f} s per task)")


if __name__ == "__main__":
    main(sys.argv[1])
