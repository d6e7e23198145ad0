"""User-facing errors: each prints as one line saying what and where, never a traceback."""

from __future__ import annotations


class EcdflowError(Exception):
    """Base class of errors caused by user input or configuration (exit code 2 in the CLI)."""


class ConfigError(EcdflowError):
    """A bad ``params.yaml`` key or value."""


class InputError(EcdflowError):
    """A bad input item (file, row, structure); ``where`` names the file or row."""

    def __init__(self, where: str, what: str):
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


class ValidationFailed(EcdflowError):
    """A blocking data expectation failed; training must not start."""


class GateRefused(EcdflowError):
    """The promotion gate refused a candidate model."""
