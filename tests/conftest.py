"""Shared pytest fixtures (small, documented; add yours below with a one-line docstring)."""

from __future__ import annotations

import json

import pytest

NACL_A = 5.64
"""Rocksalt NaCl cube edge (Å) used by the fixtures."""


@pytest.fixture(autouse=True)
def _quiet_progress(monkeypatch):
    """No tqdm bars in test output."""
    monkeypatch.setenv("ECDFLOW_NO_PROGRESS", "1")


@pytest.fixture
def nacl_conv():
    """Rocksalt NaCl as its 8-atom conventional cube (a = 5.64 Å)."""
    from pymatgen.core import Lattice, Structure

    fcc = [[0, 0, 0], [0, 0.5, 0.5], [0.5, 0, 0.5], [0.5, 0.5, 0]]
    cl = [[(x + 0.5) % 1, y, z] for x, y, z in fcc]
    return Structure(Lattice.cubic(NACL_A), ["Na"] * 4 + ["Cl"] * 4, fcc + cl)


@pytest.fixture
def nacl_prim(nacl_conv):
    """Rocksalt NaCl as its 2-atom primitive standard cell (cube-aligned axes)."""
    from ecdflow.data.generate import primitive_standard

    return primitive_standard(nacl_conv)


@pytest.fixture
def elpasolite_prim():
    """Elpasolite Cs2NaScCl6 (10-atom primitive cell) from the project's generator."""
    from ecdflow.data.generate import build_conventional, primitive_standard
    from ecdflow.data.prototypes import FAMILIES

    assignment = {"A": "Cs", "B": "Na", "C": "Sc", "X": "Cl"}
    return primitive_standard(build_conventional(FAMILIES["elpasolite"], assignment))


@pytest.fixture
def material_row(nacl_prim):
    """A valid materials-table row (dict) for NaCl with cubic elastic constants in GPa."""
    return {"material_id": "rocksalt-ionic:NaCl", "formula": "NaCl", "family": "rocksalt-ionic",
            "cell": nacl_prim.lattice.matrix.tolist(),
            "numbers": [s.specie.Z for s in nacl_prim], "positions": nacl_prim.cart_coords.tolist(),
            "C11": 48.0, "C12": 12.0, "C44": 12.5, "K_VRH": 24.0, "G_VRH": 14.5}


@pytest.fixture
def write_jsonl(tmp_path):
    """Write a list of dicts (or raw strings) as a JSONL file under tmp_path; returns its path."""

    def _write(rows, name="materials.jsonl"):
        path = tmp_path / name
        path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n"
                                for r in rows))
        return path

    return _write


@pytest.fixture(autouse=True, scope="module")
def _restore_mlflow_env():
    """MLflow's set_tracking_uri/set_registry_uri write MLFLOW_* variables into os.environ;
    restore them after each test module (module-scoped fixtures set them too) so one module's
    store never leaks into the next."""
    import os

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved = {k: os.environ.get(k) for k in keys}
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def store_params(tmp_path):
    """The repository's params.yaml copied with its MLflow store and work dir in tmp_path."""
    from pathlib import Path

    import yaml

    base = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
    base["mlflow"]["tracking_uri"] = f"sqlite:///{tmp_path}/mlflow.db"
    base["paths"]["work_dir"] = str(tmp_path / "work")
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump(base))
    return params
