"""KFP component `register`: best model per target into the MLflow registry (as challenger)."""

from kfp import dsl


def register(profile: str, params_file: str, overrides: str, pipeline_run_id: str,
             enabled: bool) -> str:
    """Register the best model per target as its challenger; returns versions (JSON)."""
    from ecdflow.kfp.steps import step_register

    return step_register(profile, params_file, overrides, pipeline_run_id, enabled)


def component(image: str):
    return dsl.component(register, base_image=image, install_kfp_package=False)
