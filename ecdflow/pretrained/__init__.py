"""Pretrained models shipped with ecdflow (package data), usable with no training.

Each model is a directory ``ecdflow/pretrained/<name>/`` in MLflow model format (the served
pyfunc :class:`ecdflow.serve.ModulusEnsemble`, members in skops format), named
``ecdflow-<model>-<dataset>-<target>`` (e.g. ``ecdflow-rf_magpie_volume-fcc1972-K_VRH``), with:

- ``MODEL_CARD.md``: data version, protocol, 5-fold CV metrics, intended use, known limits;
- ``card.json``: the same facts, machine-readable (read by :func:`shipped` and the registry
  import);
- ``artifacts/calibration.json`` and ``artifacts/domain.npz``: the interval calibration and
  the applicability domain, written by the registry's own glue
  (``ecdflow.registry.uncertainty_record``/``save_uncertainty``; pyfunc artifacts and manifest
  keys ``calibration``, ``domain``), so the served model answers with an interval and an
  out-of-domain flag like any registered version;
- ``artifacts/oof_predictions.json``: the CV out-of-fold predictions per material
  (``material_id``, ``fold``, ``y_true``, ``y_pred``, GPa) the calibration was made from
  (pyfunc artifact ``oof_predictions``).

Made by ``ecdflow pretrained build`` (``ecdflow.pretrained.build``), seeded, from the committed
table, or by ``ecdflow pretrained export`` (``ecdflow.pretrained.export``) from the version a
pipeline run registered. Imported into a registry by ``ecdflow register --pretrained``
(:func:`import_to_registry`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ecdflow.errors import EcdflowError

PRETRAINED_DIR = Path(__file__).resolve().parent
CARD_JSON = "card.json"
MODEL_CARD = "MODEL_CARD.md"
CALIBRATION = "calibration.json"
OOF = "oof_predictions.json"
VERSION_SHIPPED = "shipped"
TAG_PRETRAINED = "ecdflow.pretrained"


@dataclass(frozen=True)
class Shipped:
    """One shipped model: its directory, name, target, model type and card facts."""

    path: Path
    name: str
    target: str
    model_type: str
    card: dict

    @property
    def member_folds(self) -> list[int]:
        """The CV fold each member ``member_<i>`` (manifest order) was scored on: the card's
        ``member_folds`` (an exported ensemble: folds x repeats), else member i = fold i (a
        built one: one member per fold)."""
        return [int(f) for f in self.card.get("member_folds") or range(self.card["n_members"])]


def shipped(root: Path | None = None) -> list[Shipped]:
    """Every shipped model under ``root`` (default: this package), sorted by name."""
    out = []
    for card_path in sorted((root or PRETRAINED_DIR).glob(f"*/{CARD_JSON}")):
        card = json.loads(card_path.read_text())
        out.append(Shipped(card_path.parent, card["name"], card["target"], card["model_type"],
                           card))
    return out


def shipped_for(target: str, root: Path | None = None) -> Shipped:
    """The shipped model of ``target`` (``K_VRH``/``G_VRH``).

    Raises:
        EcdflowError: none is shipped for the target.
    """
    hits = [s for s in shipped(root) if s.target == target]
    if not hits:
        raise EcdflowError(f"no shipped pretrained model for {target} "
                           f"(ecdflow/pretrained/ holds {[s.name for s in shipped(root)]})")
    return hits[0]


def import_to_registry(settings, target: str, root: Path | None = None):
    """Register the shipped model of ``target`` as a new version of the target's registered
    model (``settings.registry.model_names``): the directory is logged unchanged under a run
    ``import-pretrained-<target>``, the card becomes the version description, the card's facts
    its tags (model type, CV metrics in GPa, data version, ``ecdflow.pretrained`` = name), and
    the version gets alias ``challenger`` (promote it like any other version).

    Returns:
        The new ``ModelVersion``.
    """
    import mlflow

    from ecdflow import tracking
    from ecdflow.registry import CHALLENGER, TAG_CV_R2, _client, _fmt, _now

    ship = shipped_for(target, root)
    tracking.configure(settings)
    name = settings.registry.model_names[target]
    tags = {**tracking.base_tags(settings, None), tracking.TAG_ROLE: "import-pretrained",
            tracking.TAG_TARGET: target, tracking.TAG_MODEL: ship.model_type,
            TAG_PRETRAINED: ship.name}
    with mlflow.start_run(run_name=f"import-pretrained-{target}", tags=tags) as run:
        mlflow.log_artifacts(str(ship.path), "model")
        mv = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
    client = _client()
    cv = ship.card["cv"]
    vtags = {tracking.TAG_MODEL: ship.model_type, tracking.TAG_TARGET: target,
             tracking.TAG_DATA_VERSION: ship.card["data_version"],
             tracking.TAG_GIT: ship.card.get("git_commit", "unknown"),
             TAG_PRETRAINED: ship.name, "ecdflow.n_members": str(ship.card["n_members"]),
             "ecdflow.gate_metric": settings.registry.metric,
             tracking.TAG_CV.format(metric="rmse"): _fmt(cv["rmse_mean"]),
             tracking.TAG_CV.format(metric="mae"): _fmt(cv["mae_mean"]),
             TAG_CV_R2: _fmt(cv["r2_mean"]), "ecdflow.registered_at": _now()}
    for k, v in vtags.items():
        client.set_model_version_tag(name, mv.version, k, v)
    client.update_model_version(name, mv.version,
                                description=(ship.path / MODEL_CARD).read_text())
    client.set_registered_model_alias(name, CHALLENGER, mv.version)
    return client.get_model_version(name, mv.version)
