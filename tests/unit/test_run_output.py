"""The quiet `ecdflow pipeline run-local`: kfp.local's stream becomes one progress line per task
(index of N, model/target/split), everything lands in the log file, a failed task shows its
last lines; run names, the parent-run description and the serve command line."""

from __future__ import annotations

import re

import pytest

from ecdflow import tracking
from ecdflow.kfp.runners import TaskLog
from ecdflow.schema import RunKey

CYAN, GREEN, RED, RESET = "\033[96m", "\033[92m", "\033[91m", "\033[0m"


def _kfp_task(name: str, status: str = "SUCCESS", body: tuple[str, ...] = ()) -> str:
    """What kfp.local 2.13 writes to sys.stdout for one task (logging + indented prints)."""
    colour = GREEN if status == "SUCCESS" else RED
    lines = [f"14:30:27.936 - INFO - Executing task {CYAN}'{name}'{RESET}",
             "14:30:27.936 - INFO - Streamed logs:", "",
             "    [KFP Executor 2026-11-30 14:30:28,068 INFO]: Got executor_input:",
             '    {', '        "inputs": {}', '    }',
             "    2026-11-30 14:30:53.006521: E external/local_xla/xla/stream_executor/cuda/"
             "cuda_dnn.cc:8454] Unable to register cuDNN factory",
             *(f"    {b}" for b in body), ""]
    if status == "SUCCESS":
        lines += [f"14:30:45.072 - INFO - Task {CYAN}'{name}'{RESET} finished with status "
                  f"{colour}{status}{RESET}", f"14:30:45.073 - INFO - Task '{name}' outputs:",
                  "    run_id: '29587039'", "-" * 80]
    return "\n".join(lines) + "\n"


LABELS = {"start": "start", "train-21": "train rf_magpie G_VRH cv-fold-1",
          "train-5": "train fusion K_VRH cv-fold-0"}


@pytest.mark.parametrize("chunk", [1, 7, 10_000])  # however kfp.local's writes are cut
def test_quiet_stream_prints_one_line_per_task_and_logs_everything(tmp_path, chunk):
    out: list[str] = []
    cur = [""]

    def echo(msg: str = "", nl: bool = True) -> None:
        cur[0] += msg
        if nl:
            out.append(cur[0])
            cur[0] = ""

    log = tmp_path / "run.log"
    stream = TaskLog(echo, 3, LABELS, log)
    text = "".join(_kfp_task(t) for t in ("start", "train-21", "train-5"))
    for i in range(0, len(text), chunk):
        stream.write(text[i:i + chunk])
    stream.close()
    assert len(out) == 3
    assert re.fullmatch(r"\[1/3\] start \.\.\. done \d+ s", out[0])
    assert re.fullmatch(r"\[2/3\] train rf_magpie G_VRH cv-fold-1 \.\.\. done \d+ s", out[1])
    assert out[2].startswith("[3/3] train fusion K_VRH cv-fold-0 ... done")
    saved = log.read_text()
    assert saved.count("Unable to register cuDNN factory") == 3 and "\033[" not in saved
    assert stream.failed is None


def test_failed_task_is_named_and_its_last_lines_shown(tmp_path):
    out: list[str] = []
    stream = TaskLog(lambda m="", nl=True: out.append(m), 3, LABELS, tmp_path / "run.log",
                     tail=3)
    stream.write(_kfp_task("start"))
    stream.write(_kfp_task("train-5", "FAILURE", ("Traceback (most recent call last):",
                                                   "ValueError: grid 7 is not a multiple")))
    stream.finished("train-5", ok=False)  # kfp.local raises instead of logging the failure
    stream.close()
    assert stream.failed == "train fusion K_VRH cv-fold-0"
    assert out[-2].startswith("FAILED after")
    assert out[-1].splitlines()[-1].strip() == "ValueError: grid 7 is not a multiple"
    assert len(out[-1].splitlines()) == 3


def test_verbose_passes_everything_through(tmp_path):
    out: list[str] = []
    stream = TaskLog(lambda m="", nl=True: out.append(m), 1, LABELS, tmp_path / "run.log",
                     verbose=True)
    stream.write(_kfp_task("start"))
    stream.close()
    assert any("Got executor_input" in x for x in out) and not any(x.startswith("[1/1]")
                                                                   for x in out)


@pytest.mark.parametrize(("key", "label"), [
    (RunKey("cnn3d", "K_VRH", "cv-0", 0), "cnn3d · K_VRH · cv-fold-0 · r0"),
    (RunKey("fusion", "G_VRH", "cv-4", 3), "fusion · G_VRH · cv-fold-4 · r3"),
    (RunKey("rf_magpie", "K_VRH", "loeo-Cs", 0), "rf_magpie · K_VRH · loeo-Cs · r0"),
])
def test_run_labels(key, label):
    assert tracking.run_label(key) == label


def test_parent_note_holds_tables_legend_and_failure():
    tables = {"table2_cv": "| target | cnn3d |\n|---|---|\n| K_VRH | 0.9 / 10 |\n"}
    note = tracking.parent_note("42", tables, "/r/report.html", failed_task="train x")
    assert note.startswith("**FAILED** in task `train x`")
    assert "| K_VRH | 0.9 / 10 |" in note and tracking.RESULTS_LEGEND in note
    assert "/r/report.html" in note and tracking.CV_FILTER in note
    assert "No finished training runs." in tracking.parent_note("42", {})


def test_serve_command_sets_store_and_path(tmp_path, monkeypatch):
    from ecdflow.cli.serve import serve_command

    monkeypatch.setenv("PATH", "/usr/bin:/bin")
    argv, env = serve_command("sqlite:////s/mlflow.db", "sqlite:////s/mlflow.db",
                              "models:/m@champion", "127.0.0.1", 5009, 1, tmp_path)
    assert argv[:5] == [str(tmp_path / "mlflow"), "models", "serve", "-m", "models:/m@champion"]
    assert argv[argv.index("-p") + 1] == "5009" and "--env-manager" in argv
    assert env["MLFLOW_TRACKING_URI"] == "sqlite:////s/mlflow.db"
    assert env["PATH"].split(":")[0] == str(tmp_path)


def test_experiment_view_lists_cv_runs_with_metric_columns():
    import json

    tags = tracking.experiment_ui_tags()
    view = json.loads(tags[tracking.SHARED_VIEW_PREFIX + tracking.VIEW_CV])
    assert view["searchFilter"] == tracking.CV_FILTER
    assert f"metrics.`{tracking.METRIC_RMSE}`" in view["selectedColumns"]
    assert tags[tracking.EXPERIMENT_KIND_TAG] == "custom_model_development"


def test_click_echo_reaches_the_terminal_while_kfp_redirects_stdout(tmp_path, capsys):
    import contextlib

    import click

    stream = TaskLog(click.echo, 1, LABELS, tmp_path / "run.log")
    with contextlib.redirect_stdout(stream):  # what run_local does around kfp.local
        print(_kfp_task("start"), end="")
    stream.close()
    assert re.fullmatch(r"\[1/1\] start \.\.\. done \d+ s\n", capsys.readouterr().out)
