"""ecdflow: elastic moduli (K_VRH, G_VRH, GPa) of Fm-3m crystals from their 3D electronic
charge density, and the model life cycle around them.

What lives here: the core library of plain functions and small classes. Floors, top down
(a module imports only from the floors below it; docs/architecture.md draws them):

- doors: ``cli/`` (the ``ecdflow`` command) and ``kfp/`` (the Kubeflow pipeline);
- stages: ``preprocess``, ``validation/``, ``train``, ``evaluate``, ``external``,
  ``registry``, ``predict``, ``serve``;
- their parts: ``fit``, ``datasets``, ``modellog``, ``results``, ``gate``, ``splits``,
  ``tracking``, ``data/``, ``models/``, ``records``, ``features``, ``density``, ``chgcar``;
- ground: ``schema`` (domain facts), ``config``, ``errors``, ``log``.

Nothing in the library imports ``cli`` or ``kfp``. ``labelling/`` runs in its own venv and
imports no other ecdflow module.
"""
