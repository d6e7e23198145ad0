"""CLI: `ecdflow pipeline` (filled in by its stage's issue)."""

from __future__ import annotations

import click


@click.group("pipeline")
def pipeline() -> None:
    """Not built yet."""
