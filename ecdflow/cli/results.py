"""CLI: `ecdflow results` (docs/results/ from an MLflow store, or the plan before a run)."""

from __future__ import annotations

from pathlib import Path

import click

from ecdflow.cli.common import settings


@click.command("results")
@click.option("--pipeline-run-id", default=None,
              help="Pipeline run (default: the newest of the selected --profile).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("docs/results"), show_default=True)
@click.option("--planned", is_flag=True,
              help="Write the plan (wall-time estimate of the profile) instead of results.")
@click.pass_context
def results(ctx: click.Context, pipeline_run_id: str | None, out: Path, planned: bool) -> None:
    """Regenerate docs/results/ (Markdown + figures): Tables 2 and 3 with the protocol that
    ran, the paper's numbers beside ours, spread, LOEO sets, per-family errors, t-SNE maps and
    the paper's claims. A run still in progress is described as such (finished runs only)."""
    from ecdflow import results_doc

    s = settings(ctx)
    if planned:
        click.echo(results_doc.write_planned(s, out))
        return
    from ecdflow.evaluate import latest_pipeline_run_id

    pid = pipeline_run_id or latest_pipeline_run_id(s, s.profile)
    click.echo(results_doc.write_results(s, pid, out))
