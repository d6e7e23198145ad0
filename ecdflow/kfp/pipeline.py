"""The Kubeflow pipeline `ecd-elastic`: preprocess (Beam) -> validate (GX, gates the rest) ->
train one task per model x target x split -> evaluate -> register -> external validation ->
gate (the last three only when the run form's `register_models` is on). The gate records its
verdict on the challenger; moving the ``champion`` alias stays a human act (`ecdflow promote`).

The training tasks come from the configuration when the pipeline is built (a Python loop, not
``dsl.ParallelFor``: kfp.local refuses it, and KFP cannot size GPU requests at run time).
Run-form parameters default to the selected profile's values.

Imports the components and the plan, never a runner (``ecdflow.kfp.runners`` compiles, runs
and submits it).
"""

from kfp import dsl, kubernetes

from ecdflow.config import PipelineConfig, Settings
from ecdflow.kfp.components import (
    evaluate,
    external,
    finish,
    gate,
    preprocess,
    register,
    start,
    train,
    validate,
)
from ecdflow.kfp.plan import Finished, build_plan, dependencies

FIXED_TASKS = ("start", "preprocess", "validate", "evaluate", "register",
               "external-validation", "gate")
"""Display names of the tasks every pipeline has besides the planned training tasks."""


def configure_task(task: dsl.PipelineTask, cfg: PipelineConfig, name: str,
                   gpu: bool = False, caching: bool | None = None) -> dsl.PipelineTask:
    """Display name, resources, retries, caching, secrets and (training) GPU scheduling."""
    task.set_display_name(name)
    task.set_caching_options(cfg.caching if caching is None else caching)
    task.set_retry(num_retries=cfg.retries, backoff_duration=cfg.retry_backoff,
                   backoff_factor=cfg.retry_backoff_factor,
                   backoff_max_duration=cfg.retry_backoff_max)
    for secret, keys in cfg.secrets.items():
        kubernetes.use_secret_as_env(task, secret_name=secret,
                                     secret_key_to_env={k: k for k in keys})
    if gpu:
        task.set_cpu_request(cfg.train_cpu_request).set_memory_request(cfg.train_memory_request)
        task.set_memory_limit(cfg.train_memory_limit)
        if cfg.gpus_per_train_task > 0:
            task.set_accelerator_type(cfg.accelerator_type)
            task.set_accelerator_limit(cfg.gpus_per_train_task)
            for tol in cfg.gpu_tolerations:
                kubernetes.add_toleration(task, key=tol.key, operator=tol.operator,
                                          value=tol.value, effect=tol.effect)
            for key, value in cfg.gpu_node_selector.items():
                kubernetes.add_node_selector(task, label_key=key, label_value=value)
    else:
        task.set_cpu_request(cfg.cpu_request).set_memory_request(cfg.memory_request)
        task.set_memory_limit(cfg.memory_limit)
    return task


def build_pipeline(settings: Settings, params_file: str = "", local: bool = False,
                   finished: Finished | None = None):
    """The pipeline function for ``settings``. ``local``: no ``dsl.If`` (kfp.local refuses
    conditions; register, external validation and gate then skip themselves when
    ``register_models`` is false), and each training task waits for the one planned before it
    (kfp.local runs one task at a time, otherwise in an order set by a hash map; chained, a
    stopped long run has finished the CV splits first, see ``ecdflow.train.plan_runs``).

    ``finished`` (a resumed local run, ``ecdflow.plan.finished_tasks``): those training tasks
    are left out of the graph (each would only start, find its runs and reuse them) and the
    validate task checks the records still have the data version they trained on."""
    cfg = settings.pipeline
    plan = build_plan(settings)
    done = finished.tasks if finished else frozenset()
    expect_hash = (finished.data_hash or "") if finished else ""
    after = dependencies(plan)
    cpu, gpu_image = cfg.cpu_image, cfg.gpu_image
    train_image = gpu_image if cfg.gpus_per_train_task > 0 else cpu
    start_op, preprocess_op = start.component(cpu), preprocess.component(cpu)
    validate_op, train_op = validate.component(cpu), train.component(train_image)
    evaluate_op, external_op = evaluate.component(cpu), external.component(cpu)
    register_op, gate_op = register.component(cpu), gate.component(cpu)
    finish_op = finish.component(cpu)
    tr = settings.training

    def _body(materials_path, data_version, epochs, batch_size, patience, lr_scale, seed,
              mlflow_experiment, register_models, promotion_margin, profile, params_file,
              resume_run_id):
        s = configure_task(start_op(
            pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, profile=profile,
            params_file=params_file, materials_path=materials_path, data_version=data_version,
            epochs=epochs, batch_size=batch_size, patience=patience, lr_scale=lr_scale,
            seed=seed, experiment=mlflow_experiment, margin=promotion_margin,
            resume_run_id=resume_run_id), cfg, "start", caching=False)
        common = {"profile": profile, "params_file": params_file,
                  "overrides": s.outputs["overrides"]}
        run_id = s.outputs["run_id"]
        pre = configure_task(preprocess_op(
            data_fingerprint=s.outputs["data_fingerprint"], **common), cfg, "preprocess")
        val = configure_task(validate_op(records=pre.outputs["records"],
                                         expect_data_hash=expect_hash, **common),
                             cfg, "validate")
        tasks: dict = {}
        for run in (r for r in plan if r not in done):
            t = configure_task(train_op(
                model=run.model, target=run.target, split=run.split,
                records=pre.outputs["records"], parent_run_id=s.outputs["parent_run_id"],
                pipeline_run_id=run_id, **common), cfg, run.task_name, gpu=True)
            t.after(val, *(tasks[r] for r in after.get(run, []) if r in tasks))
            if local and tasks:  # kfp.local runs one task at a time in an order of its own
                t.after(list(tasks.values())[-1])  # (a hash order): keep the plan's order
            tasks[run] = t
        ev = configure_task(evaluate_op(pipeline_run_id=run_id, **common), cfg, "evaluate",
                            caching=False)
        ev.after(val, *tasks.values())

        def register_then_check() -> None:
            reg = configure_task(register_op(pipeline_run_id=run_id, enabled=register_models,
                                             **common), cfg, "register", caching=False)
            reg.after(ev)
            ext = configure_task(external_op(pipeline_run_id=run_id, enabled=register_models,
                                             **common), cfg, "external-validation",
                                 caching=False)
            ext.after(reg)
            verdict = configure_task(gate_op(pipeline_run_id=run_id, enabled=register_models,
                                             **common), cfg, "gate", caching=False)
            verdict.after(ext)

        if local:  # kfp.local refuses dsl.If: the steps skip themselves when switched off
            register_then_check()
        else:
            with dsl.If(register_models == True, name="register-models"):  # noqa: E712
                register_then_check()
        return run_id

    @dsl.pipeline(name=cfg.name, description=(
        "Elastic moduli (K_VRH, G_VRH, GPa) of Fm-3m crystals from their 3D electronic charge "
        f"density: {len(plan)} training tasks (profile {settings.profile})."))
    def ecd_elastic(
        materials_path: str = settings.paths.materials,
        data_version: str = "",
        epochs: int = tr.epochs,
        batch_size: int = tr.batch_size,
        patience: int = tr.patience,
        lr_scale: float = 1.0,
        seed: int = settings.seed,
        mlflow_experiment: str = settings.mlflow.experiment,
        register_models: bool = True,
        promotion_margin: float = settings.registry.margin,
        profile: str = settings.profile,
        params_file: str = params_file,
        resume_run_id: str = "",
    ) -> str:
        if not local:  # the exit task closes the MLflow parent run whatever happens
            done = configure_task(finish_op(
                pipeline_run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER, profile=profile,
                params_file=params_file, experiment=mlflow_experiment), cfg, "finish",
                caching=False)
            with dsl.ExitHandler(done, name="close-mlflow-run"):
                _body(materials_path, data_version, epochs, batch_size, patience, lr_scale,
                      seed, mlflow_experiment, register_models, promotion_margin, profile,
                      params_file, resume_run_id)
            return done.output  # the pipeline run id (outputs may not leave the handler)
        return _body(materials_path, data_version, epochs, batch_size, patience, lr_scale,
                     seed, mlflow_experiment, register_models, promotion_margin, profile,
                     params_file, resume_run_id)

    return ecd_elastic

