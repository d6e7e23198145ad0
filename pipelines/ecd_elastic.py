"""Compile the Kubeflow pipeline `ecd-elastic` (same as `ecdflow pipeline compile`).

    python pipelines/ecd_elastic.py [--profile paper] [--out ecd-elastic.yaml]

The graph lives in the package (``ecdflow.kfp.pipeline``) so an installed ecdflow compiles it
with no checkout; this file is the script entry point the project layout promises.
"""

from ecdflow.kfp.pipeline import build_pipeline  # noqa: F401  (the graph, for readers)
from ecdflow.kfp.runners import main

if __name__ == "__main__":
    main()
