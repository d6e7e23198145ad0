"""CLI: `ecdflow validate` (filled in by its stage's issue)."""

from __future__ import annotations

import click


@click.group("validate")
def validate() -> None:
    """Not built yet."""
