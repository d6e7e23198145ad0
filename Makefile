# ecdflow: `make run` runs the main job on the bundled data, `make test` runs the tests.
# Every target sets up what it needs from nothing (Python 3.11 venv from the pinned lock).
SHELL := /bin/bash
.DEFAULT_GOAL := help
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
LABEL_VENV := .venv-label
export ECDFLOW_NO_PROGRESS ?= 0
export TF_CPP_MIN_LOG_LEVEL ?= 3

help: ## List the targets
	@grep -E '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-14s %s\n", $$1, $$2}'

$(STAMP): requirements/lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "error: $(PYTHON) not found (Python 3.11 is required)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip wheel setuptools
	$(BIN)/python -m pip install -q -r requirements/lock.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	$(BIN)/python -m pip check
	touch $(STAMP)

setup: $(STAMP) ## Create .venv from the lock (idempotent; fast when done)

run: setup ## Run the whole pipeline locally (kfp.local) on the bundled data, quick profile
	$(BIN)/ecdflow pipeline run-local

standard: setup ## The paper's protocol on 2 CPU cores (profile `standard`, hours; resumable: run it again after a stop), then docs/results/ and bench/results/standard.md
	ECDFLOW_NO_PROGRESS=1 nice -n 5 $(BIN)/ecdflow --profile standard pipeline run-local --resume latest
	$(BIN)/ecdflow --profile standard results
	$(BIN)/python -m bench standard --logs-dir .ecdflow/logs \
	  --tracking-uri "sqlite:///$(CURDIR)/.ecdflow/mlflow.db" > /dev/null

ship: setup ## Ship what the newest standard run registered (ecdflow/pretrained/), then the sanity table
	$(BIN)/ecdflow --profile standard pretrained export
	$(BIN)/ecdflow pretrained sanity

test: setup browser apt-deps ## Run all tests (unit + end-to-end); exit 5 (no tests) counts as failure
	$(BIN)/python -m pytest -q tests

browser: ## Headless Chromium for the browser tests (Debian packages chromium, chromium-driver)
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; }
.PHONY: standard ship browser

lint: setup ## ruff
	$(BIN)/ruff check ecdflow components pipelines tests bench tracking

ui: setup ## Open the MLflow UI on http://127.0.0.1:5000 over the local store
	mkdir -p .ecdflow && $(BIN)/mlflow ui --backend-store-uri sqlite:///.ecdflow/mlflow.db --host 127.0.0.1 --port 5000

compile: setup ## Compile the KFP pipeline to IR YAML (upload it in the KFP UI)
	$(BIN)/ecdflow pipeline compile

IMAGE_REPO ?= ghcr.io/ecdflow
IMAGE_TAG ?= 0.1.0
BASE_IMAGE ?=
images: ## Build the CPU and MLflow-server images (Docker, else podman); BASE_IMAGE=local: a Debian base bootstrapped here
	@docker info >/dev/null 2>&1 || $(MAKE) --no-print-directory apt-images
	IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) BASE_IMAGE=$(BASE_IMAGE) bash infra/podman/images.sh cpu mlflow

images-gpu: ## Build the GPU image (needs a machine that can pull the public base; docs/cluster.md)
	@docker info >/dev/null 2>&1 || $(MAKE) --no-print-directory apt-images
	IMAGE_REPO=$(IMAGE_REPO) IMAGE_TAG=$(IMAGE_TAG) BASE_IMAGE=$(BASE_IMAGE) bash infra/podman/images.sh gpu

CONTAINER_IMAGE := localhost/ecdflow/ecdflow-cpu:local
run-containers: setup ## The quick pipeline, every task in the CPU image (kfp.local DockerRunner; podman's Docker API without Docker); ARGS="--models rf_magpie --folds 0,1" to reduce
	@docker info >/dev/null 2>&1 || $(MAKE) --no-print-directory apt-images
	IMAGE_REPO=localhost/ecdflow IMAGE_TAG=local BASE_IMAGE=$(or $(BASE_IMAGE),local) bash infra/podman/images.sh cpu
	bash infra/podman/docker-socket.sh $(BIN)/ecdflow pipeline run-local --containers $(CONTAINER_IMAGE) $(ARGS)

k8s-validate: setup ## Render infra/k8s (base + overlays) and validate every manifest offline
	$(BIN)/python -m ecdflow.k8s

bench: setup ## Benchmarks; results under bench/results/
	$(BIN)/python -m bench

$(LABEL_VENV)/.installed: requirements/label.txt
	test -x $(LABEL_VENV)/bin/python || $(PYTHON) -m venv $(LABEL_VENV)
	$(LABEL_VENV)/bin/python -m pip install -q torch==2.13.0
	$(LABEL_VENV)/bin/python -m pip install -q -r requirements/label.txt
	touch $@

labels: $(LABEL_VENV)/.installed setup ## Label candidates with SevenNet in its own venv (resumable)
	$(BIN)/ecdflow data label

clean: ## Remove the work dir (MLflow store, records, reports); keeps the venvs
	rm -rf .ecdflow

# Debian packages: installed with apt-get when absent (as root, or through sudo); idempotent.
APT_IMAGE_PKGS := podman buildah runc debootstrap uidmap
APT_TEST_PKGS := postgresql $(APT_IMAGE_PKGS)
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
define apt_install
missing=""; for p in $(1); do \
  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
done; \
if [ -n "$$missing" ]; then \
  echo "apt-get install:$$missing"; \
  $(SUDO) apt-get update -qq && \
  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
fi
endef

apt-deps: ## Debian packages the tests need (PostgreSQL; podman & co. for the image test)
	@$(call apt_install,$(APT_TEST_PKGS))

apt-images: ## Debian packages `make images` needs without Docker (podman, runc, debootstrap)
	@$(call apt_install,$(APT_IMAGE_PKGS))

.PHONY: help setup run test lint ui compile images k8s-validate bench labels clean apt-deps apt-images images-gpu run-containers

TARGET ?= K_VRH
serve: setup ## Serve the TARGET (K_VRH) champion over REST on http://127.0.0.1:5001 (README: request)
	$(BIN)/ecdflow serve --target $(TARGET)

screenshots: setup browser ## Headless-Chromium PNGs of the MLflow UI and report -> .ecdflow/screenshots/
	$(BIN)/python -m ecdflow.screenshots

.PHONY: serve screenshots
