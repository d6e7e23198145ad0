"""CLI: `ecdflow preprocess` (filled in by its stage's issue)."""

from __future__ import annotations

import click


@click.group("preprocess")
def preprocess() -> None:
    """Not built yet."""
