"""CLI: `ecdflow predict FILE...` with a registered model (default: the champion)."""

from __future__ import annotations

import json

import click

from ecdflow.cli.common import settings


@click.command("predict")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--target", required=True, help="bulk, shear, K_VRH or G_VRH.")
@click.option("--model-uri", default=None,
              help="pyfunc URI (default: models:/<registered name>@champion when the "
                   "registry has one, else the model shipped with ecdflow).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.option("--allow-density-source-mismatch", is_flag=True,
              help="Predict (flagged out_of_domain) instead of refusing inputs whose density "
                   "source (CHGCAR vs procrystal) differs from the model's training density.")
@click.pass_context
def predict(ctx: click.Context, files: tuple[str, ...], target: str, model_uri: str | None,
            fmt: str, allow_density_source_mismatch: bool) -> None:
    """Predict K_VRH or G_VRH (GPa) with a calibrated interval (lower_gpa..upper_gpa at the
    nominal coverage, split-conformal) and an out-of-domain flag for CIF, POSCAR/CONTCAR,
    pymatgen JSON or CHGCAR files, or tables with a formula column (one prediction per row).
    Files may be gzip/bzip2/xz-compressed; the content decides the kind (docs/inputs.md).

    A bad file or row gets an error row (prediction null) and the others are still predicted.
    Exit status: 0 when every input was predicted, 1 when any input failed (its error is also
    printed to stderr), 2 for a usage or configuration error (e.g. unknown model).
    """
    from ecdflow.predict import answered_by_line, predict_files

    df = predict_files(settings(ctx), list(files), target, model_uri,
                       allow_density_source_mismatch=allow_density_source_mismatch)
    who = df.attrs.get("answered_by", {})
    if fmt == "json":
        records = [{**r, "answered_by": {k: who.get(k, "") for k in
                                         ("model", "version", "model_type")}}
                   for r in df.to_dict(orient="records")]
        click.echo(json.dumps(records, indent=1, allow_nan=False))
    elif fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
        click.echo(answered_by_line(who), err=True)
    else:
        click.echo(human_table(df))
        click.echo(answered_by_line(who))
    failed = [e for e in df["error"] if e]
    for e in failed:
        click.echo(f"error: {e}", err=True)
    if failed:
        click.echo(f"{len(failed)} of {len(df)} inputs failed", err=True)
        ctx.exit(1)


ROUNDED = {"prediction_gpa": 1, "uncertainty_gpa": 1, "lower_gpa": 1, "upper_gpa": 1,
           "coverage": 2}
"""Decimals of the human table: moduli to 0.1 GPa (CV errors are tens of GPa), coverage 0.90."""


def _fmt(v, digits: int) -> str:
    """``v`` with ``digits`` decimals; ``-`` for a missing or non-finite value."""
    try:
        x = float(v)
    except (TypeError, ValueError):
        return "-"
    return f"{x:.{digits}f}" if x == x and abs(x) != float("inf") else "-"


def human_table(df) -> str:
    """The ``--format table`` text: numbers rounded per ``ROUNDED``, missing ones ``-``.

    (pandas' ``to_string(formatters=...)`` leaves object columns holding None unformatted,
    so the cells are formatted here.)
    """
    out = df.copy()
    for col, digits in ROUNDED.items():
        if col in out.columns:
            out[col] = [_fmt(v, digits) for v in out[col]]
    return out.to_string(index=False, na_rep="-")
