"""CLI: `ecdflow train` (filled in by its stage's issue)."""

from __future__ import annotations

import click


@click.group("train")
def train() -> None:
    """Not built yet."""
