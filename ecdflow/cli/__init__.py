"""The ``ecdflow`` command line: thin wrappers over the library, one module per stage.

May import: anything in ``ecdflow`` (it is the top floor, with ``ecdflow.kfp.runners`` as its
door to the pipeline); nothing imports it but the console script ``ecdflow``. Printing
happens here, not in the library.
"""

from __future__ import annotations

import sys

import click

from ecdflow.cli.common import quiet_third_parties, run_main
from ecdflow.cli.data import data
from ecdflow.cli.evaluate import evaluate
from ecdflow.cli.pipeline import pipeline
from ecdflow.cli.predict import predict
from ecdflow.cli.preprocess import preprocess
from ecdflow.cli.pretrained import pretrained
from ecdflow.cli.registry import promote, register
from ecdflow.cli.results import results
from ecdflow.cli.serve import serve
from ecdflow.cli.train import train
from ecdflow.cli.validate import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--params", "params_file", type=click.Path(dir_okay=False), default=None,
              help="params.yaml to read (default: the repository's).")
@click.option("--profile", default=None,
              help="Configuration profile: quick (`make run`, minutes), standard (the "
                   "paper's protocol on 2 CPU cores, hours) or paper (GPU cluster).")
@click.option("-v", "--verbose", is_flag=True,
              help="Show third-party output too (kfp.local task logs, TensorFlow, warnings).")
@click.pass_context
def cli(ctx: click.Context, params_file: str | None, profile: str | None,
        verbose: bool) -> None:
    """ecdflow: elastic moduli (K_VRH, G_VRH in GPa) of Fm-3m crystals from their 3D
    electronic charge density, with the whole model life cycle: data, validation, training,
    evaluation, registry, promotion and serving.

    Typical order: data build -> preprocess -> validate -> train -> evaluate -> register ->
    promote -> predict. `ecdflow pipeline run-local` runs them all as a Kubeflow pipeline.
    """
    ctx.ensure_object(dict)
    ctx.obj["params_file"] = params_file
    ctx.obj["profile"] = profile
    ctx.obj["verbose"] = verbose
    quiet_third_parties(verbose)


for _cmd in (data, preprocess, validate, train, evaluate, register, promote, predict, serve,
             pipeline):
    cli.add_command(_cmd)
cli.add_command(pretrained)
cli.add_command(results)


def main() -> None:
    """Console-script entry point: user errors print one line and exit 2."""
    sys.exit(run_main(cli))
