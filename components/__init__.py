"""The KFP components of `ecd-elastic` live in the package, ``ecdflow.kfp.components`` (one
module per step), so an installed ecdflow builds its pipeline without this checkout. This
folder keeps the container images (``docker/``) and re-exports the component modules.
"""

from ecdflow.kfp.components import (  # noqa: F401
    evaluate,
    external,
    gate,
    preprocess,
    register,
    start,
    train,
    validate,
)
