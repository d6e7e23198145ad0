"""Shared CLI plumbing: settings from the click context and one-line user errors."""

from __future__ import annotations

import logging
import os
import warnings

import click

from ecdflow.config import Settings, load_settings
from ecdflow.errors import EcdflowError


def settings(ctx: click.Context, overrides: dict | None = None) -> Settings:
    """Load the configuration named by the root command's --params/--profile options."""
    obj = ctx.find_root().obj or {}
    return load_settings(obj.get("params_file"), obj.get("profile"), overrides)


def run_main(group: click.Group, args: list[str] | None = None) -> int:
    """Run ``group``; an ``EcdflowError`` becomes ``error: <one line>`` and exit code 2."""
    try:
        rv = group.main(args=args, standalone_mode=False, prog_name="ecdflow")
        if isinstance(rv, int) and not isinstance(rv, bool):  # ctx.exit(n) in a command
            return rv
    except EcdflowError as exc:
        click.echo(f"error: {exc}", err=True)
        return 2
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return 1
    return 0


QUIET_LOGGERS = ("mlflow", "alembic", "great_expectations", "absl", "tensorflow", "py.warnings")


def quiet_third_parties(verbose: bool) -> None:
    """Default verbosity: third-party loggers at WARNING, deprecation/future warnings off, and
    native TensorFlow logging (C++, absl) and MLflow's at warnings for this process and
    its children (a value the user set wins). ``verbose`` leaves everything as it is."""
    if verbose:
        return
    # 3: also TF's start-up "E ... Unable to register cuDNN/cuBLAS factory" lines (no GPU here)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read when mlflow is imported
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for cat in (DeprecationWarning, FutureWarning, PendingDeprecationWarning, UserWarning):
        warnings.filterwarnings("ignore", category=cat)


def verbose(ctx: click.Context) -> bool:
    """Whether the root command got ``-v/--verbose``."""
    return bool((ctx.find_root().obj or {}).get("verbose"))
