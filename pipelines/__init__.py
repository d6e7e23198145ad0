"""Kubeflow pipelines of ecdflow; each module compiles itself under __main__."""
