"""KFP component `start`: check the run parameters, open the MLflow parent run."""

from typing import NamedTuple

from kfp import dsl


def start(pipeline_run_id: str, profile: str, params_file: str, materials_path: str,
          data_version: str, epochs: int, batch_size: int, patience: int, lr_scale: float,
          seed: int, experiment: str, margin: float, resume_run_id: str = "") -> NamedTuple(
              "StartOutputs", [("run_id", str), ("parent_run_id", str), ("overrides", str),
                               ("data_fingerprint", str)]):
    """Validate the run form's values into config overrides and create (or, resuming,
    reopen) the parent run."""
    from ecdflow.kfp.steps import step_start

    return step_start(pipeline_run_id, profile, params_file, materials_path, data_version,
                      epochs, batch_size, patience, lr_scale, seed, experiment, margin,
                      resume_run_id)


def component(image: str):
    return dsl.component(start, base_image=image, install_kfp_package=False)
