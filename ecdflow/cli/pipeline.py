"""CLI: `ecdflow pipeline compile | run-local | submit` (the Kubeflow pipeline `ecd-elastic`)."""

from __future__ import annotations

import json

import click

from ecdflow.cli.common import settings as load
from ecdflow.cli.common import verbose
from ecdflow.errors import EcdflowError


def _params_file(ctx: click.Context) -> str | None:
    return (ctx.find_root().obj or {}).get("params_file")


def _arguments(pairs: tuple[str, ...]) -> dict:
    """``name=value`` run parameters; values parsed as JSON when they can be (ints, floats,
    booleans), else kept as strings."""
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise EcdflowError(f"--param '{pair}': expected NAME=VALUE, e.g. epochs=20")
        try:
            out[name] = json.loads(value)
        except json.JSONDecodeError:
            out[name] = value
    return out


def _plan_overrides(materials: str | None, models: str | None, folds: str | None) -> dict:
    """Config overrides of the build-time plan: the materials table (absolute, checked),
    the models to train (comma-separated) and the CV folds (``all`` or e.g. ``0,1``)."""
    from pathlib import Path

    ov: dict = {}
    if materials:
        path = Path(materials).expanduser().resolve()
        if not path.is_file():
            raise EcdflowError(f"--materials {materials}: no such file")
        ov["paths"] = {"materials": str(path)}
    if models:
        from ecdflow.models import get_spec

        names = [m.strip() for m in models.split(",") if m.strip()]
        for m in names:
            get_spec(m)  # an unknown name fails here, in one line
        ov["models"] = {"enabled": names}
    if folds:
        if folds.strip().lower() == "all":
            ov["splits"] = {"folds": None}
        else:
            try:
                ov["splits"] = {"folds": [int(k) for k in folds.split(",") if k.strip()]}
            except ValueError:
                raise EcdflowError(f"--folds '{folds}': expected 'all' or fold numbers such "
                                   "as 0,1") from None
    return ov


def plan_options(f):
    """--materials, --models and --folds (shared by compile and run-local)."""
    f = click.option("--folds", default=None, metavar="all|K,K",
                     help="CV folds to train: 'all' or e.g. 0,1 (default: the profile's).")(f)
    f = click.option("--models", default=None, metavar="M,M",
                     help="Models to train, comma-separated, e.g. rf_magpie,cnn_magpie "
                          "(default: the profile's models.enabled).")(f)
    f = click.option("--materials", default=None, type=click.Path(dir_okay=False),
                     help="Materials table (JSONL with structures, or a composition-only "
                          "CSV/JSONL of material_id, formula, K_VRH, G_VRH: density models "
                          "are then skipped).")(f)
    return f


def _echo_skips(s) -> None:
    from ecdflow.kfp.plan import density_skips

    for line in density_skips(s).values():
        click.echo(line)


@click.group("pipeline")
def pipeline() -> None:
    """The Kubeflow pipeline `ecd-elastic`: preprocess -> validate -> train (one task per
    model x target x split) -> evaluate -> register -> external validation -> gate."""


@pipeline.command("compile")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="IR YAML to write (default: pipeline.compiled, .ecdflow/ecd-elastic.yaml).")
@plan_options
@click.pass_context
def compile_cmd(ctx: click.Context, out: str | None, materials: str | None,
                models: str | None, folds: str | None) -> None:
    """Compile the pipeline for the selected profile to IR YAML (upload it in the KFP UI)."""
    import time

    from ecdflow.kfp.plan import build_plan
    from ecdflow.kfp.runners import compile_pipeline

    s = load(ctx, _plan_overrides(materials, models, folds) or None)
    _echo_skips(s)
    t0 = time.perf_counter()
    path = compile_pipeline(s, out, _params_file(ctx))
    click.echo(f"compiled {s.pipeline.name} (profile {s.profile}, {len(build_plan(s))} training "
               f"tasks) in {time.perf_counter() - t0:.1f} s -> {path}")


@pipeline.command("run-local")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Run parameter, e.g. --param epochs=2 (repeatable; see `compile`'s form).")
@click.option("--no-cache", is_flag=True, help="Re-run every task (no kfp.local cache hits).")
@click.option("--containers", "image", default=None, metavar="IMAGE",
              help="Run every task in IMAGE (kfp.local DockerRunner, DOCKER_HOST; without "
                   "Docker: infra/podman/docker-socket.sh), under <work_dir>/kfp-containers.")
@click.option("--resume", default=None, metavar="RUN_ID|latest",
              help="Continue a stopped pipeline run under its own id (`latest`: the newest "
                   "unfinished run of this profile; none: start a new one): finished training "
                   "tasks are left out (their runs are reused), unfinished fits resume from "
                   "their checkpoints; records of another data version are refused.")
@plan_options
@click.pass_context
def run_local_cmd(ctx: click.Context, params: tuple[str, ...], no_cache: bool,
                  image: str | None, resume: str | None, materials: str | None,
                  models: str | None, folds: str | None) -> None:
    """Run the whole pipeline here with kfp.local (subprocesses of this Python), tracking to
    the configured MLflow store: one progress line per task (`ecdflow -v ...` shows the tasks'
    own output; it is always in .ecdflow/logs/), then the results, the registered versions and
    what to do next.

    ``--materials table.csv`` runs it on another table: a composition-only one (material_id,
    formula, K_VRH, G_VRH) trains the Magpie models only, each density model skipped with one
    line.

    ``--containers IMAGE`` runs each task in IMAGE as its user: the work dir, records, reports
    and MLflow store move under ``<work_dir>/kfp-containers/`` (the one folder the containers
    see) and the run's settings reach the tasks as ``settings.yaml`` there
    (``ecdflow.containers``; docs/cluster.md)."""
    from ecdflow.kfp.runners import registered_versions, run_local
    from ecdflow.results import format_tables, results_table
    from ecdflow.tracking import CV_FILTER, RESULTS_LEGEND, configure, ui_url

    args = _arguments(params)
    overrides: dict = _plan_overrides(materials, models, folds)
    if no_cache:
        overrides["pipeline"] = {"caching": False}
    if args.get("mlflow_experiment"):  # results and versions are looked up there
        overrides["mlflow"] = {"experiment": str(args["mlflow_experiment"])}
    if materials:  # the tasks read the table named by the run parameter
        args["materials_path"] = overrides["paths"]["materials"]
    params_file = _params_file(ctx)
    if image:
        from ecdflow.config import deep_merge, load_settings
        from ecdflow.containers import check_image, container_settings, docker_overrides

        check_image(image)
        root = load(ctx).work_dir / "kfp-containers"
        s = load(ctx, deep_merge(overrides, docker_overrides(root, image)))
        params_file = str(container_settings(s, root))
        s = load_settings(params_file, s.profile)  # what the tasks load (materials copied in)
        if "materials_path" in args:
            args["materials_path"] = s.paths.materials
    else:
        s = load(ctx, overrides or None)
    click.echo(f"running {s.pipeline.name} locally (profile {s.profile}); MLflow: "
               f"{s.tracking_uri}")
    if resume:
        from ecdflow.tracking import unfinished_pipeline_run

        rid = unfinished_pipeline_run(s) if resume == "latest" else resume
        if resume != "latest":
            from ecdflow.tracking import find_parent_run

            if find_parent_run(s, rid) is None:
                raise click.UsageError(f"--resume {rid}: no such pipeline run in {s.tracking_uri}")
        if rid:
            args["resume_run_id"] = rid
            click.echo(f"resuming pipeline run {rid}")
        else:
            click.echo(f"no unfinished {s.profile} pipeline run to resume: starting a new one")
    _echo_skips(s)
    if image:
        click.echo(f"tasks in containers of {image}; settings: {params_file}")
    try:
        out = run_local(s, params_file, args, echo=click.echo, verbose=verbose(ctx))
    finally:
        if image:
            from ecdflow.containers import remove_task_containers

            click.echo(f"removed {remove_task_containers(s.pipeline.local_root)} stopped task "
                       "containers")
    run_id = out["run_id"]
    click.echo(f"\npipeline run {run_id}: {out['tasks']} tasks in {out['seconds']:.0f} s "
               f"(full log: {out['log']})")
    click.echo(f"\nresults, test metrics. {RESULTS_LEGEND}")
    titles = {"table2_cv": "cross-validation", "table3_loeo": "leave-one-element-out"}
    for name, md in format_tables(results_table(s, run_id)).items():  # Table 2 (CV), 3 (LOEO)
        click.echo(f"\n{titles.get(name, name)}:\n{md}")
    click.echo("registered versions:")
    versions = registered_versions(s, run_id)
    for v in versions:
        click.echo(f"  {v['name']} v{v['version']}  aliases: {v['aliases'] or '-'}")
    if not versions:
        click.echo("  none")
    report = s.path(s.paths.reports_dir) / run_id / "report.html"
    for what, path in out["published"].items():
        click.echo(f"{what}: {path}")
    click.echo(f"report: {report}")
    exp_id = configure(s)
    click.echo(f"MLflow UI: `make ui`, then {ui_url('http://127.0.0.1:5000', exp_id, None)} "
               f"(CV runs side by side: {ui_url('http://127.0.0.1:5000', exp_id)}, or search "
               f"{CV_FILTER})")
    targets = " / ".join(s.targets)
    click.echo(f"next: .venv/bin/ecdflow promote --target {s.targets[0]}   (through the gate; "
               f"targets: {targets}), then .venv/bin/ecdflow serve --target {s.targets[0]}")


@pipeline.command("submit")
@click.option("--host", required=True, help="KFP API endpoint, e.g. http://127.0.0.1:8080.")
@click.option("--package", type=click.Path(dir_okay=False, exists=True), default=None,
              help="Compiled IR YAML (default: compile now).")
@click.option("--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Run parameter (repeatable), e.g. --param epochs=200.")
@click.option("--run-name", default=None, help="KFP run name.")
@click.option("--experiment", default=None, help="KFP experiment (default: mlflow.experiment).")
@click.option("--namespace", default=None, help="Kubeflow namespace (multi-user installs).")
@click.option("--service-account", default=None,
              help="Service account of the run's pods, e.g. ecdflow-pipeline-runner.")
@click.option("--timeout", "timeout_s", type=float, default=5.0, show_default=True,
              help="Seconds to wait for the KFP API to accept a connection.")
@click.pass_context
def submit_cmd(ctx: click.Context, host: str, package: str | None, params: tuple[str, ...],
               run_name: str | None, experiment: str | None, namespace: str | None,
               service_account: str | None, timeout_s: float) -> None:
    """Create a run of the pipeline on a Kubeflow Pipelines cluster."""
    from ecdflow.kfp.runners import submit

    run_id = submit(load(ctx), host, package, _arguments(params), run_name, experiment,
                    namespace, service_account, timeout_s)
    click.echo(f"submitted: KFP run {run_id} on {host}")
