"""Data validation with Great Expectations: the materials table and the TFRecords.

``run_validation`` builds per-row frames (``frames.py``), validates them against the suites
(``suites.py``), writes Data Docs HTML and ``summary.json``, and raises ``ValidationFailed``
when a blocking expectation fails.

May import: ``ecdflow.data``, ``records``, ``features``, ``density`` and the ground floor;
never a later stage or a door (cli, kfp).
"""

from ecdflow.validation.frames import materials_frame, records_frame
from ecdflow.validation.suites import run_validation

__all__ = ["materials_frame", "records_frame", "run_validation"]
