"""Strict chemical formulas: read exactly or refused with the reason.

pymatgen's ``Composition`` is lenient: ``"D2O"`` becomes H2O, ``"Xx"`` a dummy species,
``"Na Cl"`` NaCl, and some strings fail with messages that name a fragment only. Here a formula
must be a sequence of element symbols (capital letter + optional lowercase letter), each with an
optional amount (integer or decimal), with optional parenthesised groups and an amount after
the group (``Ca(OH)2``); spaces between tokens are allowed. Anything else (lowercase ``nacl``,
trailing junk ``NaCl2x``, charges, hydrate dots, isotopes D/T, zero amounts, unknown symbols)
is an ``InputError`` naming the formula and the reason. The accepted string is then handed to
``Composition``.
"""

from __future__ import annotations

import re

from ecdflow.errors import InputError

_TOKEN = re.compile(r"\s*(?:(?P<el>[A-Z][a-z]?)|(?P<open>\()|(?P<close>\))(?P<mult>\d+(?:\.\d+)?)?)"
                    r"(?P<amt>(?<=[a-z]|[A-Z])\d+(?:\.\d+)?)?")
_ISOTOPES = {"D": "H", "T": "H"}


def parse_formula(formula: object, where: str | None = None):
    """A pymatgen ``Composition`` of ``formula`` read exactly.

    Args:
        formula: e.g. ``"NaCl"``, ``"Cs2NaScCl6"``, ``"Ca(OH)2"``, ``"Na0.5K0.5Cl"``.
        where: what to name in the error (default: the formula itself).

    Raises:
        InputError: empty, not a string, a character or symbol the grammar does not allow,
            unknown element, isotope symbol, unbalanced parentheses or a zero amount.
    """
    from pymatgen.core import Composition, Element

    if not isinstance(formula, str) or not formula.strip():
        raise InputError(where or repr(formula), "empty formula")
    text = formula.strip()
    name = where or text
    pos, depth = 0, 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            bad = text[pos:].lstrip()[:1]
            why = ("lowercase element symbol (symbols start with a capital letter)"
                   if bad.islower() else f"unexpected character {bad!r}")
            raise InputError(name, f"bad formula {text!r}: {why} at position "
                                   f"{len(text) - len(text[pos:].lstrip()) + 1}")
        if m["el"]:
            sym = m["el"]
            if sym in _ISOTOPES:
                raise InputError(name, f"bad formula {text!r}: isotope symbol {sym} "
                                       f"(write {_ISOTOPES[sym]})")
            if not Element.is_valid_symbol(sym):
                raise InputError(name, f"bad formula {text!r}: unknown element {sym}")
            amt = m["amt"]
            if amt is not None and float(amt) == 0:
                raise InputError(name, f"bad formula {text!r}: zero amount of {sym}")
        elif m["open"]:
            depth += 1
        elif m["close"]:
            depth -= 1
            if depth < 0:
                raise InputError(name, f"bad formula {text!r}: unbalanced ')'")
        pos = m.end()
    if depth:
        raise InputError(name, f"bad formula {text!r}: unbalanced '('")
    try:
        comp = Composition(text.replace(" ", ""))
    except Exception as exc:  # noqa: BLE001 - the grammar above should have caught it
        raise InputError(name, f"bad formula {text!r}: {str(exc)[:80]}") from None
    if comp.num_atoms <= 0 or not comp.elements:
        raise InputError(name, f"bad formula {text!r}: no atoms")
    return comp


def looks_like_formula(text: str) -> bool:
    """Whether one line of text is written like a formula (for input detection only)."""
    s = text.strip()
    return bool(s) and "\n" not in s and len(s) < 120 and bool(
        re.fullmatch(r"[A-Za-z0-9().\s]+", s)) and s[0].isupper()
