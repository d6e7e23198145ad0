"""`python -m bench` (`make bench`): run every benchmark module, each writing its own results
under bench/results/, then an index (bench/results/index.md) with the machine noted.

Run one with `python -m bench ecd` (module names without the `bench_` prefix). Benchmarks of a
run made elsewhere take their own arguments and are run by name only, not by `make bench`:
`python -m bench standard --logs-dir <work_dir>/logs [--tracking-uri URI]`
(bench/bench_standard.py).
"""

from __future__ import annotations

import importlib
import json
import sys
import time

from bench import RESULTS, machine

MODULES = ["ecd", "records", "s3", "train", "beam", "e2e", "formulas", "serve"]
BY_NAME = ["standard"]  # with their own arguments; not in the default set, no index line


def main(argv: list[str]) -> int:
    """Run the named benchmarks (default: all) and write the index."""
    if argv and argv[0] in BY_NAME:
        importlib.import_module(f"bench.bench_{argv[0]}").main(argv[1:])
        return 0
    names = argv or MODULES
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        print(f"error: unknown benchmark(s) {unknown}; known: {MODULES + BY_NAME}",
              file=sys.stderr)
        return 2
    lines = ["# Benchmark index", "", f"Machine: `{json.dumps(machine())}`", "",
             "| benchmark | seconds | results |", "|---|---|---|"]
    for name in names:
        mod = importlib.import_module(f"bench.bench_{name}")
        t0 = time.perf_counter()
        mod.main([])
        dt = time.perf_counter() - t0
        files = sorted(p.name for p in RESULTS.glob(f"{name}*"))
        lines.append(f"| {name} | {dt:.0f} | {', '.join(files)} |")
        print(f"bench {name}: {dt:.0f} s", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "index.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
