"""Thin KFP lightweight components of `ecd-elastic`, one module per step.

Each module holds the component function (one call into ``ecdflow.kfp.steps``; KFP ships the
function's source to the task as is, so the import lives inside the body) and
``component(image)``, which makes the KFP component with the project's image as
``base_image``. The images already hold kfp from requirements/lock.txt, so no
``pip install kfp`` at task start.

May import: kfp, and (inside the bodies) ``ecdflow.kfp.steps``. Imported by
``ecdflow.kfp.pipeline`` only.
"""
