"""The plan of a pipeline run: which training tasks (model x target x split) it holds, known
from the configuration and the materials table before anything runs. Used by the pipeline
build (``ecdflow.kfp``: kfp.local cannot fan out at run time, and KFP cannot size GPU requests
at run time) and by the results page (finished vs planned runs).
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


class TableFacts(NamedTuple):
    """What the plan needs from the materials table: ``index`` (``material_id``, ``formula``,
    ``elements``; ``ecdflow.splits.element_sets`` falls back on the formula) and
    whether any row carries a structure (False: a composition-only table, no density)."""

    index: object  # pandas.DataFrame
    has_structures: bool


def table_facts(settings: Settings) -> TableFacts | None:
    """The configured materials table's ids, elements and whether it holds structures, read
    when the pipeline is built (LOEO splits of absent elements and density models of a
    composition-only table are not planned); None for a remote (``s3://``) table.

    Raises:
        EcdflowError: the local table does not exist.
    """
    import pandas as pd

    from ecdflow.data.table import read_rows
    from ecdflow.preprocess import has_structures

    if is_remote(settings.paths.materials):
        return None
    path = settings.path(settings.paths.materials)
    if not path.exists():
        raise EcdflowError(f"{path}: materials table not found (needed to plan the splits)")
    # the raw rows (no per-row checks: planning only needs ids, elements and the columns)
    rows = [r for r in read_rows(path) if "_error" not in r]
    index = pd.DataFrame({  # elements from the formula where a row has none (splits)
        "material_id": [r.get("material_id") for r in rows],
        "formula": [r.get("formula") for r in rows],
        "elements": [r.get("elements") if isinstance(r.get("elements"), list) else None
                     for r in rows]})
    return TableFacts(index, has_structures(list(enumerate(rows))))


def density_skips(settings: Settings, facts: TableFacts | None = None) -> dict[str, str]:
    """Enabled models that need a structure (an ``ecd`` or volume input) and will not be
    planned because the local materials table is composition-only: model -> the one line
    (``ecdflow.train.no_structure_line``). Empty for a table with structures or a remote one
    (the train task then skips at run time, from the records' manifest)."""
    from ecdflow.train import needs_structure, no_structure_line

    facts = facts or table_facts(settings)
    if facts is None or facts.has_structures:
        return {}
    name = str(settings.paths.materials).rsplit("/", 1)[-1]
    return {m: no_structure_line(m, name) for m in settings.models.enabled if needs_structure(m)}


def build_plan(settings: Settings) -> list[PlannedRun]:
    """The training tasks: ``ecdflow.train.plan_runs`` over the materials table (every
    configured LOEO element for a remote table); a model comes after the models it requires.
    A composition-only table plans no density model (see ``density_skips``)."""
    import pandas as pd

    from ecdflow.train import plan_runs

    facts = table_facts(settings)
    if facts is None:
        index = pd.DataFrame({"material_id": ["-"],
                              "elements": [list(settings.splits.loeo_elements)]})
    else:
        index = facts.index
    skip = density_skips(settings, facts)
    return [PlannedRun(*run) for run in plan_runs(settings, index) if run[0] not in skip]


class Finished(NamedTuple):
    """The training tasks of a stopped pipeline run that need not run again (``tasks``) and the
    data version (``data_hash`` of the records) their runs trained on; None when none."""

    tasks: frozenset[PlannedRun]
    data_hash: str | None


def finished_tasks(settings: Settings, pipeline_run_id: str,
                   plan: list[PlannedRun]) -> Finished:
    """Planned tasks of ``pipeline_run_id`` whose every repeat (``ecdflow.train.run_repeats``)
    has a FINISHED training run in MLflow, on the data version of the run's newest finished
    training run (a task with runs on an older data version is not finished). A resumed local
    run leaves these tasks out of its graph; its validate task checks that the records still
    have this data version (``ecdflow.kfp.steps.step_validate``)."""
    from ecdflow import tracking as tr
    from ecdflow.train import run_repeats

    runs = [r for r in tr.pipeline_runs(settings, pipeline_run_id)
            if r.info.status == "FINISHED"]
    if not runs:
        return Finished(frozenset(), None)
    data_hash = max(runs, key=lambda r: r.info.start_time).data.tags.get(tr.TAG_DATA_VERSION)
    have = {tuple(r.data.tags.get(t) for t in (tr.TAG_MODEL, tr.TAG_TARGET, tr.TAG_SPLIT,
                                               tr.TAG_REPEAT))
            for r in runs if r.data.tags.get(tr.TAG_DATA_VERSION) == data_hash}
    done = frozenset(p for p in plan
                     if all((p.model, p.target, p.split, str(i)) in have
                            for i in range(run_repeats(settings, p.model, p.split))))
    return Finished(done, data_hash if done else None)
