"""CLI: `ecdflow evaluate` (tables, plots, report) and `ecdflow evaluate external`."""

from __future__ import annotations

import click

from ecdflow.cli.common import settings


@click.group("evaluate", invoke_without_command=True)
@click.option("--pipeline-run-id", default=None, help="Pipeline run to evaluate (default: latest).")
@click.option("--no-tsne", is_flag=True, help="Skip the t-SNE maps (they build every ECD).")
@click.pass_context
def evaluate(ctx: click.Context, pipeline_run_id: str | None, no_tsne: bool) -> None:
    """Gather a pipeline run's training runs: Table 2 (CV) / Table 3 (LOEO), R2 and RMSE in GPa,
    parity plots, per-element errors, learning curves, t-SNE maps, the paper's numbers beside
    ours; written as report.md/.html and logged to the parent MLflow run."""
    ctx.ensure_object(dict)
    ctx.obj["pipeline_run_id"] = pipeline_run_id
    if ctx.invoked_subcommand is not None:
        return
    from ecdflow.evaluate import evaluate_pipeline_run, latest_pipeline_run_id

    s = settings(ctx)
    pid = pipeline_run_id or latest_pipeline_run_id(s)
    out = evaluate_pipeline_run(s, pid, tsne=not no_tsne)
    for name, md in out["tables"].items():
        click.echo(f"\n{name}\n{md}")
    click.echo(f"\nreport: {out['report_md']}\n        {out['report_html']}")


@evaluate.command("external")
@click.option("--pipeline-run-id", default=None, help="Pipeline run (default: latest).")
@click.option("--model-uri", default=None, help="Check this pyfunc instead of the registered "
              "challenger/champion of the run.")
@click.pass_context
def external(ctx: click.Context, pipeline_run_id: str | None, model_uri: str | None) -> None:
    """Score the run's challenger (and the champion) on references it never saw: fcc metals of
    ase's dcdft set (WIEN2k K) and pymatgen's experimental K and G (GPa)."""
    from ecdflow.evaluate import latest_pipeline_run_id
    from ecdflow.external import run_external_validation

    s = settings(ctx)
    pid = pipeline_run_id or ctx.obj.get("pipeline_run_id") or latest_pipeline_run_id(s)
    out = run_external_validation(s, pid, model_uri=model_uri)
    for key, res in out["results"].items():
        for ref, e in res.items():
            x = e["external"]
            click.echo(f"{key:22s} {ref:10s} n={x['n']:2d} R2={x['r2']:.3f} "
                       f"RMSE={x['rmse_gpa']:.2f} GPa MAE={x['mae_gpa']:.2f} GPa "
                       f"(removed as seen: {', '.join(e['removed']) or 'none'})")
    click.echo(f"report: {out['report']}")
