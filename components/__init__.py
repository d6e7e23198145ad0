"""The KFP components of `ecd-elastic` live in the package, ``ecdflow.kfp.components`` (one
module per step), so an installed ecdflow builds its pipeline without this checkout (see
docs/architecture.md). This folder keeps the container images of those components
(``docker/``).
"""
