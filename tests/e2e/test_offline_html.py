"""Every HTML artifact of a tiny run renders in headless Chromium with the network cut off:
the Data Docs index and a validation result (GX pages on vendored assets) and the evaluation
report (self-contained). Screenshots go to ``.ecdflow/screenshots/`` and pytest's tmp dir."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from ecdflow.config import REPO_ROOT, load_settings
from ecdflow.testing import is_local_url, offline_browser, visit

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "unit"))
from _demo_runs import demo_settings, make_pipeline_run  # noqa: E402
from test_validation import _ecd, _write, small_rows  # noqa: E402

pytestmark = pytest.mark.slow
SHOTS = REPO_ROOT / ".ecdflow" / "screenshots"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict:
    """A tiny validation run (4 materials, both suites) and a tiny evaluated pipeline run."""
    from ecdflow.evaluate import evaluate_pipeline_run
    from ecdflow.validation.suites import run_validation

    tmp = tmp_path_factory.mktemp("html")
    rows = small_rows(4)
    items = []
    for r in rows:
        ecd, prov = _ecd(r)
        items.append((dict(r, provenance=prov), ecd, np.zeros(132, np.float32)))
    _write(tmp / "rec", items)
    (tmp / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    val = run_validation(load_settings(overrides={"validation": {"min_rows": 3}}),
                         records_dir=str(tmp / "rec"), materials_path=str(tmp / "m.jsonl"),
                         out_dir=str(tmp / "val"))
    (tmp / "eval").mkdir()
    s = demo_settings(tmp / "eval")
    report = evaluate_pipeline_run(s, make_pipeline_run(s), tsne=False)
    return {"docs": Path(val["data_docs"]), "report": report}


def _shot(tmp_path: Path, name: str) -> Path:
    return tmp_path / f"{name}.png"


def _keep(shot: Path) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SHOTS / shot.name)
    assert shot.stat().st_size > 5_000  # a blank page compresses to ~2 kB


def test_html_artifacts_render_offline(artifacts, tmp_path):
    docs, report = artifacts["docs"], artifacts["report"]
    result = next(docs.parent.glob("validations/materials/**/*.html"))
    with offline_browser() as ctx:
        index = visit(ctx, docs, _shot(tmp_path, "data-docs-index"),
                      wait_for="#Validation-Results table tbody tr td")
        # bootstrap-table fills the list from JS: both suites' results are rows in the DOM
        listed = index.locator("#Validation-Results table tbody tr").all_inner_texts()
        assert len(listed) == 2, listed
        assert {t.split()[-1] for t in listed} == {"materials", "records"}
        assert index.locator("#Validation-Results table tbody tr a").count() >= 2
        assert index.errors == []

        page = visit(ctx, result, _shot(tmp_path, "data-docs-validation-materials"),
                     wait_for="table tbody tr")
        assert page.locator("text=Succeeded").count() >= 1
        assert page.locator("table tbody tr").count() >= 10  # one row per expectation
        assert page.evaluate("typeof jQuery !== 'undefined' && typeof vega !== 'undefined'")
        # Bootstrap's stylesheet applied (not a bare page): its .table class sets the width
        assert page.evaluate("getComputedStyle(document.querySelector('table.table')).width"
                             ) != "auto"
        assert page.errors == []

        rep = visit(ctx, report["report_html"], _shot(tmp_path, "evaluation-report"),
                    wait_for="table.results tbody tr")
        tables = rep.locator("table.results")
        assert tables.count() >= 3 and rep.locator("table.results tbody tr").count() >= 4
        assert rep.locator("table.results td.best strong").count() >= 2  # CV + LOEO rows
        assert "k-fold CV (k = 2)" in rep.inner_text("body")
        widths = rep.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert len(widths) == len(report["figures"]) and min(widths) > 0
        assert rep.errors == []

        assert ctx.external == [], ctx.external
        assert ctx.requests and all(is_local_url(u) for u in ctx.requests)
    for name in ("data-docs-index", "data-docs-validation-materials", "evaluation-report"):
        _keep(_shot(tmp_path, name))
