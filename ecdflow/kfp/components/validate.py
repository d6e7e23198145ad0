"""KFP component `validate`: Great Expectations; a failed blocking expectation stops the run."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output


def validate(profile: str, params_file: str, overrides: str, records: Input[Dataset],
             data_docs: Output[Artifact], expect_data_hash: str = "") -> str:
    """Validate the records (Data Docs into ``data_docs``); returns the summary (JSON)."""
    from ecdflow.kfp.steps import step_validate

    # only a resumed local run passes the hash: an image built before it existed still runs
    return step_validate(profile, params_file, overrides, records.path, data_docs.path,
                         **({"expect_data_hash": expect_data_hash} if expect_data_hash else {}))


def component(image: str):
    return dsl.component(validate, base_image=image, install_kfp_package=False)
