"""The materials data: Fm-3m prototypes and generated structures, the labelled table and its
per-row checks (``table.load_materials``, the one reader), quarantine, merge, the data card.

May import: the ground floor (``ecdflow.schema``, ``config``, ``errors``, ``log``),
``features`` and ``density``; never a stage (train, registry, ...) or a door (cli, kfp).
"""
