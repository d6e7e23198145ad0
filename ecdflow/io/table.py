"""Tables: CSV, TSV, semicolon-separated spreadsheet exports (decimal comma allowed) and JSONL.

The dialect comes from the content: a first line that is a JSON object means JSON lines (a JSON
array of objects is accepted too); otherwise the delimiter is whichever of ``,`` ``;`` or TAB
occurs most in the header line (outside quotes). Semicolon tables whose numbers are written
``24,5`` are read with a decimal comma. Empty cells are dropped from the row (absent, not "").
"""

from __future__ import annotations

import csv
import io
import json
import re

from ecdflow.errors import InputError


def is_table(text: str) -> bool:
    """Whether ``text`` looks like a materials/formula table (header naming ``formula`` or
    ``material_id``, or JSON lines of objects with a ``formula``)."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    if first.lstrip().startswith("{"):
        lines = [ln for ln in text.splitlines() if ln.strip()]
        try:
            obj = json.loads(lines[0])
        except json.JSONDecodeError:
            return len(lines) > 1 and all(ln.lstrip().startswith("{") for ln in lines[:5])
        return isinstance(obj, dict) and ("formula" in obj or "material_id" in obj) and (
            "sites" not in obj)
    head = [c.strip().strip('"').lower() for c in re.split(r"[,;\t]", first)]
    return len(head) > 1 and ("formula" in head or "material_id" in head)


def _delimiter(header: str) -> str:
    counts = {d: next(csv.reader([header], delimiter=d)).__len__() for d in (",", ";", "\t")}
    return max(counts, key=lambda d: (counts[d], d == ","))


def read_table_text(text: str, where: str) -> list[dict]:
    """Rows (dicts) of a table's text; a malformed JSON line becomes an ``_error`` row.

    Raises:
        InputError: no header / no rows, or a CSV the parser cannot split.
    """
    import pandas as pd

    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(where, f"bad JSON array: {exc.msg} (line {exc.lineno})") from None
        return [r if isinstance(r, dict) else {"_error": "bad JSON: not an object"} for r in obj]
    if stripped.startswith("{"):
        rows = []
        for line in text.splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                rows.append(obj if isinstance(obj, dict)
                            else {"_error": "bad JSON: not an object"})
            except json.JSONDecodeError as exc:
                rows.append({"_error": f"bad JSON: {exc.msg}"})
        return rows
    header = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = _delimiter(header)
    comma = delim == ";" and re.search(r"(?<![\d.])\d+,\d+(?![\d,])", text) is not None
    try:  # every cell as text: "NaN" (sodium nitride) or "NA" must not become a missing value
        df = pd.read_csv(io.StringIO(text), sep=delim, dtype=str, keep_default_na=False,
                         skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        why = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(where, f"not a readable table ({why})") from None
    df.columns = [str(c).strip() for c in df.columns]
    return [{k: _cell(k, v, comma) for k, v in r.items() if str(v).strip()}
            for r in df.to_dict("records")]


TEXT_COLUMNS = ("material_id", "formula", "family", "elements")
"""Columns kept as text; every other cell that reads as a number becomes a float."""


def _cell(key: str, value: str, decimal_comma: bool):
    v = value.strip()
    if key in TEXT_COLUMNS:
        return v
    num = v.replace(",", ".") if decimal_comma and re.fullmatch(r"-?\d+,\d*", v) else v
    try:
        return float(num)
    except ValueError:
        return v
