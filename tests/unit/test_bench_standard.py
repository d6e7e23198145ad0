"""The local-run log parser (bench/kfp_log.py) and the standard-run time split
(bench/bench_standard.py) on a synthetic kfp.local log that crosses midnight, holds a resumed
run and ends in the middle of a task (a run still going), and on one pipeline run's two
attempts (stopped mid-task, then continued with --resume, reusing finished runs): exact
sums."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

import pytest

from bench import bench_e2e, bench_standard
from bench.bench_standard import markdown, project, snapshot_uri, summarise
from bench.kfp_log import log_day, parse_kfp_log


def _exec(model: str, target: str, split: str) -> list[str]:
    """The executor-input part of a task block, as kfp.local echoes it."""
    overrides = json.dumps({"mlflow": {"experiment": "ecdflow"},
                            "training": {"epochs": 40, "patience": 6}})
    return ["    {", '        "inputs": {', '            "parameterValues": {',
            '                "pipeline_run_id": "777",', '                "profile": "standard",',
            f'                "target": "{target}",', f'                "model": "{model}",',
            f'                "split": "{split}",',
            f'                "overrides": {json.dumps(overrides)},',
            '                "params_file": ""', "            }", "        }", "    }"]


LOG = "\n".join([
    "23:59:50.000 - INFO - Running pipeline: 'ecd-elastic'",
    "23:59:50.500 - INFO - Executing task 'start'",
    "23:59:52.500 - INFO - Task 'start' finished with status SUCCESS",
    "23:59:53.000 - INFO - Executing task 'preprocess'",
    "00:00:03.000 - INFO - Task 'preprocess' finished with status SUCCESS",
    "00:00:03.500 - INFO - Executing task 'train'",
    *_exec("cnn3d", "K_VRH", "cv-0"),
    "    00:00:10 INFO    ecdflow.fit: cnn3d K_VRH cv-0: resuming after epoch 5 from /ck/x",
    "    00:00:30 INFO    ecdflow.train: cnn3d · K_VRH · cv-fold-0 · r0: MAE 9.00 RMSE 12.00 "
    "R2 0.800 GPa (8 epochs, 20.0 s)",
    "    00:01:01 INFO    ecdflow.train: cnn3d · K_VRH · cv-fold-0 · r1: MAE 9.50 RMSE 12.50 "
    "R2 0.790 GPa (12 epochs, 30.5 s)",
    "00:01:03.500 - INFO - Task 'train' finished with status SUCCESS",
    "00:01:03.500 - INFO - Task 'train' outputs:",
    """    Output: '[{"epochs": 8, "reused": false, "repeat": 0}, """
    """{"epochs": 12, "reused": false}]'""",
    "00:01:04.000 - INFO - Executing task 'train-2'",
    *_exec("rf_magpie", "K_VRH", "loeo-Cs"),
    "    00:01:12 INFO    ecdflow.train: rf_magpie · K_VRH · loeo-Cs · r0: MAE 11.00 RMSE 15.00 "
    "R2 0.500 GPa (1 epochs, 4.5 s)",
    "00:01:14.000 - INFO - Task 'train-2' finished with status SUCCESS",
    "00:01:14.500 - INFO - Executing task 'train-3'",
    *_exec("cnn3d", "K_VRH", "cv-1"),
    "    [KFP Executor 2026-12-01 00:01:20,000 INFO]: Looking for component `train`",
    "    00:01:40 INFO    ecdflow.train: cnn3d · K_VRH · cv-fold-1 · r0: MAE 9.00 RMSE 12.00 "
    "R2 0.800 GPa (10 epochs, 6.0 s)",
    "    00:01:45 INFO    ecdflow.tr",  # the block-buffered log ends mid-line
])
NAME = "run-local-20261130-235949.log"
PLAN = [{"model": "cnn3d", "target": "K_VRH", "split": "cv-0", "kind": "cv", "repeats": 2,
         "train_rows": 80},
        {"model": "cnn3d", "target": "K_VRH", "split": "cv-1", "kind": "cv", "repeats": 2,
         "train_rows": 80},
        {"model": "rf_magpie", "target": "K_VRH", "split": "loeo-Cs", "kind": "loeo",
         "repeats": 1, "train_rows": 90},
        {"model": "rf_magpie", "target": "K_VRH", "split": "loeo-Na", "kind": "loeo",
         "repeats": 1, "train_rows": 95},
        {"model": "fusion", "target": "K_VRH", "split": "cv-0", "kind": "cv", "repeats": 2,
         "train_rows": 80}]
MLFLOW = [{"model": "cnn3d", "target": "K_VRH", "split": "cv-0", "repeat": r, "epochs_run": e,
           "resumed_from_epoch": f, "n_train": 100, "epochs_max": 40}
          for r, e, f in ((0, 8, 5), (1, 12, 0))]


@pytest.fixture(scope="module")
def log():
    return parse_kfp_log(LOG, log_day(NAME))


def test_parse_tasks_across_midnight_and_cut_mid_task(log):
    assert [(t["task"], t["seconds"], t["status"]) for t in log["tasks"]] == [
        ("start", 2.0, "SUCCESS"), ("preprocess", 10.0, "SUCCESS"), ("train", 60.0, "SUCCESS"),
        ("train-2", 10.0, "SUCCESS")]
    assert [t["task"] for t in log["open"]] == ["train-3"]
    assert log["open"][0]["end"] is None and log["open"][0]["seconds"] is None
    assert log["first_start"] == datetime(2026, 11, 30, 23, 59, 50, 500000)
    assert log["last_end"] == datetime(2026, 12, 1, 0, 1, 14)
    assert log["last_seen"] == datetime(2026, 12, 1, 0, 1, 20)  # the executor's stamp
    assert log["pipeline_end"] is None and log["pipeline_run_id"] == "777"
    tr = log["tasks"][2]
    assert tr["params"] == {"pipeline_run_id": "777", "profile": "standard", "target": "K_VRH",
                            "model": "cnn3d", "split": "cv-0",
                            "overrides": json.dumps({"mlflow": {"experiment": "ecdflow"},
                                                     "training": {"epochs": 40,
                                                                  "patience": 6}})}
    assert tr["overrides"]["training"]["epochs"] == 40
    assert [(r["model"], r["repeat"], r["epochs"], r["train_s"], r["resumed_from"])
            for r in tr["runs"]] == [("cnn3d", 0, 8, 20.0, 5), ("cnn3d", 1, 12, 30.5, 0)]
    assert tr["train_s"] == 50.5 and tr["output"][1]["epochs"] == 12
    assert log["open"][0]["train_s"] == 6.0


def test_where_rows_add_up_to_the_elapsed_wall(log):
    r = summarise(log, PLAN, MLFLOW, epochs_max=40, keras={"cnn3d": True, "rf_magpie": False})
    assert not r["finished"]
    assert r["wall_s"] == 89.5  # 23:59:50.5 -> 00:01:20
    assert {k: (s["tasks"], s["seconds"]) for k, s in r["steps"].items()} == {
        "start": (1, 2.0), "preprocess": (1, 10.0), "train": (2, 70.0)}
    where = {w["what"]: w["seconds"] for w in r["where"]}
    assert where == {
        "start (task)": 2.0, "preprocess (task)": 10.0,
        "train cnn3d: train_seconds (data, fit, predict, logging)": 50.5,
        "train cnn3d: task overhead (start-up, imports, lookup)": 9.5,
        "train rf_magpie: train_seconds (data, fit, predict, logging)": 4.5,
        "train rf_magpie: task overhead (start-up, imports, lookup)": 5.5,
        "train-3 (still open, elapsed so far)": 5.5,
        "between tasks (kfp.local bookkeeping)": 2.0}
    assert sum(where.values()) == pytest.approx(r["wall_s"])
    assert [w["seconds"] for w in r["where"]] == sorted(where.values(), reverse=True)
    c = r["per_model"]["cnn3d"]
    assert (c["tasks"], c["resumed_tasks"], c["reused_tasks"], c["seconds"], c["train_s"],
            c["overhead_s"]) == (1, 1, 0, 60.0, 50.5, 9.5)
    # the resumed task is left out of the means; its resumed run out of the epochs
    assert c["per_kind"]["cv"] == {"tasks": 0, "mean_s": None}
    assert (c["epochs_mean"], c["epochs_limit"], c["early_stopped_runs"], c["epoch_runs"],
            c["n_train_mean"]) == (12, 40, 1, 1, 100)
    rf = r["per_model"]["rf_magpie"]
    assert rf["per_kind"]["loeo"] == {"tasks": 1, "mean_s": 10.0}
    assert rf["epochs_mean"] is None  # no epochs for a random forest


def test_projection_from_the_plan(log):
    r = summarise(log, PLAN, MLFLOW, epochs_max=40, keras={"cnn3d": True, "rf_magpie": False})
    pr = r["projection"]
    assert (pr["planned_tasks"], pr["finished_tasks"], pr["tasks_left"]) == (5, 2, 3)
    # rf loeo-Na: the loeo mean (10 s); cnn3d cv-1 (open 5.5 s): 2 x 30.5 s (the un-resumed
    # run) + 5.5 s mean overhead (rf's, the one clean task) - 5.5 s elapsed; fusion: unknown
    assert pr["per_model"]["rf_magpie"]["seconds"] == 10.0
    assert pr["per_model"]["cnn3d"]["seconds"] == 61.0
    assert pr["per_model"]["fusion"] == {"tasks": 1, "seconds": None,
                                         "how": "no finished run of this model yet"}
    assert pr["unknown"] == ["fusion"]
    assert (pr["seconds_left"], pr["total_s"]) == (71.0, 160.5)
    md = markdown({**r, "log": NAME, "parsed_at": "x", "log_mtime": "y", "tracking_uri": None,
                   "machine": {"cpu_count": 2}})
    assert "IN PROGRESS" in md and "LOWER BOUND" in md and "| train-3 (still open" in md


def test_projection_falls_back_on_mlflow_runs_the_log_has_not_shown_yet(log):
    fusion = {"model": "fusion", "target": "K_VRH", "split": "cv-0", "repeat": 0,
              "status": "FINISHED", "train_seconds": 40.0, "resumed_from_epoch": 0,
              "end": "2026-12-01T00:03:00"}
    r = summarise(log, PLAN, [*MLFLOW, fusion], epochs_max=40)
    pr = r["projection"]
    assert r["mlflow_only_runs"] == 1 and r["mlflow_train_s_per_run"] == {"fusion": 40.0}
    assert pr["per_model"]["fusion"]["seconds"] == 85.5  # 2 x 40 s + 5.5 s overhead
    assert pr["unknown"] == [] and pr["seconds_left"] == 156.5
    assert "(MLflow)" in pr["per_model"]["fusion"]["how"]
    assert r["mlflow_last_end"] == "2026-12-01T00:03:00"


def test_projection_scales_by_training_rows(log):
    """A LOEO task of a model with only CV runs measured: its one run takes the CV runs'
    seconds per training row x its own rows (LOEO trains on more materials than a fold)."""
    plan = [*PLAN, {"model": "cnn3d", "target": "K_VRH", "split": "loeo-Cs", "kind": "loeo",
                    "repeats": 1, "train_rows": 90}]
    r = summarise(log, plan, MLFLOW, epochs_max=40)
    # cnn3d cv-1: 61.0 (as above); loeo-Cs: 30.5 s / 80 rows x 90 rows + 5.5 s = 39.8
    assert r["projection"]["per_model"]["cnn3d"]["seconds"] == 61.0 + 39.8
    no_rows = [{**p, "train_rows": None} for p in plan]  # a remote table: unscaled
    r = summarise(log, no_rows, MLFLOW, epochs_max=40)
    assert r["projection"]["per_model"]["cnn3d"]["seconds"] == 61.0 + 36.0


def test_projection_uses_an_earlier_attempts_runs(log):
    """A restarted run: MLflow runs of an earlier pipeline run feed only the estimates."""
    prior = [{"model": "fusion", "target": "K_VRH", "split": "cv-0", "repeat": 0,
              "status": "FINISHED", "train_seconds": 40.0, "resumed_from_epoch": 0}]
    r = summarise(log, PLAN, MLFLOW, epochs_max=40, prior_runs=prior)
    assert r["projection"]["per_model"]["fusion"]["seconds"] == 85.5
    assert r["mlflow_only_runs"] == 0 and "fusion" not in r["per_model"]


def test_finished_run_has_no_projection():
    text = "\n".join(LOG.splitlines()[:5] + [
        "00:00:04.000 - INFO - Pipeline 'ecd-elastic' finished with status SUCCESS"])
    r = summarise(parse_kfp_log(text, log_day(NAME)), PLAN)
    assert r["finished"] and "projection" not in r
    assert r["wall_s"] == 12.5  # first task start -> last task end


def test_unfinished_plan_entries_not_double_counted(log):
    rows = summarise(log)["train_tasks"]
    pr = project(PLAN[:3], rows, log["open"], summarise(log)["per_model"], log["last_seen"])
    assert pr["tasks_left"] == 1 and pr["finished_not_in_plan"] == []


def test_e2e_uses_the_same_parser(log):
    r = bench_e2e.parse_log(LOG)
    assert r["steps"] == {"start": {"tasks": 1, "seconds": 2.0},
                          "preprocess": {"tasks": 1, "seconds": 10.0},
                          "train": {"tasks": 2, "seconds": 70.0}}
    assert r["unfinished_tasks"] == ["train-3"] and not r["finished"]
    assert [t["overhead_s"] for t in r["tasks"] if t["step"] == "train"] == [9.5, 5.5]


def test_sqlite_store_read_from_a_copy(tmp_path):
    src = tmp_path / "live.db"
    con = sqlite3.connect(src)
    con.execute("create table t (x int)")
    con.execute("insert into t values (3)")
    con.commit()
    con.close()
    before = src.read_bytes()
    (tmp_path / "snap").mkdir()
    uri = snapshot_uri(f"sqlite:///{src}", tmp_path / "snap")
    copy = uri.removeprefix("sqlite:///")
    assert copy != str(src) and src.read_bytes() == before
    assert sqlite3.connect(copy).execute("select x from t").fetchall() == [(3,)]
    assert snapshot_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"
    with pytest.raises(FileNotFoundError):
        snapshot_uri(f"sqlite:///{tmp_path}/none.db", tmp_path)


def test_main_writes_the_report_and_refuses_bad_input(tmp_path, monkeypatch, capsys):
    import bench.bench_standard as bs

    written = {}
    monkeypatch.setattr(bs, "load_plan", lambda profile, params=None: (PLAN, 40))
    monkeypatch.setattr(bs, "write_results",
                        lambda name, res, md: written.update(name=name, res=res, md=md))
    log = tmp_path / NAME
    log.write_text(LOG)
    res = bs.main(["--log", str(log)])
    assert written["name"] == "standard" and res["wall_s"] == 89.5
    assert res["profile"] == "standard" and res["projection"]["tasks_left"] == 3
    assert "IN PROGRESS" in written["md"] and res["mlflow_runs"] is None
    json.dumps(res)  # the JSON results are serialisable
    for argv, says in ((["--log", str(tmp_path / "none.log")], "no log"),
                       (["--log", str(log), "--tracking-uri", f"sqlite:///{tmp_path}/x.db"],
                        "no MLflow SQLite store")):
        with pytest.raises(SystemExit) as exc:
            bs.main(argv)
        assert exc.value.code == 2 and says in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# One pipeline run across two attempts: stopped mid-task, then continued with --resume
# ------------------------------------------------------------------------------------------


def _params(run_id: str, **values: str) -> list[str]:
    """An executor-input block with these parameter values."""
    return ["    {", '        "inputs": {', '            "parameterValues": {',
            f'                "pipeline_run_id": "{run_id}",',
            '                "profile": "standard",',
            *(f'                "{k}": "{v}",' for k, v in values.items()),
            '                "params_file": ""', "            }", "        }", "    }"]


def _train_line(stamp: str, model: str, fold: int, rep: int, epochs: int, secs: float) -> str:
    return (f"    {stamp} INFO    ecdflow.train: {model} · K_VRH · cv-fold-{fold} · r{rep}: "
            f"MAE 9.00 RMSE 12.00 R2 0.800 GPa ({epochs} epochs, {secs} s)")


#: attempt 1 of run 555: start, preprocess, rf cv-0 trained, then killed inside cnn3d cv-0
#: (its r0 done, r1 under way)
ATTEMPT1 = "\n".join([
    "10:00:00.000 - INFO - Running pipeline: 'ecd-elastic'",
    "10:00:01.000 - INFO - Executing task 'start'", *_params("555"),
    "10:00:03.000 - INFO - Task 'start' finished with status SUCCESS",
    "10:00:03.500 - INFO - Executing task 'preprocess'",
    "10:00:13.500 - INFO - Task 'preprocess' finished with status SUCCESS",
    "10:00:14.000 - INFO - Executing task 'train'",
    *_params("555", model="rf_magpie", target="K_VRH", split="cv-0"),
    _train_line("10:00:20", "rf_magpie", 0, 0, 1, 4.0),
    "10:00:21.000 - INFO - Task 'train' finished with status SUCCESS",
    "10:00:21.000 - INFO - Task 'train' outputs:",
    """    Output: '[{"reused": false, "repeat": 0}]'""",
    "10:00:21.500 - INFO - Executing task 'train-2'",
    *_params("555", model="cnn3d", target="K_VRH", split="cv-0"),
    _train_line("10:01:00", "cnn3d", 0, 0, 10, 35.0),
    "    [KFP Executor 2026-12-01 10:01:30,000 INFO]: still going",
])
#: attempt 2 (`--resume 555`: start gets a fresh id 999 and resume_run_id 555): rf cv-0
#: reused; cnn3d cv-0 reuses r0 and resumes r1 from epoch 3; rf cv-1 trained; cnn3d cv-1 open
ATTEMPT2 = "\n".join([
    "10:05:00.000 - INFO - Running pipeline: 'ecd-elastic'",
    "10:05:01.000 - INFO - Executing task 'start'", *_params("999", resume_run_id="555"),
    "10:05:03.000 - INFO - Task 'start' finished with status SUCCESS",
    "10:05:03.500 - INFO - Executing task 'preprocess'",
    "10:05:12.500 - INFO - Task 'preprocess' finished with status SUCCESS",
    "10:05:13.000 - INFO - Executing task 'train'",
    *_params("555", model="rf_magpie", target="K_VRH", split="cv-0"),
    "    10:05:17 INFO    ecdflow.train: rf_magpie K_VRH cv-0 r0: reusing finished run abc",
    "10:05:19.000 - INFO - Task 'train' finished with status SUCCESS",
    "10:05:19.000 - INFO - Task 'train' outputs:",
    """    Output: '[{"reused": true, "repeat": 0}]'""",
    "10:05:19.500 - INFO - Executing task 'train-2'",
    *_params("555", model="cnn3d", target="K_VRH", split="cv-0"),
    "    10:05:25 INFO    ecdflow.train: cnn3d K_VRH cv-0 r0: reusing finished run def",
    "    10:05:26 INFO    ecdflow.fit: cnn3d K_VRH cv-0: resuming after epoch 3 from /ck/r1",
    _train_line("10:05:40", "cnn3d", 0, 1, 8, 15.0),
    "10:05:42.000 - INFO - Task 'train-2' finished with status SUCCESS",
    "10:05:42.000 - INFO - Task 'train-2' outputs:",
    """    Output: '[{"reused": true, "repeat": 0}, {"reused": false, "repeat": 1}]'""",
    "10:05:42.500 - INFO - Executing task 'train-3'",
    *_params("555", model="rf_magpie", target="K_VRH", split="cv-1"),
    _train_line("10:05:48", "rf_magpie", 1, 0, 1, 5.0),
    "10:05:50.500 - INFO - Task 'train-3' finished with status SUCCESS",
    "10:05:51.000 - INFO - Executing task 'train-4'",
    *_params("555", model="cnn3d", target="K_VRH", split="cv-1"),
    "    [KFP Executor 2026-12-01 10:06:01,000 INFO]: still going",
])
NAMES = ("run-local-20261201-100000.log", "run-local-20261201-100500.log")
PLAN2 = [{"model": m, "target": "K_VRH", "split": sp, "kind": sp.partition("-")[0],
          "repeats": r, "train_rows": n}
         for m, sp, r, n in (("rf_magpie", "cv-0", 1, 80), ("rf_magpie", "cv-1", 1, 80),
                             ("cnn3d", "cv-0", 2, 80), ("cnn3d", "cv-1", 2, 80),
                             ("rf_magpie", "loeo-Cs", 1, 90))]


@pytest.fixture(scope="module")
def attempts():
    return [parse_kfp_log(text, log_day(name))
            for text, name in zip((ATTEMPT1, ATTEMPT2), NAMES, strict=True)]


def test_a_resumed_attempt_belongs_to_the_run_it_resumes(attempts):
    assert [a["pipeline_run_id"] for a in attempts] == ["555", "555"]
    assert [t["task"] for t in attempts[0]["open"]] == ["train-2"]
    rows = {r["task"]: r for r in bench_standard.train_tasks(attempts[1])}
    # all runs reused: no training; some reused, one resumed: it trained
    assert (rows["train"]["reused"], rows["train-2"]["reused"], rows["train-2"]["resumed"]) \
        == (True, False, True)


@pytest.mark.parametrize("order", [(0, 1), (1, 0)])
def test_wall_time_and_where_across_attempts(attempts, order):
    r = summarise([attempts[i] for i in order], PLAN2, epochs_max=40,
                  keras={"cnn3d": True, "rf_magpie": False})
    assert [(a["attempt"], a["span_s"], a["trained_tasks"], a["reused_tasks"], a["open_tasks"])
            for a in r["attempts"]] == [(1, 89.0, 1, 0, ["train-2"]),
                                        (2, 60.0, 2, 1, ["train-4"])]
    assert r["wall_s"] == 149.0 and r["pipeline_run_id"] == "555" and not r["finished"]
    assert r["restart_overhead"] == {"start run again": 2.0, "preprocess run again": 9.0,
                                     "training tasks reusing finished runs (1)": 6.0}
    assert r["restart_overhead_s"] == 17.0
    where = {w["what"]: w["seconds"] for w in r["where"]}
    assert where == {
        "start (task)": 2.0, "preprocess (task)": 10.0,
        "restart overhead: start run again": 2.0,
        "restart overhead: preprocess run again": 9.0,
        "restart overhead: training tasks reusing finished runs (1)": 6.0,
        "train rf_magpie: train_seconds (data, fit, predict, logging)": 9.0,
        "train rf_magpie: task overhead (start-up, imports, lookup)": 6.0,
        "train cnn3d: train_seconds (data, fit, predict, logging)": 15.0,
        "train cnn3d: task overhead (start-up, imports, lookup)": 7.5,
        "train cnn3d: task killed mid-way by a stop (its elapsed part, resumed later)": 68.5,
        "train-4 (still open, elapsed so far)": 10.0,
        "between tasks (kfp.local bookkeeping)": 4.0}
    assert sum(where.values()) == pytest.approx(r["wall_s"])
    # each training task once: cnn3d cv-0 = its killed part (68.5 s) + its resumed part (22.5 s)
    c, rf = r["per_model"]["cnn3d"], r["per_model"]["rf_magpie"]
    assert (c["tasks"], c["resumed_tasks"], c["reused_tasks"], c["seconds"], c["killed_s"]) == (
        1, 1, 0, 91.0, 68.5)
    assert (rf["tasks"], rf["reused_tasks"], rf["seconds"], rf["per_kind"]["cv"]) == (
        2, 1, 15.0, {"tasks": 2, "mean_s": 7.5})
    assert r["steps"]["train"] == {"tasks": 3, "seconds": 106.0}
    pr = r["projection"]
    # left: cnn3d cv-1 (open 10 s): 2 x 35 s (r0 of the killed part, not resumed) + 3 s mean
    # overhead (rf's clean tasks) - 10 s; rf loeo-Cs: 9 s / 160 rows x 90 rows + 3 s
    assert (pr["finished_tasks"], pr["tasks_left"]) == (3, 2)
    assert pr["per_model"]["cnn3d"]["seconds"] == 63.0
    assert pr["per_model"]["rf_magpie"]["seconds"] == 8.1
    assert (pr["seconds_left"], pr["total_s"]) == (71.1, 220.1)
    md = markdown({**r, "log": ", ".join(NAMES), "parsed_at": "x", "log_mtime": "y",
                   "tracking_uri": None, "machine": {"cpu_count": 2}})
    assert "## Attempts (2" in md and "restart overhead: start run again" in md


def test_a_stopped_attempt_ends_at_the_last_mlflow_run_end_before_the_next(attempts):
    """The log of a stopped attempt lags it: a run MLflow saw end later (before the next
    attempt began) extends the attempt's span, and the killed task's part with it."""
    ml = [{"model": "cnn3d", "target": "K_VRH", "split": "cv-0", "repeat": 1,
           "status": "KILLED", "end": "2026-12-01T10:01:40"},
          {"model": "rf_magpie", "target": "K_VRH", "split": "cv-1", "repeat": 0,
           "status": "FINISHED", "end": "2026-12-01T10:05:48"}]  # attempt 2's: no effect
    r = summarise(attempts, PLAN2, ml, epochs_max=40)
    assert [(a["span_s"], a["end_from"]) for a in r["attempts"]] == [
        (99.0, "MLflow run end"), (60.0, "log")]
    assert r["wall_s"] == 159.0 and r["per_model"]["cnn3d"]["killed_s"] == 78.5
    assert sum(w["seconds"] for w in r["where"]) == pytest.approx(159.0)


def test_main_takes_a_runs_attempts_from_a_logs_dir(tmp_path, monkeypatch, capsys):
    import bench.bench_standard as bs

    monkeypatch.setattr(bs, "load_plan", lambda profile, params=None: (PLAN2, 40))
    monkeypatch.setattr(bs, "write_results", lambda name, res, md: None)
    for text, name in zip((ATTEMPT1, ATTEMPT2), NAMES, strict=True):
        (tmp_path / name).write_text(text)
    older = tmp_path / NAME  # an older pipeline run (777): left out
    older.write_text(LOG)
    (tmp_path / "run-local-20261201-110000.log").write_text("")  # nothing logged yet
    res = bs.main(["--logs-dir", str(tmp_path)])
    assert [a["log"] for a in res["attempts"]] == list(NAMES)
    assert res["wall_s"] == 149.0 and res["pipeline_run_id"] == "555"
    assert bs.main(["--logs-dir", str(tmp_path), "--pipeline-run-id", "777"])["wall_s"] == 89.5
    res = bs.main(["--log", str(tmp_path / NAMES[1]), "--log", str(tmp_path / NAMES[0])])
    assert res["wall_s"] == 149.0
    json.dumps(res)
    capsys.readouterr()
    for argv, says in ((["--log", str(older), "--log", str(tmp_path / NAMES[0])],
                        "other pipeline runs"),
                       (["--logs-dir", str(tmp_path / "none")], "no such directory"),
                       (["--logs-dir", str(tmp_path), "--pipeline-run-id", "1"],
                        "no log of pipeline run 1")):
        with pytest.raises(SystemExit) as exc:
            bs.main(argv)
        assert exc.value.code == 2 and says in capsys.readouterr().err
