"""Configuration: loading, profiles, env overrides and one-line errors."""

from pathlib import Path

import pytest

from ecdflow.config import load_settings
from ecdflow.errors import ConfigError


def test_repo_params_load_with_quick_profile():
    s = load_settings(profile="quick")
    assert s.profile == "quick"
    assert s.density.grid == 32  # quick overrides the paper's 60
    assert s.splits.loeo_elements == ["Cs"]


def test_paper_profile_keeps_60_grid_and_eleven_elements():
    s = load_settings(profile="paper")
    assert s.density.grid == 60
    assert len(s.splits.loeo_elements) == 11


def test_typo_names_the_key(tmp_path: Path):
    p = tmp_path / "params.yaml"
    p.write_text("density:\n  gird: 60\n")
    with pytest.raises(ConfigError, match=r"unknown key 'density.gird'"):
        load_settings(p)


def test_bad_value_names_the_key(tmp_path: Path):
    p = tmp_path / "params.yaml"
    p.write_text("training:\n  epochs: -1\n")
    with pytest.raises(ConfigError, match=r"'training.epochs'"):
        load_settings(p)


def test_unknown_profile_is_refused(tmp_path: Path):
    p = tmp_path / "params.yaml"
    p.write_text("profiles:\n  quick: {}\n")
    with pytest.raises(ConfigError, match="unknown profile 'fast'"):
        load_settings(p, profile="fast")


def test_env_overrides_tracking_uri(monkeypatch):
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    s = load_settings()
    assert s.tracking_uri == "http://127.0.0.1:5999"
    assert s.registry_uri == "http://127.0.0.1:5999"


def test_default_tracking_is_sqlite_in_work_dir(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("ECDFLOW_WORK_DIR", str(tmp_path / "w"))
    s = load_settings()
    assert s.tracking_uri == f"sqlite:///{tmp_path / 'w' / 'mlflow.db'}"
    assert s.artifact_root.startswith("file://")
