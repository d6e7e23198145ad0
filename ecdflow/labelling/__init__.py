"""Labelling (elastic constants with SevenNet, the dcdft check) in its own venv
(``requirements/label.txt``).

May import: ase, numpy, sevenn and the standard library only; no other ecdflow module (the
label venv has none of the main stack).
"""
