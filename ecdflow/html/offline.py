"""Make Great Expectations Data Docs render with no network (air-gapped clusters).

GX 1.24 hard-codes its third-party assets (jQuery, Bootstrap, bootstrap-table, popper, a date
picker, Font Awesome, Vega) as CDN URLs in its page templates, and its logo as an S3 URL with
the data-context id in the query string; its site configuration has no switch for local copies.
``make_site_offline`` therefore post-processes a built site: it copies the assets vendored
under ``ecdflow/html/static/vendor/`` (npm packages, pinned in ``PACKAGES``, fetched by
``scripts/vendor_static.py`` with their licence files) into ``<site>/static/vendor/`` and
rewrites every known CDN URL in the site's HTML and CSS to a relative local path.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

STATIC_DIR = Path(__file__).parent / "static"
VENDOR_DIR = STATIC_DIR / "vendor"

PACKAGES: dict[str, tuple[str, ...]] = {
    "jquery@3.7.1": ("dist/jquery.min.js", "LICENSE.txt"),
    "popper.js@1.12.9": ("dist/umd/popper.min.js",),
    "bootstrap@4.3.1": ("dist/css/bootstrap.min.css", "dist/js/bootstrap.min.js", "LICENSE"),
    "bootstrap-table@1.19.1": (
        "dist/bootstrap-table.min.css", "dist/bootstrap-table.min.js",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.js",
        "dist/extensions/filter-control/bootstrap-table-filter-control.min.css", "LICENSE"),
    "bootstrap-datepicker@1.9.0": ("dist/css/bootstrap-datepicker.min.css",
                                   "dist/js/bootstrap-datepicker.min.js", "LICENSE"),
    "@forevolve/bootstrap-dark@1.1.0": ("dist/css/bootstrap-prefers-dark.css", "LICENSE"),
    "@fortawesome/fontawesome-free@6.6.0": (
        "css/all.min.css", "webfonts/fa-brands-400.woff2", "webfonts/fa-regular-400.woff2",
        "webfonts/fa-solid-900.woff2", "webfonts/fa-v4compatibility.woff2", "LICENSE.txt"),
    "vega@5.33.1": ("build/vega.min.js",),
    "vega-lite@5.23.0": ("build/vega-lite.min.js", "LICENSE"),
    "vega-embed@6.29.0": ("build/vega-embed.min.js", "LICENSE"),
}
"""npm package@version -> files kept (paths inside the package; its package.json, which
carries the licence field, is always kept). ``vega@5`` etc. float on the CDN: pinned here to the
newest 5.x / 6.x release at vendoring time."""

CDN: dict[str, str] = {
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery@3.7.1/dist/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js":
        "popper.js@1.12.9/dist/umd/popper.min.js",
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css":
        "bootstrap@4.3.1/dist/css/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js":
        "bootstrap@4.3.1/dist/js/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table@1.19.1/dist/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.js":
        "bootstrap-table@1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.js",
    # GX links the 1.19.0 stylesheet of the extension (both spellings) beside the 1.19.1 script
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.css":
        "bootstrap-table@1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/"
    "bootstrap-table-filter-control.min.css":
        "bootstrap-table@1.19.1/dist/extensions/filter-control/"
        "bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/"
    "bootstrap-datepicker.min.css":
        "bootstrap-datepicker@1.9.0/dist/css/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/"
    "bootstrap-datepicker.min.js":
        "bootstrap-datepicker@1.9.0/dist/js/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/"
    "bootstrap-prefers-dark.css":
        "@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "@fortawesome/fontawesome-free@6.6.0/css/all.min.css",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega@5.33.1/build/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite@5.23.0/build/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed@6.29.0/build/vega-embed.min.js",
}
"""CDN URL as GX 1.24.1's templates write it -> ``package@version/file`` vendored above."""

GX_ASSETS = "https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/"
GX_IMAGES = {"logo-long.png": "logo-long.png", "full_logo_dark.png": "logo-long.png"}
"""GX's S3-hosted logos -> the copies GX itself writes to ``<site>/static/images/``."""

_S3_RE = re.compile(re.escape(GX_ASSETS) + r"([A-Za-z0-9_.-]+)(\?[^\"')\s]*)?")
_SRI_RE = re.compile(r'\s+(integrity="[^"]*"|crossorigin="[^"]*")')
_LOADED_RE = re.compile(
    r"<(?:script|link|img|iframe|source|embed)\b[^>]*?\s(?:src|href)\s*=\s*[\"']"
    r"((?:https?:)?//[^\"']+)[\"']|url\(\s*[\"']?((?:https?:)?//[^\"')]+)", re.I)


def package_dir(spec: str) -> str:
    """Folder name of ``package@version`` under ``static/vendor/``
    ("@fortawesome/fontawesome-free@6.6.0" -> "fortawesome-fontawesome-free-6.6.0")."""
    name, version = spec.rsplit("@", 1)
    return f"{name.lstrip('@').replace('/', '-')}-{version}"


def vendored_path(target: str) -> str:
    """``package@version/file`` -> its path relative to ``static/vendor/``."""
    for spec in PACKAGES:
        if target.startswith(spec + "/"):
            return f"{package_dir(spec)}/{target[len(spec) + 1:]}"
    raise KeyError(f"{target}: not a vendored package file")


def external_loads(text: str) -> list[str]:
    """URLs a page or stylesheet would fetch from another host: ``src``/``href`` of script,
    link, img, iframe, source, embed tags and CSS ``url(...)``; plain ``<a>`` links (followed
    only when clicked) are not loads."""
    return sorted({a or b for a, b in _LOADED_RE.findall(text)})


def _strip_sri(m: re.Match) -> str:
    """Drop integrity/crossorigin from a tag that now loads a local file: Chromium refuses a
    CORS-mode file:// script (the local copies were checked by sha512 when vendored)."""
    tag = m.group(0)
    url = re.search(r"\s(?:src|href)=\"([^\"]*)\"", tag)
    if url and not re.match(r"(?:https?:)?//", url.group(1)):
        return _SRI_RE.sub("", tag)
    return tag


def _rewrite(text: str, rel_vendor: str, rel_images: str) -> str:
    for url in sorted(CDN, key=len, reverse=True):
        local = f"{rel_vendor}/{vendored_path(CDN[url])}"
        text = re.sub(re.escape(url) + r"(?=[\"'])", local, text)
    # Subresource-integrity/CORS attributes make Chromium refuse file:// scripts; the local
    # copies are the npm registry's files, checked by sha512 when vendored.
    text = re.sub(r"<(?:script|link)\b[^>]*>", _strip_sri, text)
    return _S3_RE.sub(lambda m: f"{rel_images}/{GX_IMAGES.get(m.group(1), m.group(1))}", text)


def make_site_offline(site_dir: str | Path) -> dict:
    """Copy the vendored assets into ``<site_dir>/static/vendor/`` and point every page and
    stylesheet of the site at them (relative URLs, so the site can be moved or zipped).

    Args:
        site_dir: a built GX Data Docs site (the folder holding ``index.html``).

    Returns:
        ``{"files": rewritten file count, "external": sorted URLs still fetched from another
        host}`` (empty when the site renders offline).

    Raises:
        FileNotFoundError: ``site_dir`` has no ``index.html``.
    """
    site = Path(site_dir)
    if not (site / "index.html").is_file():
        raise FileNotFoundError(f"{site}: no Data Docs site (index.html missing)")
    dest = site / "static" / "vendor"
    shutil.copytree(VENDOR_DIR, dest, dirs_exist_ok=True)
    images = site / "static" / "images"
    n, external = 0, set()
    for path in sorted(p for p in site.rglob("*") if p.suffix in (".html", ".css")
                       and dest not in p.parents):
        text = path.read_text(encoding="utf-8")
        new = _rewrite(text, Path(os.path.relpath(dest, path.parent)).as_posix(),
                       Path(os.path.relpath(images, path.parent)).as_posix())
        if new != text:
            path.write_text(new, encoding="utf-8")
            n += 1
        external.update(external_loads(new))
    return {"files": n, "external": sorted(external)}
