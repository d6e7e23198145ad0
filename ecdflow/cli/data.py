"""CLI: `ecdflow data` (filled in by its stage's issue)."""

from __future__ import annotations

import click


@click.group("data")
def data() -> None:
    """Not built yet."""
