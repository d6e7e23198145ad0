"""The one typed configuration of ecdflow, loaded from ``params.yaml`` (which DVC also reads).

Layers, last wins: the defaults below, ``params.yaml``, the selected profile's overrides
(``profiles.<name>`` in ``params.yaml``, deep-merged), then environment variables
(``MLFLOW_TRACKING_URI``, ``MLFLOW_REGISTRY_URI``, ``ECDFLOW_PROFILE``, ``ECDFLOW_WORK_DIR``).
Unknown keys are errors, so a typo gives a one-line message naming the key.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ecdflow.errors import ConfigError
from ecdflow.schema import REGISTERED_MODEL_NAMES, TARGETS, SymmetryMode, TargetName, is_remote


def project_root() -> Path:
    """Where relative configured paths resolve: the checkout holding this package (a
    ``pyproject.toml`` next to it), else, for an installed ecdflow, the working directory."""
    checkout = Path(__file__).resolve().parent.parent
    return checkout if (checkout / "pyproject.toml").is_file() else Path.cwd().resolve()


REPO_ROOT = project_root()
PACKAGED_PARAMS = Path(__file__).resolve().parent / "params.yaml"
"""The repository's params.yaml, shipped in the wheel (a link in the checkout)."""
DEFAULT_PARAMS = (REPO_ROOT / "params.yaml" if (REPO_ROOT / "params.yaml").is_file()
                  else PACKAGED_PARAMS)
PAPER_LOEO_ELEMENTS = ["F", "K", "Rb", "Cs", "Na", "Cl", "In", "Br", "Li", "Sc", "Tl"]
"""The paper's 11 leave-one-element-out elements (FCC2170 frequency order)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class Paths(_Strict):
    """File locations, relative to the project root (:func:`project_root`) unless absolute."""

    materials: str = "data/fcc/materials.jsonl"
    """Committed labelled table (one JSON object per line)."""
    work_dir: str = ".ecdflow"
    """Ignored work folder: MLflow store, pipeline root, caches, quarantine reports."""
    records_dir: str = ".ecdflow/records"
    """TFRecord shards written by preprocessing."""
    validation_dir: str = ".ecdflow/validation"
    """GX Data Docs and JSON summaries."""
    reports_dir: str = ".ecdflow/reports"
    """Evaluation reports (HTML/Markdown, plots)."""


class DensityConfig(_Strict):
    """Procrystal / CHGCAR charge density on the model grid."""

    grid: int = Field(60, ge=8, le=256)
    """Points per cube edge (the paper interpolates every ECD to 60^3)."""
    smearing_A: float = Field(0.1, ge=0.0)
    """Gaussian smearing width (Å) applied in reciprocal space to remove ringing."""
    frame: Literal["conventional"] = "conventional"
    """Every ECD is sampled on the conventional Fm-3m cube (see docs/data.md)."""


class RecordsConfig(_Strict):
    """TFRecord storage choices (chosen by bench/bench_records.py; docs/data_pipeline.md)."""

    num_shards: int = Field(0, ge=0)
    """Shard count; 0 lets the runner decide (one file per bundle): the write then streams,
    while a fixed count groups every encoded example by shard first (held in memory by the
    local runner: ~1.8 MB per material at 60^3; bench/results/beam.md)."""
    compression: Literal["", "GZIP", "ZLIB"] = ""
    dtype: Literal["float32", "float16"] = "float16"


class ValidationConfig(_Strict):
    """Great Expectations thresholds (ecdflow/validation/)."""

    min_rows: int = Field(10, ge=1)
    """Fewest materials a table / record set may hold."""
    max_modulus_GPa: float = Field(600.0, gt=0.0)
    """Upper physical bound for K_VRH and G_VRH (diamond: K 443, G 535 GPa)."""
    charge_rel_tol: float = Field(0.01, gt=0.0)
    """Integrated procrystal charge vs valence electron count, relative tolerance."""


class SplitsConfig(_Strict):
    """Cross-validation and leave-one-element-out protocols."""

    n_folds: int = Field(5, ge=2)
    folds: list[int] | None = None
    """Folds to train (None: all)."""
    loeo_elements: list[str] = Field(default_factory=lambda: list(PAPER_LOEO_ELEMENTS))


class TrainingConfig(_Strict):
    """Training loop settings shared by the CNNs."""

    epochs: int = Field(60, ge=1)
    batch_size: int = Field(32, ge=1)
    patience: int = Field(10, ge=1)
    repeats: int = Field(5, ge=1)
    """The paper repeats each CNN experiment 5 times and averages."""
    loeo_repeats: int | None = Field(None, ge=1)
    """Repeats of a CNN on a leave-one-element-out split (None: ``repeats``)."""
    log_target: bool = False
    """Train on log10(modulus) as matbench does; metrics stay in GPa."""
    mixed_precision: bool = False
    deterministic: bool = True
    validation_fraction: float = Field(0.1, gt=0.0, lt=0.5)
    augment_symmetry: SymmetryMode = "origin"
    """ECD augmentation: one random operation of this set per example and epoch
    (``ecdflow.symmetry``); ``origin`` measured better than ``none`` under CV
    (bench/results/symmetry.md)."""
    tta: SymmetryMode = "none"
    """Test-time averaging of ECD models over this set (CV predictions and serving); ``none``
    measured better than ``origin`` (within noise; ``origin`` makes a prediction exactly
    independent of the frame rule at twice the cost)."""


class ModelsConfig(_Strict):
    """Hyper-parameters per model; free-form per model, validated by each model's builder."""

    enabled: list[str] = Field(
        default_factory=lambda: ["rf_magpie", "cnn_magpie", "cnn3d", "cnn2d_se", "fusion"]
    )
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)


class MlflowConfig(_Strict):
    """Tracking and registry locations (env MLFLOW_TRACKING_URI / MLFLOW_REGISTRY_URI win)."""

    tracking_uri: str = ""
    """Empty: ``sqlite:///<work_dir>/mlflow.db``."""
    registry_uri: str = ""
    artifact_root: str = ""
    """Empty: ``<work_dir>/mlartifacts``."""
    experiment: str = "ecdflow"


class RegistryConfig(_Strict):
    """Model registry names and the promotion gate."""

    model_names: dict[str, str] = Field(
        default_factory=lambda: dict(REGISTERED_MODEL_NAMES)
    )
    metric: Literal["rmse", "mae"] = "rmse"
    margin: float = Field(0.0, ge=0.0)
    """Relative improvement (fraction) a challenger needs over the champion."""
    use_external_validation: bool = False
    interval_coverage: float = Field(0.9, gt=0.0, lt=1.0)
    """Nominal coverage of the served prediction interval (split-conformal on the CV
    test-fold residuals, ``ecdflow.uncertainty``)."""


class Toleration(_Strict):
    """A Kubernetes toleration put on GPU training pods."""

    key: str
    operator: Literal["Equal", "Exists"] = "Exists"
    value: str | None = None
    effect: Literal["NoExecute", "NoSchedule", "PreferNoSchedule"] | None = "NoSchedule"


class PipelineConfig(_Strict):
    """The Kubeflow pipeline `ecd-elastic` and how its pods are scheduled on a cluster.

    Resources, accelerators, tolerations, node selectors and secrets are fixed when the
    pipeline is compiled (KFP v2 cannot take them from run parameters); kfp.local ignores them.
    """

    name: str = "ecd-elastic"
    compiled: str = ""
    """Where `ecdflow pipeline compile` writes the IR YAML (empty: <work_dir>/ecd-elastic.yaml)."""
    local_root: str = ""
    """Pipeline root (outputs, cache) of `ecdflow pipeline run-local` (empty:
    <work_dir>/kfp-local)."""
    cpu_image: str = "ghcr.io/ecdflow/ecdflow-cpu:0.1.0"
    """Image of preprocess/validate/evaluate/register (components/docker/Dockerfile.cpu)."""
    gpu_image: str = "ghcr.io/ecdflow/ecdflow-gpu:0.1.0"
    """Image of the training tasks (components/docker/Dockerfile.gpu)."""
    cpu_request: str = "1"
    memory_request: str = "4G"
    memory_limit: str = "16G"
    train_cpu_request: str = "4"
    train_memory_request: str = "16G"
    train_memory_limit: str = "48G"
    accelerator_type: str = "nvidia.com/gpu"
    gpus_per_train_task: int = Field(1, ge=0, le=8)
    """0 trains on CPU (no accelerator request, no GPU tolerations/node selector)."""
    gpu_tolerations: list[Toleration] = Field(
        default_factory=lambda: [Toleration(key="nvidia.com/gpu")]
    )
    gpu_node_selector: dict[str, str] = Field(
        default_factory=lambda: {"ecdflow.io/pool": "gpu"}
    )
    retries: int = Field(2, ge=0, le=10)
    retry_backoff: str = "60s"
    retry_backoff_factor: float = Field(2.0, ge=1.0)
    retry_backoff_max: str = "3600s"
    caching: bool = True
    secrets: dict[str, list[str]] = Field(
        default_factory=lambda: {
            "ecdflow-mlflow": ["MLFLOW_TRACKING_URI"],
            "ecdflow-s3": ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "MLFLOW_S3_ENDPOINT_URL"],
        }
    )
    """Kubernetes Secret name -> keys exposed to every task as env vars of the same name."""
    local_runner: Literal["subprocess", "docker"] = "subprocess"
    """kfp.local runner of `pipeline run-local`: subprocesses of this Python, or each task in
    ``cpu_image`` through a Docker API (podman's without Docker; ecdflow.containers)."""


class PreprocessConfig(_Strict):
    """Which Beam runner the preprocessing uses (docs/scaling.md)."""

    runner: str = "direct"
    """``direct`` (Beam's local runner), ``dask`` (a Dask ``distributed`` cluster) or any Beam
    runner name (e.g. ``DataflowRunner`` with its flags given as extra pipeline args)."""
    dask_workers: int = Field(2, ge=1)
    """Worker processes (one thread each) of the local Dask cluster started for a run."""
    dask_address: str = ""
    """Scheduler of a running Dask cluster (``tcp://host:8786``); empty: start a local one."""


class ReportConfig(_Strict):
    """The evaluation report (``ecdflow evaluate``)."""

    min_element_n: int = Field(10, ge=1)
    """Per-element errors are shown only for elements in at least this many test materials."""


class PlausibilityConfig(_Strict):
    """Physical-plausibility gate on labelled rows (ecdflow/validation/plausibility.py).

    Sources: diamond, the stiffest known solid (McSkimin & Andreatch, J. Appl. Phys. 43, 2944
    (1972): C11 1079, C12 124, C44 578 GPa -> K_VRH 443, G_VRH 535 GPa); covalent radii of
    Cordero et al., Dalton Trans. 2008, 2832 (pymatgen ``CovalentRadius``)."""

    max_K_GPa: float = Field(443.0, gt=0.0)
    """K_VRH above diamond's 443 GPa is not physics."""
    max_G_GPa: float = Field(535.0, gt=0.0)
    """G_VRH above diamond's 535 GPa is not physics."""
    max_C_GPa: float = Field(1079.0, gt=0.0)
    """C11, C12, C44 above diamond's C11 (the largest measured elastic constant), GPa."""
    poisson_min: float = Field(0.0, ge=-1.0, lt=0.5)
    """Lowest plausible Voigt-Reuss-Hill Poisson ratio (physical range -1..0.5; nu < 0, i.e.
    G > 1.5 K, is an auxetic polycrystal, exceptional in nature: a labelling failure here)."""
    poisson_max: float = Field(0.5, gt=0.0, le=0.5)
    """Poisson ratio upper bound (exclusive; 0.5 is an incompressible liquid)."""
    max_C44_over_C11: float = Field(2.0, gt=0.0)
    """C44 more than twice C11 is implausible."""
    min_contact_ratio: float = Field(0.70, gt=0.0, lt=1.0)
    """Shortest interatomic distance / sum of covalent radii below this is a collapsed
    structure (the real antifluorites Rb2O, K2O sit at 0.78-0.80; see data/fcc/DATA_CARD.md)."""
    marginal_GPa: float = Field(0.5, ge=0.0)
    """C' = (C11-C12)/2 or C44 below this: a marginally stable row (kept, flagged, counted)."""


class Settings(_Strict):
    """All of ecdflow's configuration."""

    seed: int = 42
    profile: str = "quick"
    targets: list[TargetName] = Field(default_factory=lambda: list(TARGETS))
    paths: Paths = Field(default_factory=Paths)
    density: DensityConfig = Field(default_factory=DensityConfig)
    records: RecordsConfig = Field(default_factory=RecordsConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    splits: SplitsConfig = Field(default_factory=SplitsConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    mlflow: MlflowConfig = Field(default_factory=MlflowConfig)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    pipeline: PipelineConfig = Field(default_factory=PipelineConfig)
    profiles: dict[str, dict[str, Any]] = Field(default_factory=dict)
    report: ReportConfig = Field(default_factory=ReportConfig)
    plausibility: PlausibilityConfig = Field(default_factory=PlausibilityConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)

    def path(self, rel: str) -> Path:
        """Resolve a configured path against the project root (checkout, else working dir)."""
        p = Path(rel)
        return p if p.is_absolute() else REPO_ROOT / p

    @property
    def work_dir(self) -> Path:
        """The ignored work folder (absolute)."""
        return self.path(self.paths.work_dir)

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI (env, then config, then a sqlite file in the work dir)."""
        return (
            os.environ.get("MLFLOW_TRACKING_URI")
            or self.mlflow.tracking_uri
            or f"sqlite:///{self.work_dir / 'mlflow.db'}"
        )

    @property
    def registry_uri(self) -> str:
        """MLflow registry URI (defaults to the tracking URI)."""
        env = os.environ.get("MLFLOW_REGISTRY_URI")
        return env or self.mlflow.registry_uri or self.tracking_uri

    @property
    def artifact_root(self) -> str:
        """Artifact location given to experiments created by ecdflow."""
        root = self.mlflow.artifact_root or str(self.work_dir / "mlartifacts")
        return root if is_remote(root) else Path(root).resolve().as_uri()


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (dicts merge, the rest replaces)."""
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _first_error(exc: ValidationError, source: str) -> ConfigError:
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        return ConfigError(f"{source}: unknown key '{key}'")
    return ConfigError(f"{source}: bad value for '{key}': {err['msg']}")


def load_settings(
    params_file: str | Path | None = None,
    profile: str | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Load, merge and validate the configuration.

    Args:
        params_file: YAML file (default: ``params.yaml`` at the repo root, if present).
        profile: profile name (default: env ``ECDFLOW_PROFILE``, then the file's ``profile``).
        overrides: a nested dict applied last (e.g. from CLI options).

    Raises:
        ConfigError: one line naming the file and the offending key.
    """
    path = Path(params_file) if params_file else DEFAULT_PARAMS
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
    elif params_file:
        raise ConfigError(f"{path}: no such params file")
    name = profile or os.environ.get("ECDFLOW_PROFILE") or raw.get("profile", "quick")
    profiles = raw.get("profiles", {}) or {}
    if name not in profiles and name != raw.get("profile", "quick") and profiles:
        raise ConfigError(f"{path}: unknown profile '{name}' (known: {', '.join(profiles)})")
    merged = deep_merge(raw, profiles.get(name, {}) or {})
    merged["profile"] = name
    if os.environ.get("ECDFLOW_WORK_DIR"):
        merged = deep_merge(merged, {"paths": {"work_dir": os.environ["ECDFLOW_WORK_DIR"]}})
    if overrides:
        merged = deep_merge(merged, overrides)
    try:
        return Settings.model_validate(merged)
    except ValidationError as exc:
        source = f"{path} (profile {name})" if name in profiles else str(path)
        raise _first_error(exc, source) from None
