"""Render ``infra/k8s`` kustomizations in Python and validate every manifest offline.

No kustomize binary is needed: the kustomizations use only ``resources`` (files or other
kustomization folders), ``namespace``, ``labels`` (``pairs``, without selectors) and
``patches`` given by ``path`` (strategic-merge style: maps merge, lists of named items merge by
``name``, other lists are replaced). Anything else is refused, so the Python rendering cannot
silently drift from what ``kubectl kustomize`` would produce.

Validation uses the ``kubernetes-validate`` JSON schemas bundled with the package (strict:
unknown fields are errors) for the configured Kubernetes version.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from ecdflow.config import REPO_ROOT
from ecdflow.errors import EcdflowError

K8S_ROOT = REPO_ROOT / "infra" / "k8s"
K8S_VERSION = "1.30.0"
SUPPORTED_KEYS = {"apiVersion", "kind", "namespace", "labels", "resources", "patches"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume",
                  "StorageClass", "CustomResourceDefinition", "PriorityClass"}


def _load_docs(path: Path) -> list[dict[str, Any]]:
    try:
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    except yaml.YAMLError as exc:
        raise EcdflowError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    for d in docs:
        if not isinstance(d, dict) or "kind" not in d or "metadata" not in d:
            raise EcdflowError(f"{path}: every document needs kind and metadata")
    return docs


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


def strategic_merge(base: Any, patch: Any) -> Any:
    """Merge ``patch`` into a copy of ``base``: dicts recursively, lists of dicts that all have
    a ``name`` by name (new names appended), anything else replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = copy.deepcopy(base)
        for k, v in patch.items():
            out[k] = strategic_merge(out[k], v) if k in out else copy.deepcopy(v)
        return out
    named = (isinstance(base, list) and isinstance(patch, list) and base and patch
             and all(isinstance(x, dict) and "name" in x for x in base + patch))
    if named:
        out = copy.deepcopy(base)
        index = {x["name"]: i for i, x in enumerate(out)}
        for item in patch:
            if item["name"] in index:
                out[index[item["name"]]] = strategic_merge(out[index[item["name"]]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def render(folder: str | Path) -> list[dict[str, Any]]:
    """The manifests a kustomization folder produces (``kustomization.yaml`` inside)."""
    folder = Path(folder)
    kfile = folder / "kustomization.yaml"
    if not kfile.exists():
        raise EcdflowError(f"{folder}: no kustomization.yaml")
    spec = yaml.safe_load(kfile.read_text()) or {}
    unknown = set(spec) - SUPPORTED_KEYS
    if unknown:
        raise EcdflowError(f"{kfile}: unsupported keys {sorted(unknown)} (Python rendering "
                           f"knows {sorted(SUPPORTED_KEYS)})")
    objs: list[dict[str, Any]] = []
    for res in spec.get("resources", []):
        path = (folder / res).resolve()
        objs.extend(render(path) if path.is_dir() else _load_docs(path))
    by_key = {_key(o): i for i, o in enumerate(objs)}
    if len(by_key) != len(objs):
        raise EcdflowError(f"{kfile}: two resources with the same kind and name")
    for patch in spec.get("patches", []):
        if set(patch) != {"path"}:
            raise EcdflowError(f"{kfile}: only `patches: - path: FILE` is supported")
        for doc in _load_docs(folder / patch["path"]):
            if _key(doc) not in by_key:
                raise EcdflowError(f"{folder / patch['path']}: patches {_key(doc)}, which the "
                                   f"kustomization does not have")
            i = by_key[_key(doc)]
            objs[i] = strategic_merge(objs[i], doc)
    for entry in spec.get("labels", []):
        if entry.get("includeSelectors"):
            raise EcdflowError(f"{kfile}: labels with includeSelectors are not supported")
        for o in objs:
            o["metadata"].setdefault("labels", {}).update(entry.get("pairs", {}))
    if spec.get("namespace"):
        for o in objs:
            if o["kind"] not in CLUSTER_SCOPED:
                o["metadata"]["namespace"] = spec["namespace"]
            for subject in o.get("subjects", []) if o["kind"].endswith("Binding") else []:
                if subject.get("kind") == "ServiceAccount":
                    subject["namespace"] = spec["namespace"]
    return objs


def kustomizations(root: str | Path = K8S_ROOT) -> list[Path]:
    """Every folder under ``root`` with a ``kustomization.yaml`` (bases and overlays)."""
    return sorted(p.parent for p in Path(root).rglob("kustomization.yaml"))


def validate_objects(objs: list[dict[str, Any]], where: str,
                     version: str = K8S_VERSION) -> list[str]:
    """Schema errors (``where: Kind/name: message``) of ``objs``; [] when all are valid."""
    import kubernetes_validate

    errors = []
    for o in objs:
        try:
            kubernetes_validate.validate(o, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{where}: {o['kind']}/{o['metadata'].get('name')}: "
                          f"{path + ': ' if path else ''}{exc.message}")
        except (kubernetes_validate.SchemaNotFoundError,
                kubernetes_validate.InvalidSchemaError) as exc:
            errors.append(f"{where}: {o['kind']}/{o['metadata'].get('name')}: {exc}")
    return errors


def validate_all(root: str | Path = K8S_ROOT, version: str = K8S_VERSION) -> dict[str, int]:
    """Render every kustomization and validate every manifest, plus the Secret templates in
    ``secrets/``. Returns ``{folder: number of manifests}``; raises with all errors listed."""
    root = Path(root)
    counts: dict[str, int] = {}
    errors: list[str] = []
    for folder in kustomizations(root):
        objs = render(folder)
        counts[str(folder.relative_to(root))] = len(objs)
        errors += validate_objects(objs, str(folder.relative_to(root)), version)
    for template in sorted((root / "secrets").glob("*.yaml")):
        objs = _load_docs(template)
        counts[str(template.relative_to(root))] = len(objs)
        errors += validate_objects(objs, str(template.relative_to(root)), version)
    if errors:
        raise EcdflowError(f"{len(errors)} invalid manifest(s):\n  " + "\n  ".join(errors))
    return counts


def main() -> int:
    """``python -m ecdflow.k8s``: validate everything under infra/k8s (exit 1 on errors)."""
    try:
        counts = validate_all()
    except EcdflowError as exc:
        print(f"error: {exc}")
        return 1
    for name, n in counts.items():
        print(f"ok  {name}: {n} manifests valid (Kubernetes {K8S_VERSION} schemas, strict)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
