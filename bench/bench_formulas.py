"""Benchmark: Magpie featurisation of >= 5,000 formulas, and a composition-only table through
`ecdflow preprocess`.

Run: ``python -m bench.bench_formulas [--n 5000] [--no-preprocess] [--table PATH]
[--pipeline]``. Writes bench/results/formulas.json and formulas.md. The formulas are the
committed table's rows
(data/fcc/materials.jsonl) plus seeded generated binaries and ternaries of elements that have
every Magpie property (integer amounts 1-6, unique reduced formulas) up to ``--n``. Timed:

- ``ecdflow.features.featurize`` from formula strings (strict parse + the 132 features + the
  finiteness check), cold (empty in-memory cache) and warm; two threads at most (the goal is
  stated for 2 cores: < 30 s for 5,000 formulas);
- matminer's own ``ElementProperty.featurize`` on a sample, for the speed-up (per formula);
- ``run_preprocess`` (Beam DirectRunner) on the composition-only CSV of these formulas
  (material_id, formula, K_VRH, G_VRH; generated rows borrow the labels of a seeded committed
  row: a speed test, not data), end to end: table checks, Magpie, TFRecord write, read-back.

``--table PATH`` also keeps that CSV. ``--pipeline`` also times RF+Magpie under 5-fold CV
(both targets, no LOEO) THROUGH THE PIPELINE on that CSV, as a user runs it:
``ecdflow --params P --profile bench-formulas pipeline run-local --materials CSV --models
rf_magpie --folds all`` (kfp.local: start, preprocess, validate, 10 training tasks, evaluate,
register, external validation, gate; MLflow in a temporary work folder). Reported: the
command's wall time and, from MLflow, each training task's ``train_seconds`` and test MAE.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from bench import machine, write_results
from ecdflow.config import REPO_ROOT

TABLE = REPO_ROOT / "data" / "fcc" / "materials.jsonl"


def committed_rows() -> list[dict]:
    """(material_id, formula, K_VRH, G_VRH) of the committed table."""
    rows = [json.loads(ln) for ln in TABLE.read_text().splitlines() if ln.strip()]
    return [{k: r[k] for k in ("material_id", "formula", "K_VRH", "G_VRH")} for r in rows]


def formula_rows(n: int, seed: int = 0) -> list[dict]:
    """The committed rows plus seeded generated formulas, ``n`` rows in all (unique formulas)."""
    from pymatgen.core import Composition, Element

    from ecdflow.features import EXCLUDED_Z, property_table

    base = committed_rows()
    _, table = property_table()
    ok = [Element.from_Z(z).symbol for z in range(1, 84)
          if z not in EXCLUDED_Z and np.all(np.isfinite(table[z]))]
    rng = np.random.default_rng(seed)
    seen = {Composition(r["formula"]).reduced_formula for r in base}
    rows = list(base)
    while len(rows) < n:
        k = int(rng.integers(2, 4))
        els = rng.choice(ok, size=k, replace=False)
        amounts = rng.integers(1, 7, size=k)
        formula = "".join(f"{e}{a if a > 1 else ''}" for e, a in zip(els, amounts, strict=True))
        red = Composition(formula).reduced_formula
        if red in seen:
            continue
        seen.add(red)
        lab = base[int(rng.integers(len(base)))]
        rows.append({"material_id": f"gen-{len(rows):05d}", "formula": formula,
                     "K_VRH": lab["K_VRH"], "G_VRH": lab["G_VRH"]})
    return rows[:n]


def write_table(rows: list[dict], path: Path) -> Path:
    """The rows as a composition-only CSV."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("material_id,formula,K_VRH,G_VRH\n" + "".join(
        f"{r['material_id']},{r['formula']},{r['K_VRH']},{r['G_VRH']}\n" for r in rows))
    return path


def _time_featurize(formulas: list[str]) -> tuple[float, float, int]:
    from ecdflow import features

    features._row.cache_clear()
    features.featurize(["NaCl"])  # matminer data + property table loaded once (not timed)
    features._row.cache_clear()
    t0 = time.perf_counter()
    _, errors = features.featurize(formulas)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    features.featurize(formulas)
    warm = time.perf_counter() - t0
    return cold, warm, sum(bool(e) for e in errors)


def _time_matminer(formulas: list[str]) -> float:
    from pymatgen.core import Composition

    from ecdflow.features import _featurizer

    f = _featurizer()
    f.featurize(Composition("NaCl"))
    t0 = time.perf_counter()
    for s in formulas:
        f.featurize(Composition(s))
    return (time.perf_counter() - t0) / len(formulas)


def _time_preprocess(table: Path) -> dict:
    from ecdflow.config import load_settings
    from ecdflow.preprocess import run_preprocess

    with tempfile.TemporaryDirectory() as tmp:
        s = load_settings(overrides={"paths": {"work_dir": tmp},
                                     "records": {"num_shards": 2, "compression": ""}})
        t0 = time.perf_counter()
        man = run_preprocess(s, materials_path=str(table), out_dir=f"{tmp}/records")
        dt = time.perf_counter() - t0
    return {"seconds": round(dt, 1), "rows_per_s": round(man["counts"]["read"] / dt, 1),
            "counts": man["counts"], "has_density": man["has_density"]}


def _time_pipeline(table: Path, work: Path) -> dict:
    """RF+Magpie 5-fold CV of the composition-only ``table`` through
    ``ecdflow pipeline run-local`` (a subprocess, MLflow under ``work``)."""
    import os
    import re
    import subprocess
    import sys

    import yaml

    from ecdflow.config import load_settings
    from ecdflow.tracking import METRIC_MAE, TAG_SPLIT, TAG_TARGET, configure, pipeline_runs

    params = yaml.safe_load((REPO_ROOT / "params.yaml").read_text())
    params["profiles"]["bench-formulas"] = {
        "paths": {"work_dir": str(work), "records_dir": str(work / "records"),
                  "validation_dir": str(work / "validation"),
                  "reports_dir": str(work / "reports")},
        "splits": {"loeo_elements": []}, "mlflow": {"experiment": "bench-formulas"}}
    pfile = work / "params.yaml"
    work.mkdir(parents=True, exist_ok=True)
    pfile.write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k not in (
        "MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "ECDFLOW_WORK_DIR", "ECDFLOW_PROFILE")}
    env["ECDFLOW_NO_PROGRESS"] = "1"
    cmd = [str(Path(sys.executable).parent / "ecdflow"), "--params", str(pfile), "--profile",
           "bench-formulas", "pipeline", "run-local", "--materials", str(table), "--models",
           "rf_magpie", "--folds", "all"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=REPO_ROOT,
                          check=False)
    wall = time.perf_counter() - t0
    (work / "run-local.log").write_text(proc.stdout + proc.stderr)
    found = re.search(r"pipeline run (\S+): (\d+) tasks in (\d+) s", proc.stdout)
    if proc.returncode or not found:
        errors = [ln for ln in (proc.stdout + proc.stderr).splitlines() if " ERROR " in ln]
        raise SystemExit(f"pipeline run failed (exit {proc.returncode}): "
                         f"{(errors or (proc.stderr or proc.stdout).strip().splitlines())[-1]}")
    settings = load_settings(pfile, "bench-formulas")
    configure(settings)
    runs = pipeline_runs(settings, found.group(1), role="train")
    per = sorted(({"target": r.data.tags[TAG_TARGET], "split": r.data.tags[TAG_SPLIT],
                   "n_train": int(r.data.params["n_train"]),
                   "n_test": int(r.data.params["n_test"]),
                   "train_seconds": round(r.data.metrics["train_seconds"], 2),
                   "mae_gpa": round(r.data.metrics[METRIC_MAE], 2)} for r in runs),
                 key=lambda d: (d["target"], d["split"]))
    shown = ["ecdflow", *cmd[1:]]
    shown[shown.index(str(pfile))] = "<tmp>/params.yaml"  # profile bench-formulas, see above
    shown[shown.index(str(table))] = table.name
    return {"command": " ".join(shown), "wall_s": round(wall, 1),
            "load_average_1min": round(os.getloadavg()[0], 1),
            "tasks": int(found.group(2)), "runs": per,
            "cv_mae_gpa": {t: round(float(np.mean([d["mae_gpa"] for d in per
                                                   if d["target"] == t])), 2)
                           for t in sorted({d["target"] for d in per})},
            "train_seconds_total": round(sum(d["train_seconds"] for d in per), 1)}


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark and write its JSON and Markdown results."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=5000, help="formulas in all (>= the committed rows)")
    p.add_argument("--matminer-sample", type=int, default=300)
    p.add_argument("--no-preprocess", action="store_true")
    p.add_argument("--table", type=Path, default=None, help="keep the composition-only CSV here")
    p.add_argument("--pipeline", action="store_true",
                   help="also time RF+Magpie 5-fold CV through `ecdflow pipeline run-local`")
    a = p.parse_args(argv)
    from threadpoolctl import threadpool_limits

    rows = formula_rows(a.n)
    formulas = [r["formula"] for r in rows]
    with threadpool_limits(2):
        cold, warm, refused = _time_featurize(formulas)
        per_matminer = _time_matminer(formulas[:: max(1, len(formulas) // a.matminer_sample)])
    result = {
        "benchmark": "Magpie featurisation from formula strings (parse + 132 features + check)",
        "formulas": len(formulas), "committed": len(committed_rows()), "refused": refused,
        "featurize_cold_s": round(cold, 3), "featurize_warm_s": round(warm, 3),
        "formulas_per_s_cold": round(len(formulas) / cold, 1),
        "matminer_ms_per_formula": round(per_matminer * 1e3, 3),
        "speedup_vs_matminer": round(per_matminer * len(formulas) / cold, 1),
        "goal": "5,000 formulas < 30 s on 2 cores",
        "goal_met": bool(len(formulas) >= 5000 and cold < 30.0),
        "machine": machine(numpy=np.__version__),
    }
    with tempfile.TemporaryDirectory() as tmp:
        table = write_table(rows, a.table or Path(tmp) / "formulas.csv")
        if not a.no_preprocess:
            result["preprocess"] = _time_preprocess(table)
        if a.pipeline:
            result["pipeline"] = _time_pipeline(table, Path(tmp) / "work")
    md = ["# Magpie featurisation of formulas", "",
          f"{len(formulas)} formulas ({result['committed']} from data/fcc/materials.jsonl, the "
          "rest seeded binaries/ternaries), from strings to checked features, two threads at "
          f"most (machine: {result['machine']['cpu_count']} cores).", "",
          "| what | value |", "|---|---|",
          f"| featurize, cold cache | {cold:.2f} s ({result['formulas_per_s_cold']:.0f}/s) |",
          f"| featurize, warm cache | {warm:.3f} s |",
          f"| matminer ElementProperty, per formula | {result['matminer_ms_per_formula']} ms |",
          f"| speed-up over matminer (cold) | {result['speedup_vs_matminer']}x |",
          f"| goal: 5,000 formulas < 30 s | {'met' if result['goal_met'] else 'NOT met'} |"]
    if "preprocess" in result:
        pre = result["preprocess"]
        md += [f"| `preprocess` of the composition-only CSV (Beam DirectRunner) | "
               f"{pre['seconds']} s ({pre['rows_per_s']} rows/s), written "
               f"{pre['counts']['written']}, quarantined {pre['counts']['quarantined']} |"]
    if "pipeline" in result:
        pl = result["pipeline"]
        md += ["", "## RF+Magpie, 5-fold CV, through the pipeline", "",
               f"The same {len(formulas)}-row composition-only CSV (material_id, formula, K_VRH, "
               "G_VRH) through the whole pipeline under kfp.local (start, preprocess, "
               "validate, one training task per target x fold, evaluate, register, external "
               "validation, gate; density models are not planned for a composition-only "
               "table), as a user runs it:", "", f"    {pl['command']}", "",
               "| what | value |", "|---|---|",
               f"| whole pipeline run, wall time | {pl['wall_s']} s ({pl['tasks']} tasks) |",
               f"| RF+Magpie fits, sum of the {len(pl['runs'])} training tasks' "
               f"`train_seconds` | {pl['train_seconds_total']} s |",
               *(f"| CV test MAE {t} (mean over folds) | {v} GPa |"
                 for t, v in pl["cv_mae_gpa"].items()), "",
               "| target | split | n_train | n_test | train_seconds | test MAE (GPa) |",
               "|---|---|---|---|---|---|",
               *(f"| {d['target']} | {d['split']} | {d['n_train']} | {d['n_test']} | "
                 f"{d['train_seconds']} | {d['mae_gpa']} |" for d in pl["runs"]), "",
               "The labels of generated formulas are borrowed from seeded committed rows (a "
               "speed test, not data): the MAE says nothing about accuracy.",
               f"Load average (1 min) at the end of the run: {pl.get('load_average_1min')} "
               "(other jobs on the 2 cores slow every figure on this page).",
               "Reproduce: `python -m bench.bench_formulas --pipeline`."]
    write_results("formulas", result, "\n".join(md) + "\n")
    print(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
