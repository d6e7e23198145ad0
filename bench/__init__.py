"""Benchmarks of ecdflow; results under bench/results/ (see bench/__main__.py)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine(**extra: object) -> dict:
    """What a figure was measured on: cores, processor, platform, Python (+ ``extra``)."""
    return {"cpu_count": os.cpu_count(), "processor": platform.processor(),
            "platform": platform.platform(), "python": platform.python_version(), **extra}


def write_results(name: str, result: dict, markdown: str) -> None:
    """Write ``bench/results/<name>.json`` and ``<name>.md``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown)
