"""A resumed local run leaves out the training tasks that already finished (every repeat, on the
newest data version) and its validate task refuses records of another data version."""

import json
import time

import pytest
import yaml

from ecdflow import tracking as tr
from ecdflow.config import load_settings
from ecdflow.errors import EcdflowError
from ecdflow.kfp.plan import Finished, build_plan, finished_tasks
from ecdflow.records import MANIFEST_NAME, SCHEMA_VERSION

RUN = "stopped-run"


@pytest.fixture
def settings(store_params):
    """The quick profile with 2 repeats per Keras model, tracking to a fresh store."""
    return load_settings(str(store_params), "quick", {"training": {"repeats": 2}})


def _log(s, model, target, split, repeat, data_hash, status="FINISHED", run=RUN):
    import mlflow

    exp = tr.configure(s)
    client = mlflow.MlflowClient()
    r = client.create_run(exp, tags={
        tr.TAG_PIPELINE_RUN: run, tr.TAG_ROLE: "train", tr.TAG_MODEL: model,
        tr.TAG_TARGET: target, tr.TAG_SPLIT: split, tr.TAG_REPEAT: str(repeat),
        tr.TAG_DATA_VERSION: data_hash})
    client.set_terminated(r.info.run_id, status)
    time.sleep(0.002)  # distinct start times: the newest run names the data version


def _by_model(plan, model, n=1):
    return [p for p in plan if p.model == model][:n]


@pytest.mark.parametrize("n_done", [0, 1, 3])
def test_finished_tasks_are_those_with_every_repeat_finished_on_the_newest_data(settings,
                                                                                 n_done):
    plan = build_plan(settings)
    rf = _by_model(plan, "rf_magpie", 4)
    cnn = _by_model(plan, "cnn3d", 3)
    # an older data version first, on more runs than the newest one and sorting after it: the
    # newest run names the version, not the most common or the largest
    old, new = "z-old", "a-new"
    for p in plan[:12]:
        for rep in (0, 1):
            _log(settings, p.model, p.target, p.split, rep, old)
    _log(settings, cnn[0].model, cnn[0].target, cnn[0].split, 1, old)  # other repeat, old data
    _log(settings, rf[3].model, rf[3].target, rf[3].split, 0, old)  # only on the old version
    for p in rf[:n_done]:  # 1 repeat each (scikit-learn): finished
        _log(settings, p.model, p.target, p.split, 0, new)
    _log(settings, cnn[0].model, cnn[0].target, cnn[0].split, 0, new)  # 1 of 2 repeats
    for rep in (0, 1):  # both repeats, but one of them FAILED
        _log(settings, cnn[1].model, cnn[1].target, cnn[1].split, rep, new,
             status="FAILED" if rep else "FINISHED")
    for rep in (0, 1):  # both repeats FINISHED: done
        _log(settings, cnn[2].model, cnn[2].target, cnn[2].split, rep, new)
    _log(settings, rf[0].model, rf[0].target, rf[0].split, 0, new, run="another-run")

    got = finished_tasks(settings, RUN, plan)
    assert got.tasks == frozenset([*rf[:n_done], cnn[2]])
    assert got.data_hash == new
    assert finished_tasks(settings, "no-such-run", plan) == Finished(frozenset(), None)


def test_resumed_local_graph_leaves_finished_tasks_out_and_keeps_the_plan_order(settings,
                                                                                tmp_path):
    from kfp import compiler
    from kfp.local.graph_utils import topological_sort

    from ecdflow.kfp.runners import build

    plan = build_plan(settings)
    done = frozenset(plan[::3])  # fusion's parts among them: it must not wait for absent tasks
    path = tmp_path / "resumed.yaml"
    compiler.Compiler().compile(build(settings, local=True, finished=Finished(done, "abc")),
                                str(path))
    ir = next(yaml.safe_load_all(path.read_text()))
    tasks = ir["root"]["dag"]["tasks"]
    stack = topological_sort({k: v.get("dependentTasks", []) for k, v in tasks.items()})
    ran = [tasks[k]["taskInfo"]["name"] for k in reversed(stack)]
    trains = [n for n in ran if n.startswith("train-")]
    assert trains == [p.task_name for p in plan if p not in done]
    assert ran.index("validate") < ran.index(trains[0])
    assert ran.index("evaluate") > max(ran.index(t) for t in trains)
    expect = tasks["validate"]["inputs"]["parameters"]["expect_data_hash"]
    assert expect["runtimeValue"]["constant"] == "abc"

    every = build(settings, local=True, finished=Finished(frozenset(plan), "abc"))
    names = {t.task_info.name for t in every.pipeline_spec.root.dag.tasks.values()}
    assert not any(n.startswith("train-") for n in names)
    assert {"validate", "evaluate"} <= names


def _records(tmp_path, data_hash):
    d = tmp_path / "records"
    d.mkdir()
    (d / MANIFEST_NAME).write_text(json.dumps({"schema_version": SCHEMA_VERSION,
                                               "data_hash": data_hash}))
    return str(d)


def test_validate_of_a_resumed_run_refuses_records_of_another_data_version(settings, tmp_path):
    from ecdflow.kfp.steps import step_validate

    records = _records(tmp_path, "new-data")
    with pytest.raises(EcdflowError) as err:
        step_validate("quick", "", "{}", records, str(tmp_path / "docs"),
                      expect_data_hash="old-data")
    msg = str(err.value)
    assert "\n" not in msg and "new-data" in msg and "old-data" in msg and "--resume" in msg
