"""KFP component `evaluate`: gather the pipeline run's training runs into the report."""

from kfp import dsl


def evaluate(profile: str, params_file: str, overrides: str, pipeline_run_id: str) -> str:
    """Evaluate the pipeline run; returns the summary (JSON)."""
    from ecdflow.kfp.steps import step_evaluate

    return step_evaluate(profile, params_file, overrides, pipeline_run_id)


def component(image: str):
    return dsl.component(evaluate, base_image=image, install_kfp_package=False)
