"""CLI: `ecdflow pretrained list|build` (the models shipped with ecdflow)."""

from __future__ import annotations

from pathlib import Path

import click

from ecdflow.cli.common import settings


@click.group("pretrained")
def pretrained() -> None:
    """The pretrained models shipped with ecdflow (ecdflow/pretrained/<name>/)."""


@pretrained.command("list")
def list_cmd() -> None:
    """Name, target, model type, CV RMSE/R2 and size of each shipped model."""
    from ecdflow.pretrained import shipped

    for s in shipped():
        cv = s.card["cv"]
        click.echo(f"{s.name}\t{s.target}\t{s.model_type}\tCV RMSE {cv['rmse_mean']:.1f} GPa"
                   f"\tR2 {cv['r2_mean']:.3f}\t{s.card.get('size_bytes', 0) / 1e6:.2f} MB")


@pretrained.command("build")
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("data/fcc/materials.jsonl"), show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the model directories (default: ecdflow/pretrained/).")
@click.pass_context
def build_cmd(ctx: click.Context, table: Path, out: Path | None) -> None:
    """Rebuild the shipped models: seeded 5-fold CV (the pipeline's folds, settings.seed),
    fold ensembles saved in MLflow format with the registry's interval calibration and
    domain, out-of-fold predictions and model cards (CV and LOEO interval coverage; LOEO on
    the paper's 11 elements whatever the profile, one forest each)."""
    from ecdflow.pretrained import PRETRAINED_DIR
    from ecdflow.pretrained.build import build

    cfg = settings(ctx)
    for c in build(table, out or PRETRAINED_DIR, seed=cfg.seed,
                   coverage=cfg.registry.interval_coverage):
        click.echo(f"{c['name']}: CV RMSE {c['cv']['rmse_mean']:.1f} GPa, "
                   f"R2 {c['cv']['r2_mean']:.3f}, {c['size_bytes'] / 1e6:.2f} MB")


@pretrained.command("export")
@click.option("--pipeline-run-id", default=None,
              help="Ship the versions this pipeline run registered (default: the newest "
                   "pipeline run of the selected --profile).")
@click.option("--version", default=None, help="Ship this version instead (one --target).")
@click.option("--target", "targets", multiple=True, type=click.Choice(["K_VRH", "G_VRH"]),
              help="Target(s) to ship (default: both).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write the model directories (default: ecdflow/pretrained/).")
@click.pass_context
def export_cmd(ctx: click.Context, pipeline_run_id: str | None, version: str | None,
               targets: tuple[str, ...], out: Path | None) -> None:
    """Ship registered versions as the pretrained models: the fold ensemble a pipeline run
    registered per target (e.g. the standard profile's run), copied unchanged into
    ecdflow/pretrained/<name>/ with its out-of-fold predictions and model card; the model
    shipped before for that target is replaced."""
    from ecdflow.evaluate import latest_pipeline_run_id
    from ecdflow.pretrained import PRETRAINED_DIR
    from ecdflow.pretrained.export import export_version

    cfg = settings(ctx)
    if version and len(targets) != 1:
        raise click.UsageError("--version needs exactly one --target")
    pid = pipeline_run_id or (None if version else latest_pipeline_run_id(cfg, cfg.profile))
    for t in targets or tuple(cfg.targets):
        s = export_version(cfg, t, pid, version, out or PRETRAINED_DIR)
        cv = s.card["cv"]
        click.echo(f"{s.name}: {s.card['n_members']} members, CV RMSE {cv['rmse_mean']:.1f} "
                   f"GPa, R2 {cv['r2_mean']:.3f}, {s.card['size_bytes'] / 1e6:.2f} MB "
                   f"({s.path})")


@pretrained.command("sanity")
@click.option("--table", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("data/fcc/materials.jsonl"), show_default=True)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              default=Path("docs/results/sanity.md"), show_default=True)
def sanity_cmd(table: Path, out: Path) -> None:
    """Write the sanity table: shipped models' predictions with intervals for NaCl, MgO,
    LiF, TiC, Cu, Al, Ni, Ag, Au beside the table label, WIEN2k and experiment."""
    from ecdflow.pretrained.sanity import write_sanity

    df = write_sanity(table, out)
    click.echo(f"{out}: {len(df)} rows ({df.crystal.nunique()} crystals x "
               f"{df.target.nunique()} targets)")
