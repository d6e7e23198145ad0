"""Data Docs that render offline: GX builds the site, ``ecdflow.html.offline`` localises it."""

from __future__ import annotations

from pathlib import Path

from ecdflow.html.offline import make_site_offline
from ecdflow.log import get_logger

log = get_logger("ecdflow.validation")


def offline_data_docs(index: str | Path) -> dict:
    """Make the built Data Docs site of ``index`` (its ``index.html``) load no URL from another
    host; returns ``make_site_offline``'s ``{"files", "external"}``. A URL left external (a GX
    upgrade added a CDN asset not in ``ecdflow.html.offline.CDN``) is logged as a warning naming
    it, since the page would then be incomplete on an air-gapped cluster."""
    res = make_site_offline(Path(index).parent)
    if res["external"]:
        log.warning("Data Docs still load %d external URL(s), incomplete offline: %s",
                    len(res["external"]), ", ".join(res["external"]))
    return res
