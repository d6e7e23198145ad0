"""KFP component `finish` (cluster runs only): the pipeline's exit task, closing the MLflow
parent run whatever happened (kfp.local cannot run exit handlers; `run-local` closes it)."""

from kfp import dsl


def finish(status: dsl.PipelineTaskFinalStatus, pipeline_run_id: str, profile: str,
           params_file: str, experiment: str) -> str:
    """End the parent run FINISHED with its results tables, or FAILED naming what failed
    (``status``: the final state of the tasks it guards); returns the pipeline run id."""
    from ecdflow.kfp.steps import step_finish

    return step_finish(pipeline_run_id, profile, params_file, experiment, status.state,
                       status.error_message)


def component(image: str):
    return dsl.component(finish, base_image=image, install_kfp_package=False)
