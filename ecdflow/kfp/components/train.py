"""KFP component `train`: one model x target x split (all repeats), logged to MLflow."""

from kfp import dsl
from kfp.dsl import Dataset, Input


def train(profile: str, params_file: str, overrides: str, model: str, target: str, split: str,
          records: Input[Dataset], parent_run_id: str, pipeline_run_id: str) -> str:
    """Train and log nested MLflow runs; returns the results (JSON)."""
    from ecdflow.kfp.steps import step_train

    return step_train(profile, params_file, overrides, model, target, split, records.path,
                      parent_run_id, pipeline_run_id)


def component(image: str):
    return dsl.component(train, base_image=image, install_kfp_package=False)
