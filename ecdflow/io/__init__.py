"""The input layer: every user file or text (preprocess tables and CHGCAR folders, ``ecdflow
data chgcar``, ``ecdflow predict``, the served pyfunc) is read here, with one set of rules and
messages (docs/inputs.md).

- ``raw``: size limit, gzip/bzip2/xz by magic bytes, UTF-8/BOM/cp1252/Latin-1, CRLF;
- ``reader``: kind from content (``sniff``), ``read_input`` / ``parse_text`` -> ``Item``;
- ``vasp``: POSCAR/CONTCAR and CHGCAR-like volumetric files (total density block);
- ``table``: CSV/TSV/semicolon/JSONL dialects;
- ``formula``: strict formulas.
"""

from ecdflow.io.formula import parse_formula
from ecdflow.io.raw import decode_text, read_bytes, read_text
from ecdflow.io.reader import KINDS, Item, hint_of, parse_text, read_input, read_table, sniff

__all__ = ["KINDS", "Item", "decode_text", "hint_of", "parse_formula", "parse_text",
           "read_bytes", "read_input", "read_table", "read_text", "sniff"]
