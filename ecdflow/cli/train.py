"""CLI: `ecdflow train` - one model, target and split (every configured repeat by default)."""

from __future__ import annotations

import json

import click

from ecdflow.cli.common import settings


@click.command("train")
@click.option("--model", required=True, help="rf_magpie, cnn_magpie, cnn3d, cnn2d_se or fusion.")
@click.option("--target", required=True, help="K_VRH or G_VRH (GPa).")
@click.option("--split", required=True, help="cv-<fold> or loeo-<element>, e.g. cv-0, loeo-Cs.")
@click.option("--records", "records_dir", default=None, help="TFRecord folder (default: config).")
@click.option("--pipeline-run-id", default=None, help="Tag runs with this pipeline run id.")
@click.option("--parent-run-id", default=None, help="Nest runs under this MLflow run.")
@click.option("--repeat", type=int, default=None,
              help="Train only this repeat (default: every configured repeat).")
@click.pass_context
def train(ctx: click.Context, model: str, target: str, split: str, records_dir: str | None,
          pipeline_run_id: str | None, parent_run_id: str | None, repeat: int | None) -> None:
    """Train one model on one target and split, evaluate it on the held-out materials and log
    the run to MLflow (resumes from its checkpoint if a previous attempt was killed)."""
    from ecdflow.train import run_repeats, train_one

    s = settings(ctx)
    repeats = [repeat] if repeat is not None else list(range(run_repeats(s, model, split)))
    for r in repeats:
        res = train_one(s, model, target, split, records_dir=records_dir,
                        parent_run_id=parent_run_id, pipeline_run_id=pipeline_run_id, repeat=r)
        click.echo(json.dumps(res, sort_keys=True, default=str))
