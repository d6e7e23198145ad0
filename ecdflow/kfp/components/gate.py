"""KFP component `gate`: judge each challenger, record the verdict (promotion stays human)."""

from kfp import dsl
from kfp.dsl import Metrics, Output


def gate(profile: str, params_file: str, overrides: str, pipeline_run_id: str, enabled: bool,
         verdict: Output[Metrics]) -> str:
    """Challenger vs champion and baseline: verdict as version tags, an MLflow run and the
    ``verdict`` Metrics (``gate_passed_<target>`` 1/0); returns the verdicts (JSON)."""
    from ecdflow.kfp.steps import step_gate

    return step_gate(profile, params_file, overrides, pipeline_run_id, enabled, verdict)


def component(image: str):
    return dsl.component(gate, base_image=image, install_kfp_package=False)
