"""KFP component `validate`: Great Expectations; a failed blocking expectation stops the run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output


def validate(profile: str, params_file: str, overrides: str, records: Input[Dataset],
             data_docs: Output[Artifact], expect_data_hash: str = "") -> str:
    """Validate the records (Data Docs into ``data_docs``); returns the summary (JSON)."""
    from ecdflow.kfp.steps import step_validate

    return step_validate(profile, params_file, overrides, records.path, data_docs.path,
                         expect_data_hash)


def component(image: str):
    return dsl.component(validate, base_image=image, install_kfp_package=False)
