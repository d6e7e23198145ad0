"""CLI: `ecdflow register` and `ecdflow promote` (filled in by the registry issue)."""

from __future__ import annotations

import click


@click.command("register")
def register() -> None:
    """Not built yet."""


@click.command("promote")
def promote() -> None:
    """Not built yet."""
