"""CLI: `ecdflow evaluate` (filled in by its stage's issue)."""

from __future__ import annotations

import click


@click.group("evaluate")
def evaluate() -> None:
    """Not built yet."""
