"""The Kubeflow wing of ecdflow: the `ecd-elastic` pipeline, inside the package so an
installed ecdflow compiles it with no checkout present.

One direction, top to bottom (each module imports only those below it):

- ``runners``: compile to IR YAML, run with kfp.local, submit to a cluster (the CLI's door);
- ``pipeline``: the graph (tasks, resources, retries, caching, secrets, the GPU requests);
- ``components``: one thin KFP component per step, its body one call into ``steps``;
- ``plan``: the build-time plan (training tasks and their order);
- ``steps``: what each task does, one call each into the library (``ecdflow.*``).

Nothing outside this package imports it but the CLI (``ecdflow.cli.pipeline``) and the thin
entry points ``pipelines/ecd_elastic.py`` and ``components/`` at the repository root.
"""
