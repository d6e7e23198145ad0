#!/usr/bin/env bash
# Start an MLflow tracking server + registry for a team (what `infra/k8s` runs on a cluster).
# Defaults: the local sqlite store and artifact folder of this checkout, on 127.0.0.1:5000.
#   BACKEND_STORE_URI   e.g. postgresql+psycopg2://mlflow:***@db:5432/mlflow (driver explicit:
#                       SQLAlchemy 2.1 maps plain postgresql:// to psycopg 3, not in the lock)
#   ARTIFACTS_DESTINATION e.g. s3://ecdflow-artifacts (with MLFLOW_S3_ENDPOINT_URL for MinIO)
#   HOST, PORT, WORKERS (gunicorn/uvicorn workers; infra/k8s runs 2)
# Clients then use: export MLFLOW_TRACKING_URI=http://HOST:PORT
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
mkdir -p "$here/.ecdflow/mlartifacts"
exec "${MLFLOW_BIN:-$here/.venv/bin/mlflow}" server \
  --backend-store-uri "${BACKEND_STORE_URI:-sqlite:///$here/.ecdflow/mlflow.db}" \
  --artifacts-destination "${ARTIFACTS_DESTINATION:-$here/.ecdflow/mlartifacts}" \
  --serve-artifacts \
  --host "${HOST:-127.0.0.1}" --port "${PORT:-5000}" --workers "${WORKERS:-1}"
