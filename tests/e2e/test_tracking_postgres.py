"""The team tracking server as deployed (infra/k8s): `mlflow server` on a PostgreSQL backend
store (psycopg2) with an S3 artifact store proxied by the server; a small training, register
and promote go through it and are read back from the server, the database and the bucket."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ecdflow.config import REPO_ROOT
from ecdflow.testing import free_port, local_postgres, local_s3_server, s3_client

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_settings, make_pipeline_run  # noqa: E402

pytestmark = pytest.mark.slow
BUCKET = "mlflow"
CLIENT_S3_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "S3_ENDPOINT",
                  "MLFLOW_S3_ENDPOINT_URL", "S3_USE_HTTPS", "S3_VERIFY_SSL")


def deployed_backend_scheme() -> str:
    """The scheme (dialect+driver) of the backend store URI infra/k8s gives the server."""
    import yaml

    docs = yaml.safe_load_all((REPO_ROOT / "infra/k8s/base/mlflow.yaml").read_text())
    dep = next(d for d in docs if d and d["kind"] == "Deployment")
    args = dep["spec"]["template"]["spec"]["containers"][0]["args"]
    return args[args.index("--backend-store-uri") + 1].split("://", 1)[0]


def _wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout_s: float = 180) -> None:
    import requests

    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited {proc.returncode}: {log.read_text()[-1500:]}")
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    pytest.fail(f"mlflow server did not answer within {timeout_s} s: {log.read_text()[-800:]}")


def test_server_on_postgres_and_s3_train_register_promote(tmp_path: Path, monkeypatch):
    import mlflow
    import psycopg2

    from ecdflow import registry

    scheme = deployed_backend_scheme()
    assert scheme == "postgresql+psycopg2"
    with local_s3_server(BUCKET) as s3env, local_postgres() as db_url:
        backend = scheme + db_url[db_url.index("://"):]
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        # the server's environment as infra/k8s/base/mlflow.yaml sets it
        env = {**os.environ, "PORT": str(port), "WORKERS": "2", "BACKEND_STORE_URI": backend,
               "ARTIFACTS_DESTINATION": f"s3://{BUCKET}",
               "MLFLOW_S3_ENDPOINT_URL": s3env["S3_ENDPOINT"],
               "AWS_ACCESS_KEY_ID": s3env["AWS_ACCESS_KEY_ID"],
               "AWS_SECRET_ACCESS_KEY": s3env["AWS_SECRET_ACCESS_KEY"],
               "AWS_DEFAULT_REGION": s3env["AWS_REGION"]}
        log = tmp_path / "server.log"
        with open(log, "w") as fh:
            proc = subprocess.Popen(["bash", str(REPO_ROOT / "tracking" / "server.sh")],
                                    env=env, stdout=fh, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            _wait_healthy(url, proc, log)
            # clients hold no S3 credentials: every artifact goes through the server
            for var in CLIENT_S3_VARS:
                monkeypatch.delenv(var, raising=False)
            s = demo_settings(tmp_path)
            s.mlflow.tracking_uri = url
            s.mlflow.artifact_root = ""
            pid = make_pipeline_run(s)
            mv = registry.register_best(s, pid, "K_VRH")
            ev = registry.promote(s, "K_VRH")

            # read back through the server
            client = mlflow.MlflowClient(url, url)
            champ = client.get_model_version_by_alias("test-bulk", "champion")
            assert champ.version == str(mv.version) == str(ev["version"])
            exp = client.get_experiment_by_name(s.mlflow.experiment)
            assert exp.artifact_location.startswith("mlflow-artifacts:")
            runs = client.search_runs([exp.experiment_id], max_results=100)
            train = [r for r in runs if r.data.tags.get("ecdflow.role") == "train"]
            assert len(train) == 6 and all(r.data.metrics["test_rmse_gpa"] > 0 for r in train)
            model = mlflow.pyfunc.load_model("models:/test-bulk@champion")
            assert model.metadata.signature is not None

            # ... and from the stores themselves
            with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM runs WHERE experiment_id = %s",
                            (int(exp.experiment_id),))
                assert cur.fetchone()[0] == len(runs)
                cur.execute("SELECT version FROM registered_model_aliases "
                            "WHERE name = 'test-bulk' AND alias = 'champion'")
                assert str(cur.fetchone()[0]) == champ.version
            keys = [o["Key"] for page in s3_client(s3env).get_paginator("list_objects_v2")
                    .paginate(Bucket=BUCKET) for o in page.get("Contents", [])]
            for r in train:
                assert any(r.info.run_id in k and k.endswith("predictions.csv") for k in keys)
            assert any(k.endswith("MLmodel") for k in keys)
        finally:
            os.killpg(proc.pid, 15)
            proc.wait(timeout=60)
