"""infra/k8s renders (Python kustomize subset) and every manifest validates offline."""

import shutil
from pathlib import Path

import pytest
import yaml

from ecdflow.config import load_settings
from ecdflow.errors import EcdflowError
from ecdflow.k8s import K8S_ROOT, kustomizations, render, strategic_merge, validate_all


def _by(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def test_every_rendered_manifest_validates_against_the_schemas():
    counts = validate_all()
    assert {"base", "overlays/local", "overlays/gpu-cluster",
            "secrets/secrets.template.yaml"} <= set(counts)
    assert len(kustomizations()) == 3


def test_base_has_mlflow_postgres_minio_namespace_and_rbac():
    objs = render(K8S_ROOT / "base")
    kinds = {(o["kind"], o["metadata"]["name"]) for o in objs}
    assert {("Namespace", "ecdflow"), ("Deployment", "mlflow"), ("Service", "mlflow"),
            ("StatefulSet", "postgres"), ("Deployment", "minio"), ("Job", "minio-buckets"),
            ("ServiceAccount", "ecdflow-pipeline-runner"), ("Role", "ecdflow-pipeline-runner"),
            ("RoleBinding", "ecdflow-pipeline-runner")} <= kinds
    assert all(o["metadata"].get("namespace") == "ecdflow" for o in objs
               if o["kind"] != "Namespace")
    assert not any(o["kind"] == "Secret" for o in objs)  # templates only, applied by hand
    mlflow = _by(objs, "Deployment", "mlflow")["spec"]["template"]["spec"]["containers"][0]
    assert "postgresql+psycopg2://$(POSTGRES_USER):$(POSTGRES_PASSWORD)@postgres:5432/mlflow" in \
        mlflow["args"]
    secret_refs = {e["valueFrom"]["secretKeyRef"]["name"] for e in mlflow["env"]}
    assert secret_refs == {"ecdflow-postgres", "ecdflow-minio"}


def test_every_workload_container_has_probes_and_limits():
    for folder in kustomizations():
        for o in render(folder):
            if o["kind"] not in ("Deployment", "StatefulSet"):
                continue
            for c in o["spec"]["template"]["spec"]["containers"]:
                where = f"{folder.name}/{o['metadata']['name']}"
                assert "readinessProbe" in c and "livenessProbe" in c, where
                assert {"cpu", "memory"} <= set(c["resources"]["limits"]), where
            assert o["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_overlays_patch_the_base():
    local = render(K8S_ROOT / "overlays" / "local")
    pvc = _by(local, "PersistentVolumeClaim", "minio-data")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]  # kept from the base
    gpu = render(K8S_ROOT / "overlays" / "gpu-cluster")
    ml = _by(gpu, "Deployment", "mlflow")["spec"]["template"]["spec"]
    assert ml["affinity"]["nodeAffinity"]  # kept off the GPU pool
    assert ml["containers"][0]["image"].endswith("mlflow-server:0.1.0")  # base kept
    plugin = _by(gpu, "DaemonSet", "nvidia-device-plugin")["spec"]["template"]["spec"]
    cfg = load_settings().pipeline
    assert plugin["nodeSelector"] == cfg.gpu_node_selector
    assert {"key": cfg.gpu_tolerations[0].key, "operator": "Exists",
            "effect": "NoSchedule"} in plugin["tolerations"]


def test_secret_templates_hold_every_key_the_pipeline_mounts_and_no_real_values():
    docs = list(yaml.safe_load_all((K8S_ROOT / "secrets" / "secrets.template.yaml").read_text()))
    secrets = {d["metadata"]["name"]: d["stringData"] for d in docs}
    for name, keys in load_settings().pipeline.secrets.items():
        assert set(keys) <= set(secrets[name]), name
    for name in ("ecdflow-postgres", "ecdflow-minio"):
        assert all(v in ("CHANGE_ME", "mlflow") for v in secrets[name].values())
    assert secrets["ecdflow-s3"]["AWS_SECRET_ACCESS_KEY"] == "CHANGE_ME"


def test_an_invalid_manifest_is_reported_with_kind_name_and_field(tmp_path: Path):
    root = tmp_path / "k8s"
    shutil.copytree(K8S_ROOT, root)
    pg = root / "base" / "postgres.yaml"
    pg.write_text(pg.read_text().replace("replicas: 1", "replicas: one"))
    with pytest.raises(EcdflowError, match=r"StatefulSet/postgres: spec.replicas: 'one'"):
        validate_all(root)


def test_unknown_fields_are_refused_strictly(tmp_path: Path):
    root = tmp_path / "k8s"
    shutil.copytree(K8S_ROOT, root)
    ml = root / "base" / "mlflow.yaml"
    ml.write_text(ml.read_text().replace("      port: 5000\n", "      port: 5000\n      prot: x\n"))
    with pytest.raises(EcdflowError, match=r"Service/mlflow"):
        validate_all(root)


def test_unsupported_kustomize_features_are_refused(tmp_path: Path):
    (tmp_path / "kustomization.yaml").write_text("resources: []\nconfigMapGenerator: []\n")
    with pytest.raises(EcdflowError, match="unsupported keys"):
        render(tmp_path)


def test_strategic_merge_merges_named_lists_and_replaces_others():
    base = {"c": [{"name": "a", "x": 1}, {"name": "b"}], "args": [1, 2], "m": {"k": 1}}
    patch = {"c": [{"name": "a", "y": 2}, {"name": "z"}], "args": [3], "m": {"j": 2}}
    assert strategic_merge(base, patch) == {
        "c": [{"name": "a", "x": 1, "y": 2}, {"name": "b"}, {"name": "z"}], "args": [3],
        "m": {"k": 1, "j": 2}}
