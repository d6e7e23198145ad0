"""Great Expectations 1.24 suites for the materials table and the TFRecords, and the runner.

Each expectation carries ``meta.blocking`` (a failure stops training; non-blocking failures
are warnings in the summary) and ``meta.why`` (one line shown in the summary). Results go to
Data Docs HTML and to ``summary.json`` listing which expectation failed on which material ids.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd

from ecdflow.config import Settings
from ecdflow.errors import ValidationFailed
from ecdflow.log import get_logger

log = get_logger("ecdflow.validation")
SOURCE = "ecdflow"
SUMMARY_NAME = "summary.json"
_MAX_IDS = 50


def _meta(why: str, blocking: bool = True) -> dict:
    return {"blocking": blocking, "why": why}


def materials_check_frame(table: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """``materials_frame`` plus one boolean column per plausibility rule
    (``plausible_<rule>``, ``ecdflow.validation.plausibility``) and ``marginal``."""
    from ecdflow.validation.frames import materials_frame
    from ecdflow.validation.plausibility import rule_columns

    frame = materials_frame(table)
    rows = json.loads(table.to_json(orient="records"))
    for name, col in rule_columns(rows, settings.plausibility).items():
        frame[name] = col
    return frame


def plausibility_expectations(settings: Settings) -> list:
    """One blocking expectation per plausibility rule (column ``plausible_<rule>`` all True;
    thresholds in ``settings.plausibility``) and a non-blocking one on marginal rows."""
    import great_expectations.expectations as gxe

    from ecdflow.validation.plausibility import COLUMN_PREFIX

    p = settings.plausibility
    why = {
        "max_bulk_modulus": f"plausibility max_bulk_modulus: K_VRH <= {p.max_K_GPa:g} GPa "
                            "(diamond)",
        "max_shear_modulus": f"plausibility max_shear_modulus: G_VRH <= {p.max_G_GPa:g} GPa "
                             "(diamond)",
        "max_elastic_const": f"plausibility max_elastic_const: C11, C12, C44 <= "
                             f"{p.max_C_GPa:g} GPa (diamond C11)",
        "born_stability": "plausibility born_stability: C11-C12 > 0, C11+2C12 > 0, C44 > 0",
        "poisson_ratio": f"plausibility poisson_ratio: {p.poisson_min:g} <= nu < "
                         f"{p.poisson_max:g} (nu < 0 <=> G > 1.5 K)",
        "c44_over_c11": f"plausibility c44_over_c11: C44 <= {p.max_C44_over_C11:g} C11",
        "short_contact": f"plausibility short_contact: every distance >= "
                         f"{p.min_contact_ratio:g} x sum of covalent radii (Cordero 2008)",
    }
    out = [gxe.ExpectColumnValuesToBeInSet(column=COLUMN_PREFIX + rule, value_set=[True],
                                           meta=_meta(text)) for rule, text in why.items()]
    out.append(gxe.ExpectColumnValuesToBeInSet(
        column="marginal", value_set=[False],
        meta=_meta(f"marginal rows: C' or C44 < {p.marginal_GPa:g} GPa (kept; warning only)",
                   blocking=False)))
    return out


def materials_expectations(settings: Settings) -> list:
    """The materials suite: ids unique, formulas parse, no f-block, Fm-3m, moduli in range,
    K > 0, enough rows, and the plausibility rules (Born stability among them) on the columns
    of ``materials_check_frame``."""
    import great_expectations.expectations as gxe

    v = settings.validation
    top = v.max_modulus_GPa
    return [
        gxe.ExpectTableRowCountToBeBetween(min_value=v.min_rows,
                                           meta=_meta(f"at least {v.min_rows} materials")),
        gxe.ExpectColumnValuesToBeUnique(column="material_id", meta=_meta("ids unique")),
        gxe.ExpectColumnValuesToNotBeNull(column="material_id", meta=_meta("every row has an id")),
        gxe.ExpectColumnValuesToBeInSet(column="formula_parses", value_set=[True],
                                        meta=_meta("formula parses")),
        gxe.ExpectColumnValuesToBeInSet(column="f_block", value_set=[False],
                                        meta=_meta("no lanthanides/actinides")),
        gxe.ExpectColumnValuesToBeInSet(column="spacegroup", value_set=[225],
                                        meta=_meta("space group Fm-3m (225)")),
        gxe.ExpectColumnValuesToBeBetween(column="K_VRH", min_value=0.0, max_value=top,
                                          strict_min=True, meta=_meta(f"0 < K_VRH <= {top} GPa")),
        gxe.ExpectColumnValuesToBeBetween(column="G_VRH", min_value=0.0, max_value=top,
                                          strict_min=True, meta=_meta(f"0 < G_VRH <= {top} GPa")),
        gxe.ExpectColumnValuesToBeInSet(column="has_label", value_set=[True],
                                        meta=_meta("a finite K_VRH or G_VRH")),
        *plausibility_expectations(settings),
    ]


def records_expectations(settings: Settings, count: int) -> list:
    """The records suite: count as in the manifest, ids unique, grid shape, finite ECD,
    integrated charge = valence electrons, non-negative procrystal, 132 finite Magpie values."""
    import great_expectations.expectations as gxe

    tol = settings.validation.charge_rel_tol
    return [
        gxe.ExpectTableRowCountToEqual(value=count, meta=_meta("record count = manifest count")),
        gxe.ExpectColumnValuesToBeUnique(column="material_id", meta=_meta("ids unique")),
        gxe.ExpectColumnValuesToBeInSet(column="shape_ok", value_set=[True],
                                        meta=_meta("ECD shape = manifest grid^3")),
        gxe.ExpectColumnValuesToBeInSet(column="ecd_finite", value_set=[True],
                                        meta=_meta("ECD finite")),
        gxe.ExpectColumnValuesToBeBetween(column="charge_rel_err", min_value=0.0, max_value=tol,
                                          meta=_meta(f"integrated charge within {tol:.0%} of "
                                                     "the valence electron count")),
        gxe.ExpectColumnValuesToBeBetween(
            column="min_density", min_value=-1e-4,
            meta=_meta("procrystal density non-negative (warning only: band-limited "
                       "procrystals of small-ion compounds ring negative below ~60^3)",
                       blocking=False)),
        gxe.ExpectColumnValuesToBeInSet(column="magpie_len", value_set=[132],
                                        meta=_meta("132 Magpie features")),
        gxe.ExpectColumnValuesToBeInSet(column="magpie_finite", value_set=[True],
                                        meta=_meta("Magpie features finite")),
    ]


def _context(root: Path):
    """A file-backed GX context under ``root`` (progress bars off, no usage statistics)."""
    import great_expectations as gx

    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    root.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    try:
        from great_expectations.data_context.types.base import ProgressBarsConfig

        ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    except Exception:  # noqa: BLE001 - cosmetic only
        pass
    return ctx


def _replace(store, obj):
    """Get-or-add with the newest definition: delete an older one of the same name, add."""
    try:
        store.delete(obj.name)
    except Exception:  # noqa: BLE001 - GX raises DataContextError when absent
        pass
    return store.add(obj)


def _batch_definition(ctx, name: str):
    try:
        ds = ctx.data_sources.get(SOURCE)
    except KeyError:
        ds = ctx.data_sources.add_pandas(SOURCE)
    try:
        asset = ds.get_asset(name)
    except LookupError:
        asset = ds.add_dataframe_asset(name)
    try:
        return asset.get_batch_definition("whole")
    except KeyError:
        return asset.add_batch_definition_whole_dataframe("whole")


def validate_frame(ctx, name: str, frame: pd.DataFrame, expectations: list) -> dict:
    """Validate ``frame`` against ``expectations`` as suite ``name`` (Data Docs updated).

    Returns ``{"success", "expectations": [{expectation, column, why, blocking, success,
    unexpected_count, observed_value, failed_ids}]}``.
    """
    import great_expectations as gx

    suite = gx.ExpectationSuite(name=name)
    for e in expectations:
        suite.add_expectation(e)
    suite = _replace(ctx.suites, suite)
    vd = _replace(ctx.validation_definitions,
                  gx.ValidationDefinition(name=name, data=_batch_definition(ctx, name),
                                          suite=suite))
    cp = _replace(ctx.checkpoints, gx.Checkpoint(
        name=f"{name}-checkpoint", validation_definitions=[vd],
        actions=[gx.checkpoint.UpdateDataDocsAction(name="data-docs")],
        result_format={"result_format": "COMPLETE",
                       "unexpected_index_column_names": ["material_id"]}))
    res = cp.run(batch_parameters={"dataframe": frame})
    out = []
    for run in res.run_results.values():
        for r in run.results:
            cfg, rr = r.expectation_config, r.result or {}
            ids = [str(d.get("material_id")) for d in rr.get("unexpected_index_list") or []]
            out.append({
                "expectation": cfg.type, "column": cfg.kwargs.get("column"),
                "why": (cfg.meta or {}).get("why", ""),
                "blocking": bool((cfg.meta or {}).get("blocking", True)),
                "success": bool(r.success), "unexpected_count": rr.get("unexpected_count"),
                "observed_value": rr.get("observed_value"),
                "failed_ids": sorted(set(ids))[:_MAX_IDS],
            })
    return {"success": all(e["success"] for e in out), "rows": len(frame), "expectations": out}


def _failure_line(summary: dict, blocking: bool = True) -> str:
    parts = []
    for suite, res in summary["suites"].items():
        for e in res["expectations"]:
            if e["blocking"] == blocking and not e["success"]:
                ids = e["failed_ids"]
                what = f"{len(ids)} rows, e.g. {', '.join(ids[:3])}" if ids else \
                    f"observed {e['observed_value']}"
                parts.append(f"{suite}: {e['expectation']}"
                             f"{'(' + e['column'] + ')' if e['column'] else ''} [{what}]")
    return "; ".join(parts)


def run_validation(
    settings: Settings,
    records_dir: str | None = None,
    materials_path: str | None = None,
    out_dir: str | None = None,
    raise_on_failure: bool = True,
) -> dict:
    """Validate the materials table and the TFRecords with Great Expectations.

    Args:
        settings: configuration (``validation.*`` thresholds, default paths).
        records_dir: shards + manifest (default ``paths.records_dir``; local or s3://).
        materials_path: materials table (default ``paths.materials``).
        out_dir: where ``gx/`` (context + Data Docs) and ``summary.json`` go
            (default ``paths.validation_dir``).
        raise_on_failure: raise ``ValidationFailed`` when a blocking expectation fails.

    Returns:
        The summary (also written to ``<out_dir>/summary.json``): success, per-suite results
        with failed material ids, data_hash of the records, Data Docs path.
    """
    from ecdflow.records import read_manifest
    from ecdflow.validation.frames import read_raw_table, records_frame

    materials_path = str(materials_path or settings.path(settings.paths.materials))
    records_dir = str(records_dir or settings.path(settings.paths.records_dir))
    out = Path(out_dir or settings.path(settings.paths.validation_dir))
    table = read_raw_table(materials_path)
    manifest = read_manifest(records_dir)
    log.info("validate: %d table rows, %d records (%s)", len(table), manifest["count"],
             manifest["data_hash"][:19])
    ctx = _context(out)
    suites = {
        "materials": validate_frame(ctx, "materials", materials_check_frame(table, settings),
                                    materials_expectations(settings)),
        "records": validate_frame(ctx, "records", records_frame(records_dir, table),
                                  records_expectations(settings, int(manifest["count"]))),
    }
    ctx.build_data_docs()
    docs = out / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    from ecdflow.validation.docs import offline_data_docs

    offline_data_docs(docs)
    failed = [e for s in suites.values() for e in s["expectations"] if not e["success"]]
    summary = {
        "success": not any(e["blocking"] for e in failed),
        "data_hash": manifest["data_hash"], "materials": materials_path.rsplit("/", 1)[-1],
        "n_materials": len(table), "n_records": int(manifest["count"]),
        "failed": sum(e["blocking"] for e in failed),
        "warnings": sum(not e["blocking"] for e in failed),
        "data_docs": str(docs), "suites": suites,
    }
    (out / SUMMARY_NAME).write_text(json.dumps(summary, indent=1, default=str) + "\n")
    warn = _failure_line(summary, blocking=False)
    if warn:
        log.warning("validation warnings (not blocking): %s", warn)
    line = _failure_line(summary)
    if line:
        log.error("validation failed: %s", line)
        if raise_on_failure:
            raise ValidationFailed(f"blocking expectations failed: {line}")
    return summary


def summarize(summary: dict) -> str:
    """One line for the CLI."""
    n = sum(len(s["expectations"]) for s in summary["suites"].values())
    state = "passed" if summary["success"] else "FAILED"
    return (f"validation {state}: {n - summary['failed'] - summary['warnings']}/{n} "
            f"expectations passed, {summary['warnings']} warnings, "
            f"{summary['n_materials']} materials, {summary['n_records']} records; "
            f"docs {summary['data_docs']}")



def metrics_of(summary: dict) -> dict:
    """Small numeric metrics of a summary (for DVC ``metrics``)."""
    n = sum(len(s["expectations"]) for s in summary["suites"].values())
    return {"success": bool(summary["success"]), "expectations": n,
            "failed": summary["failed"], "warnings": summary["warnings"],
            "n_materials": summary["n_materials"],
            "n_records": summary["n_records"], "data_hash": summary["data_hash"]}
