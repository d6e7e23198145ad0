"""The build-time plan of `ecd-elastic`: the training tasks (``ecdflow.plan``, re-exported
here for the pipeline code) and which must wait for which.
"""

from __future__ import annotations

from ecdflow.plan import (
    Finished,
    PlannedRun,
    TableFacts,
    build_plan,
    density_skips,
    finished_tasks,
    table_facts,
)

__all__ = ["Finished", "PlannedRun", "TableFacts", "build_plan", "density_skips",
           "finished_tasks", "table_facts", "dependencies"]


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
