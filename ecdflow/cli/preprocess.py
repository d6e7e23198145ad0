"""CLI: `ecdflow preprocess` - the Beam pipeline from the materials table to TFRecords."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ecdflow.cli.common import settings


@click.command("preprocess")
@click.option("--materials", type=str, default=None,
              help="Materials table, local or s3:// (default: paths.materials).")
@click.option("--chgcar-dir", type=str, default=None,
              help="Directory/bucket of <id>.CHGCAR or <id>/CHGCAR (default: procrystal ECD).")
@click.option("--out", type=str, default=None,
              help="Output directory for shards + manifest, local or s3:// "
                   "(default: paths.records_dir).")
@click.option("--runner", default=None,
              help="Beam runner: direct, dask, or a Beam runner name (FlinkRunner, "
                   "DataflowRunner) [default: preprocess.runner, direct].")
@click.option("--mode", "mode", type=click.Choice(["in_memory", "multi_processing"]),
              default="in_memory", show_default=True, help="DirectRunner running mode.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="DirectRunner workers (multi_processing).")
@click.option("--beam-arg", "beam_args", multiple=True,
              help="Extra Beam flag, repeatable (e.g. --beam-arg=--flink_master=host:8081).")
@click.option("--dask-workers", type=click.IntRange(min=1), default=None,
              help="--runner dask: worker processes of the local cluster "
                   "[default: preprocess.dask_workers].")
@click.option("--dask-address", default=None,
              help="--runner dask: scheduler of a running cluster (tcp://host:8786) instead "
                   "of a local one [default: preprocess.dask_address].")
@click.option("--metrics", type=click.Path(dir_okay=False), default=None,
              help="Also write the manifest (counts, data hash, timing) to this JSON file.")
@click.pass_context
def preprocess(ctx: click.Context, materials: str | None, chgcar_dir: str | None,
               out: str | None, runner: str | None, mode: str, workers: int,
               beam_args: tuple[str, ...], dask_workers: int | None, dask_address: str | None,
               metrics: str | None) -> None:
    """Compute ECD grids (e/Å^3), Magpie features and labels (GPa) for every material and
    write sharded TFRecords; bad materials are quarantined with a reason (quarantine.jsonl).

    The table may be JSONL with structures or a composition-only CSV/TSV/semicolon/JSONL
    (material_id, formula, K_VRH, G_VRH): its records carry Magpie features and no density.
    Exit status: 0 when every row was written; 1 when some rows were quarantined (the rest
    is written); 2 when no record was written or the input is unusable (one line on stderr).
    """
    from ecdflow.errors import EcdflowError
    from ecdflow.preprocess import DEADLETTER_NAME, run_preprocess, summarize

    manifest = run_preprocess(settings(ctx), materials_path=materials, chgcar_dir=chgcar_dir,
                              out_dir=out, runner=runner, direct_running_mode=mode,
                              direct_num_workers=workers, extra_pipeline_args=beam_args,
                              dask_workers=dask_workers, dask_address=dask_address)
    if metrics:
        Path(metrics).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    click.echo(summarize(manifest))
    c = manifest.get("counts", {})
    dead = f"{manifest.get('out_dir') or out or 'the output folder'}"
    if not c.get("written"):
        raise EcdflowError(f"no record written from {manifest.get('materials')}: all "
                           f"{c.get('read', 0)} rows quarantined, e.g. "
                           f"{manifest.get('first_quarantined', '')[:160]} (all reasons in "
                           f"{dead}/{DEADLETTER_NAME})")
    if c.get("quarantined"):
        click.echo(f"{c['quarantined']} of {c['read']} rows quarantined (reasons in "
                   f"{dead}/{DEADLETTER_NAME})", err=True)
        ctx.exit(1)
