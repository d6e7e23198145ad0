"""The build-time plan of `ecd-elastic`: which training tasks the graph holds and which must
wait for which. Known when the pipeline is built (kfp.local cannot fan out at run time, and
KFP cannot size GPU requests at run time), from the configuration and the materials table.
"""

from __future__ import annotations

from typing import NamedTuple

from ecdflow.config import Settings
from ecdflow.errors import EcdflowError
from ecdflow.schema import TARGET_SLUG, is_remote


class PlannedRun(NamedTuple):
    """One training task of the pipeline."""

    model: str
    target: str
    split: str

    @property
    def task_name(self) -> str:
        """Display name in the KFP UI, e.g. ``train-cnn3d-k-vrh-cv-0``."""
        slug = f"train-{self.model}-{TARGET_SLUG.get(self.target, self.target)}-{self.split}"
        return slug.lower().replace("_", "-")


def plan_index(settings: Settings):
    """``material_id``/``elements`` of the configured materials table, to drop LOEO splits of
    absent elements when the pipeline is built; None for a remote (``s3://``) table."""
    import pandas as pd

    from ecdflow.data.table import read_rows

    if is_remote(settings.paths.materials):
        return None
    path = settings.path(settings.paths.materials)
    if not path.exists():
        raise EcdflowError(f"{path}: materials table not found (needed to plan the splits)")
    # the raw rows (no per-row checks: planning only needs ids and elements, fast)
    return pd.DataFrame(read_rows(path))[["material_id", "elements"]]


def build_plan(settings: Settings) -> list[PlannedRun]:
    """The training tasks: ``ecdflow.train.plan_runs`` over the materials table (every
    configured LOEO element for a remote table); a model comes after the models it requires."""
    import pandas as pd

    from ecdflow.train import plan_runs

    index = plan_index(settings)
    if index is None:
        index = pd.DataFrame({"material_id": ["-"],
                              "elements": [list(settings.splits.loeo_elements)]})
    return [PlannedRun(*run) for run in plan_runs(settings, index)]


def dependencies(plan: list[PlannedRun]) -> dict[PlannedRun, list[PlannedRun]]:
    """For every run of a model that starts from other models (fusion), the planned runs of
    those models with the same target and split: its task must come after them."""
    from ecdflow.models import get_spec

    out: dict[PlannedRun, list[PlannedRun]] = {}
    for run in plan:
        req = get_spec(run.model).requires
        if req:
            out[run] = [r for r in plan if r.model in req and r.target == run.target
                        and r.split == run.split]
    return out
