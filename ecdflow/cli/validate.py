"""CLI: `ecdflow validate` - Great Expectations suites over the table and the TFRecords."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from ecdflow.cli.common import settings
from ecdflow.errors import EcdflowError
from ecdflow.schema import is_remote


def _leave(code: int) -> None:
    """A process that read s3:// through tensorflow-io must leave with os._exit (STACK.md)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.command("validate")
@click.option("--records", type=str, default=None,
              help="TFRecords directory, local or s3:// (default: paths.records_dir).")
@click.option("--materials", type=str, default=None,
              help="Materials table (default: paths.materials).")
@click.option("--out", type=str, default=None,
              help="Data Docs + summary.json directory (default: paths.validation_dir).")
@click.option("--no-fail", is_flag=True, help="Report failures but exit 0.")
@click.option("--metrics", type=click.Path(dir_okay=False), default=None,
              help="Also write counts (expectations passed/failed, rows) to this JSON file.")
@click.pass_context
def validate(ctx: click.Context, records: str | None, materials: str | None, out: str | None,
             no_fail: bool, metrics: str | None) -> None:
    """Validate the materials table and the records; exit 2 naming the failed expectation(s)
    when a blocking one fails (training must not start)."""
    from ecdflow.validation.suites import metrics_of, run_validation, summarize

    remote = records is not None and is_remote(records)
    try:
        summary = run_validation(settings(ctx), records_dir=records, materials_path=materials,
                                 out_dir=out, raise_on_failure=not no_fail)
    except EcdflowError as exc:
        if not remote:
            raise
        click.echo(f"error: {exc}", err=True)
        _leave(2)
    if metrics:
        Path(metrics).parent.mkdir(parents=True, exist_ok=True)
        Path(metrics).write_text(json.dumps(metrics_of(summary), indent=2) + "\n")
    click.echo(summarize(summary))
    if remote:
        _leave(0)
