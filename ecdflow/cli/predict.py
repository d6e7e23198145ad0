"""CLI: `ecdflow predict` (filled in by its stage's issue)."""

from __future__ import annotations

import click


@click.group("predict")
def predict() -> None:
    """Not built yet."""
