"""One logger for ecdflow and progress bars for loops over materials or epochs."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def get_logger(name: str = "ecdflow") -> logging.Logger:
    """The ``ecdflow`` logger (or a child of it), configured once to stderr."""
    root = logging.getLogger("ecdflow")
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter(_FORMAT, "%H:%M:%S"))
        root.addHandler(handler)
        root.setLevel(os.environ.get("ECDFLOW_LOG_LEVEL", "INFO").upper())
        root.propagate = False
    return root if name == "ecdflow" else root.getChild(name.removeprefix("ecdflow."))


def progress(
    items: Iterable[T], desc: str, total: int | None = None, unit: str = "it"
) -> Iterator[T]:
    """Wrap ``items`` in a tqdm progress bar (silenced by ``ECDFLOW_NO_PROGRESS=1``)."""
    from tqdm.auto import tqdm

    disable = os.environ.get("ECDFLOW_NO_PROGRESS") == "1"
    yield from tqdm(items, desc=desc, total=total, unit=unit, disable=disable, leave=False)
