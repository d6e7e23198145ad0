"""Script entry points of the Kubeflow pipelines (the code lives in ``ecdflow.kfp``)."""
