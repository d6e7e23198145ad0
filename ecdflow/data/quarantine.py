"""Bad items of a batch: kept aside with their reason, counted and reported, never fatal."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ecdflow.log import get_logger

log = get_logger("ecdflow.quarantine")


@dataclass
class Quarantine:
    """Collects rejected items: ``add`` one per bad item, then ``write`` a JSON report.

    Each entry has ``item_id`` (material id or row label), ``where`` (file:row or file),
    ``reason`` (one line) and ``kind`` (reason category, the text before the first ':').
    """

    name: str = "quarantine"
    entries: list[dict] = field(default_factory=list)

    def add(self, item_id: str, where: str, reason: str, kind: str | None = None) -> None:
        """Quarantine one item and log a one-line warning naming it."""
        kind = kind or reason.split(":", 1)[0].strip()
        self.entries.append({"item_id": str(item_id), "where": where, "reason": reason,
                             "kind": kind})
        log.warning("%s: %s (%s) quarantined: %s", self.name, item_id, where, reason)

    def counts(self) -> dict[str, int]:
        """Number of quarantined items per reason kind."""
        return dict(Counter(e["kind"] for e in self.entries))

    def ids(self) -> set[str]:
        """Ids of the quarantined items."""
        return {e["item_id"] for e in self.entries}

    def extend(self, other: Quarantine) -> None:
        """Append another quarantine's entries."""
        self.entries.extend(other.entries)

    def write(self, path: str | Path) -> Path:
        """Write ``{"name", "total", "counts", "items"}`` as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {"name": self.name, "total": len(self), "counts": self.counts(),
                  "items": self.entries}
        path.write_text(json.dumps(report, indent=1) + "\n")
        return path

    def __len__(self) -> int:
        return len(self.entries)
