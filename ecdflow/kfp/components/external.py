"""KFP component `external`: external validation of the registered challengers."""

from kfp import dsl


def external(profile: str, params_file: str, overrides: str, pipeline_run_id: str,
             enabled: bool) -> str:
    """Score the run's registered challengers on the references; returns the summary (JSON)."""
    from ecdflow.kfp.steps import step_external

    return step_external(profile, params_file, overrides, pipeline_run_id, enabled)


def component(image: str):
    return dsl.component(external, base_image=image, install_kfp_package=False)
