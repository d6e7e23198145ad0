"""Thin KFP lightweight components of `ecd-elastic`, one per step.

Each module holds the component function (one call into ``ecdflow.pipeline``; the source is
shipped to the task as is, so imports live inside the body) and ``component(image)``, which
makes the KFP component with the project's image as ``base_image``. The images already hold
kfp from requirements/lock.txt, so no ``pip install kfp`` at task start.
"""
