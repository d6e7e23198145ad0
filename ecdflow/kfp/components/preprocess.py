"""KFP component `preprocess`: Apache Beam, materials table -> TFRecord shards."""

from kfp import dsl
from kfp.dsl import Dataset, Output


def preprocess(profile: str, params_file: str, overrides: str, data_fingerprint: str,
               records: Output[Dataset]) -> str:
    """Write the records into the output Dataset; returns the manifest (JSON).
    ``data_fingerprint`` only keys the cache (table content, data version, code commit)."""
    from ecdflow.kfp.steps import step_preprocess

    return step_preprocess(profile, params_file, overrides, records.path)


def component(image: str):
    return dsl.component(preprocess, base_image=image, install_kfp_package=False)
