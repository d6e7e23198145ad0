"""The `ecd-elastic` pipeline compiles to IR YAML with every task, GPU requests on training,
retries, caching and secrets; components stay thin; submit fails fast when nothing answers."""

import ast
import socket
import time
from pathlib import Path

import pytest
import yaml

from ecdflow.cli import cli
from ecdflow.cli.common import run_main
from ecdflow.config import REPO_ROOT, load_settings
from ecdflow.errors import EcdflowError
from ecdflow.kfp.plan import build_plan, dependencies
from ecdflow.kfp.runners import compile_pipeline
from ecdflow.kfp.steps import run_overrides, scaled_learning_rates, task_settings

COMPONENTS = ["start", "preprocess", "validate", "train", "evaluate", "external", "register",
              "gate", "finish"]


def _load(path: Path) -> tuple[dict, dict]:
    docs = list(yaml.safe_load_all(path.read_text()))
    return docs[0], docs[1]["platforms"]["kubernetes"]["deploymentSpec"]["executors"]


def _all_tasks(ir: dict) -> dict[str, dict]:
    """Every container task of the root DAG and of nested DAGs (conditions), keyed by display
    name (the condition groups themselves are left out)."""
    out = {}

    def walk(dag: dict) -> None:
        for task in dag.get("tasks", {}).values():
            sub = ir["components"][task["componentRef"]["name"]].get("dag")
            if sub:
                walk(sub)
            else:
                out[task["taskInfo"]["name"]] = task

    walk(ir["root"]["dag"])
    return out


def _task_keys(ir: dict) -> dict[str, str]:
    """Display name -> task key, over the root DAG and every nested DAG (exit handler,
    conditions)."""
    out = {}

    def walk(dag: dict) -> None:
        for key, task in dag.get("tasks", {}).items():
            out[task["taskInfo"]["name"]] = key
            sub = ir["components"][task["componentRef"]["name"]].get("dag")
            if sub:
                walk(sub)

    walk(ir["root"]["dag"])
    return out


def _nested_tasks(ir: dict) -> list[dict]:
    """Every task dict of every DAG (groups included)."""
    out = []

    def walk(dag: dict) -> None:
        for task in dag.get("tasks", {}).values():
            out.append(task)
            sub = ir["components"][task["componentRef"]["name"]].get("dag")
            if sub:
                walk(sub)

    walk(ir["root"]["dag"])
    return out


def _executor(ir: dict, task: dict) -> str:
    return ir["components"][task["componentRef"]["name"]]["executorLabel"]


@pytest.fixture(scope="module")
def quick():
    return load_settings(profile="quick")


@pytest.fixture(scope="module")
def compiled(quick, tmp_path_factory):
    path = compile_pipeline(quick, tmp_path_factory.mktemp("ir") / "ecd-elastic.yaml")
    ir, k8s = _load(path)
    return ir, k8s, _all_tasks(ir)


def test_every_step_and_every_planned_training_task_is_in_the_yaml(quick, compiled):
    ir, _, tasks = compiled
    plan = build_plan(quick)
    assert ir["pipelineInfo"]["name"] == "ecd-elastic"
    assert len(plan) == len(quick.targets) * len(quick.models.enabled) * 3  # cv-0, cv-1, loeo-Cs
    expected = {"start", "preprocess", "validate", "evaluate", "external-validation",
                "register", "gate"} | {r.task_name for r in plan}
    assert expected <= set(tasks)
    assert "train-cnn3d-k-vrh-cv-0" in tasks and "train-fusion-g-vrh-loeo-cs" in tasks
    assert len([n for n in tasks if n.startswith("train-")]) == len(plan)


def test_training_tasks_request_one_gpu_with_toleration_and_node_selector(quick, compiled):
    ir, k8s, tasks = compiled
    executors = ir["deploymentSpec"]["executors"]
    for name, task in tasks.items():
        label = _executor(ir, task)
        container = executors[label]["container"]
        resources = container.get("resources", {})
        if name.startswith("train-"):
            assert resources["accelerator"]["resourceType"] == "nvidia.com/gpu"
            assert resources["accelerator"]["resourceCount"] == "1"
            assert resources["resourceCpuRequest"] == quick.pipeline.train_cpu_request
            assert resources["resourceMemoryRequest"] == quick.pipeline.train_memory_request
            assert container["image"] == quick.pipeline.gpu_image
            assert k8s[label]["tolerations"] == [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
            assert k8s[label]["nodeSelector"]["labels"] == quick.pipeline.gpu_node_selector
        else:
            assert "accelerator" not in resources, name
            assert container["image"] == quick.pipeline.cpu_image
            assert "tolerations" not in k8s.get(label, {})


def test_every_task_retries_with_backoff_and_mounts_the_secrets(quick, compiled):
    ir, k8s, tasks = compiled
    cfg = quick.pipeline
    for name, task in tasks.items():
        policy = task["retryPolicy"]
        assert policy["maxRetryCount"] == cfg.retries, name
        assert policy["backoffDuration"] == cfg.retry_backoff
        assert policy["backoffFactor"] == cfg.retry_backoff_factor
        mounted = {s["secretName"]: {e["secretKey"]: e["envVar"] for e in s["keyToEnv"]}
                   for s in k8s[_executor(ir, task)]["secretAsEnv"]}
        assert mounted == {k: {v: v for v in keys} for k, keys in cfg.secrets.items()}, name


def test_caching_keyed_on_inputs_for_data_and_training_not_for_run_bound_steps(compiled):
    ir, _, tasks = compiled
    cached = {n: t.get("cachingOptions", {}).get("enableCache", False) for n, t in tasks.items()}
    assert cached["preprocess"] and cached["validate"]
    assert all(v for n, v in cached.items() if n.startswith("train-"))
    assert not any(cached[n] for n in ("start", "evaluate", "external-validation", "register",
                                       "gate"))
    # preprocess's cache key includes the table's content hash (via the start task)
    pre = tasks["preprocess"]["inputs"]["parameters"]["data_fingerprint"]
    assert pre["taskOutputParameter"] == {"outputParameterKey": "data_fingerprint",
                                          "producerTask": "start"}


def test_validation_gates_training_and_fusion_waits_for_its_parts(quick, compiled):
    ir, _, tasks = compiled
    key_of = _task_keys(ir)
    for run, parts in dependencies(build_plan(quick)).items():
        deps = set(tasks[run.task_name]["dependentTasks"])
        assert {key_of[p.task_name] for p in parts} <= deps
        assert {p.model for p in parts} == {"cnn_magpie", "cnn2d_se"}
    for name, task in tasks.items():
        if name.startswith("train-"):
            assert key_of["validate"] in task["dependentTasks"]
            assert task["inputs"]["artifacts"]["records"]["taskOutputArtifact"][
                "producerTask"] == key_of["preprocess"]
    evaluate_deps = set(tasks["evaluate"]["dependentTasks"])
    assert {key_of[r.task_name] for r in build_plan(quick)} <= evaluate_deps


def test_register_and_external_check_are_conditional_on_the_run_form_switch(compiled):
    ir, _, _ = compiled
    conditions = [t for t in _nested_tasks(ir) if "condition" in t.get("triggerPolicy", {})]
    assert len(conditions) == 1
    assert "register_models" in conditions[0]["triggerPolicy"]["condition"]
    inner = ir["components"][conditions[0]["componentRef"]["name"]]["dag"]["tasks"]
    assert sorted(t["taskInfo"]["name"] for t in inner.values()) == [
        "external-validation", "gate", "register"]
    assert inner["external"]["dependentTasks"] == ["register"]
    assert inner["gate"]["dependentTasks"] == ["external"]


def test_cluster_run_closes_its_mlflow_run_in_an_exit_handler(compiled, quick, tmp_path):
    """Whatever fails, a cluster run's last task ends the MLflow parent run (kfp.local has no
    exit handlers: run-local closes it itself)."""
    from kfp import compiler

    from ecdflow.kfp.runners import build

    ir, _, tasks = compiled
    root = ir["root"]["dag"]["tasks"]
    assert set(root) == {"exit-handler-1", "finish"}
    assert root["finish"]["triggerPolicy"] == {"strategy": "ALL_UPSTREAM_TASKS_COMPLETED"}
    assert root["finish"]["dependentTasks"] == ["exit-handler-1"]
    assert "status" in root["finish"]["inputs"]["parameters"]
    guarded = {t["taskInfo"]["name"] for t in _nested_tasks(ir)} - {"finish"}
    assert {"start", "preprocess", "validate", "evaluate", "register", "gate"} <= guarded
    assert ir["root"]["dag"]["outputs"]["parameters"]["Output"]["valueFromParameter"][
        "producerSubtask"] == "finish"
    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(build(quick, local=True), str(path))
    local, _ = _load(path)
    assert "finish" not in {t["taskInfo"]["name"] for t in _nested_tasks(local)}


def test_step_finish_ends_the_parent_run_with_the_final_state(store_params):
    import mlflow

    from ecdflow import tracking
    from ecdflow.kfp.steps import step_finish

    params = store_params
    s = load_settings(str(params), "quick")
    for pid, state, status in (("ok-run", "SUCCEEDED", "FINISHED"),
                               ("bad-run", "FAILED", "FAILED")):
        parent = tracking.start_parent_run(s, pid)
        assert step_finish(pid, "quick", str(params), "", state,
                           "train-cnn3d failed\ntraceback...") == pid
        run = mlflow.MlflowClient().get_run(parent)
        assert run.info.status == status
        if status == "FAILED":
            assert run.data.tags[tracking.TAG_FAILED_TASK] == "FAILED: train-cnn3d failed"


def test_run_form_parameters_are_typed_with_profile_defaults(quick, compiled):
    ir, _, _ = compiled
    params = ir["root"]["inputDefinitions"]["parameters"]
    types = {k: v["parameterType"] for k, v in params.items()}
    assert types == {
        "materials_path": "STRING", "data_version": "STRING", "epochs": "NUMBER_INTEGER",
        "batch_size": "NUMBER_INTEGER", "patience": "NUMBER_INTEGER", "lr_scale": "NUMBER_DOUBLE",
        "seed": "NUMBER_INTEGER", "mlflow_experiment": "STRING", "register_models": "BOOLEAN",
        "promotion_margin": "NUMBER_DOUBLE", "profile": "STRING", "params_file": "STRING",
        "resume_run_id": "STRING"}
    assert params["epochs"]["defaultValue"] == quick.training.epochs == 8
    assert params["profile"]["defaultValue"] == "quick"
    assert params["materials_path"]["defaultValue"] == quick.paths.materials


def test_paper_profile_plans_every_fold_and_element(tmp_path):
    paper = load_settings(profile="paper")
    plan = build_plan(paper)
    splits = {r.split for r in plan}
    assert {f"cv-{k}" for k in range(5)} <= splits
    assert all(r.model != "fusion" or plan.index(r) > max(plan.index(p) for p in deps)
               for r, deps in dependencies(plan).items())


@pytest.mark.parametrize("profile", ["quick", "standard", "paper"])
def test_plan_runs_every_cv_split_before_any_loeo_split(profile):
    """A long run stopped part-way has Table 2 (CV, both targets) before Table 3 (LOEO)."""
    plan = build_plan(load_settings(profile=profile))
    kinds = [r.split.split("-")[0] for r in plan]
    assert "loeo" in kinds and kinds == sorted(kinds)  # "cv" < "loeo"
    cv_targets = {r.target for r in plan if r.split.startswith("cv")}
    assert cv_targets == set(load_settings(profile=profile).targets)


def test_cpu_only_training_drops_gpu_requests(tmp_path):
    s = load_settings(profile="quick", overrides={"pipeline": {"gpus_per_train_task": 0}})
    ir, k8s = _load(compile_pipeline(s, tmp_path / "cpu.yaml"))
    for label, ex in ir["deploymentSpec"]["executors"].items():
        assert "accelerator" not in ex["container"].get("resources", {})
        assert ex["container"]["image"] == s.pipeline.cpu_image
        assert "tolerations" not in k8s[label] and "nodeSelector" not in k8s[label]


def test_local_build_has_no_condition_kfp_local_would_refuse(quick, tmp_path):
    from kfp import compiler

    from ecdflow.kfp.runners import build

    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(build(quick, local=True), str(path))
    ir, _ = _load(path)
    assert not any("triggerPolicy" in t for t in ir["root"]["dag"]["tasks"].values())
    names = {t["taskInfo"]["name"] for t in ir["root"]["dag"]["tasks"].values()}
    assert {"register", "external-validation", "gate"} <= names


@pytest.mark.parametrize("seed", range(5))
def test_kfp_local_runs_the_training_tasks_in_plan_order(quick, tmp_path, seed):
    """kfp.local orders tasks by a depth-first walk over its (hash-ordered) task map: whatever
    that order, the local graph makes the training tasks run as planned (CV before LOEO)."""
    import random

    from kfp import compiler
    from kfp.local.graph_utils import topological_sort

    from ecdflow.kfp.runners import build

    path = tmp_path / "local.yaml"
    compiler.Compiler().compile(build(quick, local=True), str(path))
    ir, _ = _load(path)
    tasks = ir["root"]["dag"]["tasks"]
    keys = list(tasks)
    random.Random(seed).shuffle(keys)
    stack = topological_sort({k: tasks[k].get("dependentTasks", []) for k in keys})
    ran = [tasks[k]["taskInfo"]["name"] for k in reversed(stack)]
    trains = [n for n in ran if n.startswith("train-")]
    assert trains == [r.task_name for r in build_plan(quick)]
    assert ran.index("validate") < ran.index(trains[0]) and ran.index("evaluate") > ran.index(
        trains[-1])


def test_component_bodies_are_one_library_call():
    for name in COMPONENTS:
        tree = ast.parse((REPO_ROOT / "ecdflow" / "kfp" / "components" / f"{name}.py").read_text())
        func = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
        body = [n for n in func.body
                if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        assert len(body) == 2, name
        assert isinstance(body[0], ast.ImportFrom) and body[0].module == "ecdflow.kfp.steps"
        assert isinstance(body[1], ast.Return) and isinstance(body[1].value, ast.Call)
        assert body[1].value.func.id == f"step_{name}"


def test_run_overrides_keep_ints_and_validate_through_the_config():
    ov = run_overrides(materials_path="x.jsonl", epochs=3, batch_size=0, patience=2, seed=7,
                       experiment="exp", margin=0.05)
    assert ov == {"paths": {"materials": "x.jsonl"}, "training": {"epochs": 3, "patience": 2},
                  "seed": 7, "mlflow": {"experiment": "exp"}, "registry": {"margin": 0.05}}
    import json

    s = task_settings("quick", "", json.dumps(ov))
    assert s.training.epochs == 3 and isinstance(s.training.epochs, int)
    assert s.training.batch_size == 32  # 0 kept the profile's value
    with pytest.raises(EcdflowError, match="training.epochs"):
        task_settings("quick", "", json.dumps(run_overrides(epochs=-1)))


def test_learning_rate_scale_multiplies_every_model_rate(quick):
    assert scaled_learning_rates(quick, 1.0) == {}
    params = scaled_learning_rates(quick, 0.5)["models"]["params"]
    assert params["cnn3d"]["learning_rate"] == pytest.approx(2.5e-4)  # paper 5e-4
    assert params["cnn_magpie"]["learning_rate"] == pytest.approx(5e-4)
    assert "rf_magpie" not in params  # no learning rate
    with pytest.raises(EcdflowError, match="> 0"):
        scaled_learning_rates(quick, 0.0)


def test_cli_compile_writes_the_yaml(tmp_path, capsys):
    out = tmp_path / "p.yaml"
    assert run_main(cli, ["pipeline", "compile", "--out", str(out)]) == 0
    assert "30 training tasks" in capsys.readouterr().out  # 5 models x 2 targets x 3 splits
    assert _load(out)[0]["pipelineInfo"]["name"] == "ecd-elastic"


def test_submit_to_an_unreachable_host_fails_fast_in_one_line(capsys):
    with socket.socket() as sock:  # a free port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    t0 = time.perf_counter()
    code = run_main(cli, ["pipeline", "submit", "--host", f"http://127.0.0.1:{port}",
                          "--timeout", "2"])
    assert time.perf_counter() - t0 < 10
    err = capsys.readouterr().err
    assert code == 2
    assert f"cannot reach the KFP API at http://127.0.0.1:{port}" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_run_parameter_syntax_is_a_one_line_error(capsys):
    assert run_main(cli, ["pipeline", "submit", "--host", "http://127.0.0.1:9",
                          "--param", "epochs"]) == 2
    assert "expected NAME=VALUE" in capsys.readouterr().err


def test_the_gate_task_shows_its_verdict_as_a_metrics_output(compiled):
    ir, _, tasks = compiled
    comp = ir["components"][tasks["gate"]["componentRef"]["name"]]
    assert comp["outputDefinitions"]["artifacts"]["verdict"]["artifactType"][
        "schemaTitle"] == "system.Metrics"
    assert "pipeline_run_id" in tasks["gate"]["inputs"]["parameters"]
