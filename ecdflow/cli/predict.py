"""CLI: `ecdflow predict FILE...` with a registered model (default: the champion)."""

from __future__ import annotations

import click

from ecdflow.cli.common import settings


@click.command("predict")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--target", required=True, help="bulk, shear, K_VRH or G_VRH.")
@click.option("--model-uri", default=None,
              help="pyfunc URI (default: models:/<registered name>@champion).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True)
@click.pass_context
def predict(ctx: click.Context, files: tuple[str, ...], target: str, model_uri: str | None,
            fmt: str) -> None:
    """Predict K_VRH or G_VRH (GPa, ± the fold-ensemble spread) for CIF, POSCAR, pymatgen JSON
    or CHGCAR files; a bad file gets an error row, the others are still predicted."""
    from ecdflow.predict import predict_files

    df = predict_files(settings(ctx), list(files), target, model_uri)
    if fmt == "json":
        click.echo(df.to_json(orient="records", indent=1))
    elif fmt == "csv":
        click.echo(df.to_csv(index=False), nl=False)
    else:
        click.echo(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
