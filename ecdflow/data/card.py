"""The counts section of the data card (data/fcc/DATA_CARD.md), computed from the files.

``ecdflow data merge`` refreshes it, so the card never lags the committed table.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date
from pathlib import Path

from ecdflow.config import PAPER_LOEO_ELEMENTS
from ecdflow.data.merge import iter_jsonl

START, END = "<!-- counts:start -->", "<!-- counts:end -->"
"""Markers around the generated block; everything outside them is hand-written."""


def _family(material_id: str) -> str:
    return material_id.split(":", 1)[0]


def _fmt(c: Counter, keys: Iterable[str] | None = None) -> str:
    keys = list(keys) if keys is not None else [k for k, _ in c.most_common()]
    return ", ".join(f"{k} {c[k]}" for k in keys)


def counts_block(candidates: Path, label_files: list[Path], table: Path,
                 loeo_target: tuple[int, int] = (150, 400),
                 quarantine: Path | None = None, plausibility=None) -> str:
    """Markdown of the current counts: candidates, labelling status and yield per family,
    rows quarantined by the plausibility gate per rule (``quarantine``, default
    ``quarantine-plausibility.jsonl`` beside ``table``), marginal rows (``plausibility``:
    ``PlausibilityConfig``, default thresholds), table rows per family and per
    leave-one-element-out element."""
    from ecdflow.config import PlausibilityConfig
    from ecdflow.data.merge import QUARANTINE_NAME
    from ecdflow.validation.plausibility import RULES, is_marginal

    cand = Counter(_family(r["material_id"]) for r in iter_jsonl(candidates))
    status: Counter = Counter()
    tried: Counter = Counter()
    stable: Counter = Counter()
    seen: set[str] = set()
    for f in label_files:
        for r in iter_jsonl(f):
            if r.get("material_id") in seen:
                continue
            seen.add(r["material_id"])
            status[r.get("status", "failed")] += 1
            tried[_family(r["material_id"])] += 1
            stable[_family(r["material_id"])] += r.get("status") == "ok"
    rows = list(iter_jsonl(table))
    quarantine = quarantine or table.parent / QUARANTINE_NAME
    bad = list(iter_jsonl(quarantine)) if quarantine.is_file() else []
    rules = Counter(rule for r in bad for rule in r.get("failed_rules", []))
    cfg = plausibility or PlausibilityConfig()
    marginal = sum(is_marginal(r, cfg) for r in rows)
    fam = Counter(r["family"] for r in rows)
    elem = Counter(e for r in rows for e in r.get("elements", []))
    lo, hi = loeo_target
    in_range = [e for e in PAPER_LOEO_ELEMENTS if lo <= elem[e] <= hi]
    yields = ", ".join(f"{k} {stable[k]}/{tried[k]}" for k, _ in tried.most_common())
    lines = [
        START,
        "",
        f"| quantity | value (refreshed {date.today().isoformat()}) |",
        "|---|---|",
        f"| candidates (`candidates.jsonl`) | {sum(cand.values())} ({_fmt(cand)}) |",
        f"| candidates labelled (`labels/sevennet-*.jsonl`) | {len(seen)} ({_fmt(status)}) |",
        f"| Born-stable / labelled, per family | {yields} |",
        f"| quarantined by the plausibility gate (`{quarantine.name}`), rows failing each "
        f"rule (a row may fail several) | {len(bad)} ({_fmt(rules, RULES)}) |",
        "| rows in `materials.jsonl` (Born-stable, converged, plausible, "
        f"dcdft metals held out) | **{len(rows)}** |",
        f"| of which marginal (C' or C44 < {cfg.marginal_GPa:g} GPa; kept) | {marginal} |",
        f"| by family | {_fmt(fam)} |",
        f"| materials containing the paper's LOEO elements | "
        f"{_fmt(elem, PAPER_LOEO_ELEMENTS)} |",
        f"| LOEO elements with {lo}-{hi} test materials | {len(in_range)} of "
        f"{len(PAPER_LOEO_ELEMENTS)} ({', '.join(in_range) or 'none'}) |",
        f"| unlabelled candidates | {max(sum(cand.values()) - len(seen), 0)} |",
        "",
        END,
    ]
    return "\n".join(lines)


def refresh_card(card: Path, block: str, start: str = START, end: str = END) -> bool:
    """Replace the text between the markers ``start`` and ``end`` of ``card`` by ``block``
    (which carries the markers); False when the card has no markers (then it is left
    untouched)."""
    text = card.read_text()
    if start not in text or end not in text:
        return False
    head, rest = text.split(start, 1)
    tail = rest.split(end, 1)[1]
    card.write_text(head + block + tail)
    return True
