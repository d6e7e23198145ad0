"""Offline Data Docs (vendored assets, CDN rewriting) and the evaluation report's rendering."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from ecdflow.html import offline
from ecdflow.html.report import cv_heading, element_table, render_report

GX_TEMPLATES = Path(__import__("great_expectations").__file__).parent / "render/view/templates"


def test_every_cdn_load_in_gx_templates_is_mapped():
    """A GX upgrade that adds a CDN asset fails here, not on an air-gapped cluster."""
    urls = set()
    for t in GX_TEMPLATES.glob("*.j2"):
        urls.update(u for u in offline.external_loads(t.read_text())
                    if not u.startswith(offline.GX_ASSETS))
    assert urls, "no CDN URL found: the GX templates moved"
    assert urls <= set(offline.CDN), sorted(urls - set(offline.CDN))


@pytest.mark.parametrize("spec", sorted(offline.PACKAGES))
def test_vendored_package_is_complete_with_licence(spec):
    d = offline.VENDOR_DIR / offline.package_dir(spec)
    for f in offline.PACKAGES[spec]:
        assert (d / f).stat().st_size > 0, f
    pkg = json.loads((d / "package.json").read_text())
    assert f"{pkg['name']}@{pkg['version']}" == spec and pkg["license"]
    manifest = {m["dir"]: m for m in json.loads((offline.VENDOR_DIR / "VENDOR.json").read_text())}
    assert manifest[d.name]["integrity"].startswith("sha512-")


@pytest.mark.parametrize("url", sorted(offline.CDN))
@pytest.mark.parametrize("depth", [0, 1, 4])
def test_cdn_url_rewritten_to_a_local_file_at_any_depth(tmp_path, url, depth):
    site = tmp_path / "site"
    page = site.joinpath(*[f"d{i}" for i in range(depth)], "page.html")
    page.parent.mkdir(parents=True, exist_ok=True)
    (site / "index.html").write_text("<html></html>")
    tag = (f'<link rel="stylesheet" href="{url}" integrity="sha384-x" crossorigin="anonymous">'
           if ".css" in url else
           f'<script src="{url}" integrity="sha384-x" crossorigin="anonymous"></script>')
    page.write_text(f"<html><head>{tag}<a href=\"https://greatexpectations.io\">GX</a>"
                    f'<img src="{offline.GX_ASSETS}logo-long.png?d=1&dataContextId=abc">'
                    "</head></html>")
    res = offline.make_site_offline(site)
    html = page.read_text()
    assert res["external"] == [] and url not in html and "dataContextId" not in html
    assert "integrity=" not in html and "crossorigin=" not in html
    assert 'href="https://greatexpectations.io"' in html  # links are not loads
    local = re.search(r'(?:src|href)="([^"]*static/vendor/[^"]*)"', html).group(1)
    assert (page.parent / local).resolve().is_file()
    assert (page.parent / local).resolve() == (
        site / "static/vendor" / offline.vendored_path(offline.CDN[url])).resolve()


def test_unknown_external_load_is_reported(tmp_path):
    (tmp_path / "index.html").write_text('<script src="https://cdn.example.org/x.js"></script>'
                                         "<style>a{background:url(//cdn.example.org/y.png)}"
                                         "</style>")
    res = offline.make_site_offline(tmp_path)
    assert res["external"] == ["//cdn.example.org/y.png", "https://cdn.example.org/x.js"]
    with pytest.raises(FileNotFoundError):
        offline.make_site_offline(tmp_path / "nothing")


@pytest.mark.parametrize(("k", "folds", "repeats", "expected"), [
    (2, ["0", "1"], [0], "k-fold CV (k = 2): all folds ran, 1 repeat"),
    (5, ["0", "1"], [0], "k-fold CV (k = 5): folds 0, 1 ran (2 of 5), 1 repeat"),
    (5, ["0", "1", "2", "3", "4"], [0, 1, 2, 3, 4], "k-fold CV (k = 5): all folds ran, 5 repeats"),
])
def test_cv_heading_names_what_ran(k, folds, repeats, expected):
    assert cv_heading({"n_folds": k, "folds": folds, "repeats": repeats}) == expected


def _elem() -> pd.DataFrame:
    rows = []
    for el, n, maes in (("Na", 30, (3.14159, 2.0)), ("Cl", 12, (9.87654, 12.3)),
                        ("Xe", 2, (99.0, 98.0))):
        for model, mae in zip(("a", "b"), maes, strict=True):
            rows.append({"model": model, "target": "K_VRH", "element": el, "n": n,
                         "n_predictions": n, "mae_gpa": mae, "rmse_gpa": mae * 1.5})
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("min_n", "shown"), [(1, ["Xe", "Cl", "Na"]), (10, ["Cl", "Na"]),
                                             (13, ["Na"]), (31, [])])
def test_element_table_threshold_order_rounding_best(min_n, shown):
    t, n_shown, total = element_table(_elem(), "K_VRH", min_n)
    assert list(t.index) == shown and n_shown == len(shown) and total == 3
    if "Na" in shown:
        assert t.loc["Na", "a"] == "3.1 / 4.7" and t.loc["Na", "b"] == "**2.0 / 3.0**"
        assert t.loc["Na", "n"] == 30
    if "Cl" in shown:
        assert t.loc["Cl", "a"] == "**9.9 / 14.8**"


def test_report_html_self_contained_with_bold_best(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from ecdflow.plots import parity_plot

    fig = parity_plot([1.0, 2.0, 3.0], [1.1, 1.9, 3.2], tmp_path / "parity_rf_magpie_K_VRH.png",
                      metrics_label="pooled")
    proto = {"profile": "quick", "git_commit": "abc", "data_version": "v1", "n_materials": 48,
             "materials_source": "CV splits", "grid": "8", "n_folds": 5, "k_source": "x",
             "folds": ["0", "1"], "repeats": [0], "loeo": ["Cs"], "models": ["a", "b"],
             "targets": ["K_VRH"], "epochs_max": "8", "epochs_run": "3-8", "n_runs": 6}
    t2 = pd.DataFrame({"a": ["0.5 / 40.0"], "b": ["**0.6 / 30.0**"]},
                      index=pd.Index(["K_VRH"], name="target"))
    md, html = render_report(tmp_path, "pr-<1>", proto, {"table2_cv": t2}, pd.DataFrame(),
                             _elem(), [fig], 10, "Different data.")
    h = html.read_text()
    assert "k-fold CV (k = 5): folds 0, 1 ran (2 of 5), 1 repeat" in h
    assert '<td class="best"><strong>0.6 / 30.0</strong></td>' in h and "**" not in h
    assert "pr-&lt;1&gt;" in h  # escaped
    assert h.count('src="data:image/png;base64,') == 1 and offline.external_loads(h) == []
    assert ">Xe<" not in h and ">Na<" in h and "2 of 3 elements" in h
    assert "**0.6 / 30.0**" in md.read_text() and "(parity_rf_magpie_K_VRH.png)" in md.read_text()


def _run(model: str, kind: str, fold: str, repeat: int, keras: bool):
    from types import SimpleNamespace

    from ecdflow import tracking as t

    tags = {t.TAG_MODEL: model, t.TAG_SPLIT_KIND: kind, t.TAG_FOLD: fold,
            t.TAG_REPEAT: str(repeat), t.TAG_TARGET: "K_VRH", t.TAG_PROFILE: "quick",
            t.TAG_GIT: "0123456789abcdef", t.TAG_DATA_VERSION: "sha256:abc"}
    params = {"grid": "32", "training.epochs": "8"}
    metrics = {"epochs_run": 5.0 if keras else 1.0, **({"loss": 1.0} if keras else {})}
    if keras and fold == "1":
        metrics["epochs_run"] = 8.0
    return SimpleNamespace(data=SimpleNamespace(tags=tags, params=params, metrics=metrics))


@pytest.mark.parametrize("with_splits", [True, False])
def test_protocol_reads_what_ran(with_splits):
    from ecdflow.html.report import protocol_of

    runs = [_run(m, "cv", f, 0, m == "cnn3d") for m in ("rf_magpie", "cnn3d") for f in "01"]
    runs.append(_run("cnn3d", "loeo", "Cs", 0, True))
    preds = pd.DataFrame({"material_id": ["a", "b", "c", "a"], "split_kind": ["cv"] * 3 + ["loeo"]})
    splits = {f"cv-{k}": {"train": [], "test": [str(i) for i in range(k, 50, 5)]}
              for k in range(5)}
    p = protocol_of(runs, preds, splits if with_splits else None, configured_folds=5)
    assert p["folds"] == ["0", "1"] and p["repeats"] == [0] and p["loeo"] == ["Cs"]
    assert (p["n_folds"], p["grid"], p["epochs_max"], p["epochs_run"]) == (
        5, "32\u00b3 points", "8", "5-8")  # the random forest's epochs_run = 1 is not an epoch
    assert p["n_materials"] == (50 if with_splits else 3)
    assert ("splits.json" in p["k_source"]) and (
        ("configuration" in p["k_source"]) != with_splits)
    assert p["git_commit"] == "0123456789ab" and p["models"] == ["cnn3d", "rf_magpie"]
