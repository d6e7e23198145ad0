"""The promotion gate, alias moves and rollback against a real sqlite MLflow registry.

Versions are real registered models (a tiny sklearn model); their CV metrics are set as the
tags ``register_best`` writes, so each case controls what the gate sees.
"""

from __future__ import annotations

import json
import os
import re

import pytest

from ecdflow import registry, tracking
from ecdflow.config import load_settings
from ecdflow.errors import EcdflowError, GateRefused


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One sqlite store and one logged model for the module (store creation costs seconds)."""
    tmp = tmp_path_factory.mktemp("registry")
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    s = load_settings(overrides={
        "paths": {"work_dir": str(tmp / "work")},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp}/m.db", "artifact_root": str(tmp / "art")},
        "registry": {"model_names": {"K_VRH": "t-bulk", "G_VRH": "t-shear"}, "margin": 0.05}})
    tracking.configure(s)
    import mlflow
    from sklearn.dummy import DummyRegressor

    with mlflow.start_run():
        info = mlflow.sklearn.log_model(DummyRegressor().fit([[0]], [1.0]), name="model",
                                        serialization_format="cloudpickle",
                                        pip_requirements=["scikit-learn"])
    return s, info.model_uri


@pytest.fixture()
def env(store):
    """A fresh registered model 't-bulk' and history for each test."""
    import mlflow
    from mlflow.exceptions import MlflowException

    s, uri = store
    tracking.configure(s)
    try:
        mlflow.MlflowClient().delete_registered_model("t-bulk")
    except MlflowException:
        pass
    registry.history_path(s, "t-bulk").unlink(missing_ok=True)
    s = s.model_copy(deep=True)
    return s, uri


def _version(s, uri, rmse, base=30.0, model="cnn3d", data="v1"):
    """Register a version with CV RMSE ``rmse`` (GPa) and make it the challenger."""
    import mlflow

    client = mlflow.MlflowClient()
    mv = mlflow.register_model(uri, "t-bulk")
    tags = {"ecdflow.cv_rmse_gpa": str(rmse), "ecdflow.baseline_cv_rmse_gpa": str(base),
            tracking.TAG_MODEL: model, tracking.TAG_DATA_VERSION: data}
    for k, v in tags.items():
        client.set_model_version_tag("t-bulk", mv.version, k, v)
    client.set_registered_model_alias("t-bulk", registry.CHALLENGER, mv.version)
    return str(mv.version)


def _champion(s):
    import mlflow

    return str(mlflow.MlflowClient().get_model_version_by_alias("t-bulk", "champion").version)


def test_first_promotion_then_worse_refused_better_accepted(env):
    s, uri = env
    v1 = _version(s, uri, rmse=20.0)
    ev = registry.promote(s, "bulk")
    assert ev["version"] == v1 and ev["previous_champion"] == "" and _champion(s) == v1
    v2 = _version(s, uri, rmse=19.5)  # better, but by 2.5% < margin 5%
    with pytest.raises(GateRefused, match="margin"):
        registry.promote(s, "K_VRH")
    assert _champion(s) == v1
    v3 = _version(s, uri, rmse=25.0)
    with pytest.raises(GateRefused, match="does not beat champion"):
        registry.promote(s, "bulk")
    v4 = _version(s, uri, rmse=15.0)
    ev = registry.promote(s, "bulk", actor="tester")
    assert _champion(s) == v4 and ev["previous_champion"] == v1 and not ev["forced"]
    assert {v2, v3} and ev["gate"] == "passed"
    import mlflow

    mv = mlflow.MlflowClient().get_model_version("t-bulk", v4)
    assert mv.tags[registry.TAG_PREV] == v1 and mv.tags["ecdflow.promoted_by"] == "tester"
    assert registry.CHALLENGER not in mv.aliases  # the challenger alias is consumed
    hist = json.loads(registry.history_path(s, "t-bulk").read_text())
    assert [h["version"] for h in hist] == [v1, v4]


def test_baseline_and_data_version_rules(env):
    s, uri = env
    _version(s, uri, rmse=35.0, base=30.0)
    with pytest.raises(GateRefused, match="RF\\+Magpie baseline"):
        registry.promote(s, "bulk")
    v = _version(s, uri, rmse=30.0, base=30.0, model="rf_magpie")  # the baseline itself passes
    registry.promote(s, "bulk")
    assert _champion(s) == str(v)
    _version(s, uri, rmse=10.0, data="v2")
    with pytest.raises(GateRefused, match="data versions differ"):
        registry.promote(s, "bulk")


def test_force_needs_reason_and_is_recorded(env):
    s, uri = env
    _version(s, uri, rmse=20.0)
    registry.promote(s, "bulk")
    v2 = _version(s, uri, rmse=40.0)
    with pytest.raises(GateRefused, match="--reason"):
        registry.promote(s, "bulk", force=True)
    ev = registry.promote(s, "bulk", force=True, reason="hotfix for data bug", actor="alice")
    import mlflow

    mv = mlflow.MlflowClient().get_model_version("t-bulk", v2)
    assert _champion(s) == v2 and ev["forced"]
    assert mv.tags["ecdflow.promotion_forced"] == "true"
    assert mv.tags["ecdflow.promotion_reason"] == "hotfix for data bug"
    assert mv.tags["ecdflow.promoted_by"] == "alice"
    assert "does not beat" in mv.tags["ecdflow.promotion_gate"]


def test_rollback_restores_previous_champion(env):
    s, uri = env
    with pytest.raises(GateRefused, match="no 'challenger'"):
        registry.promote(s, "bulk")
    v1 = _version(s, uri, rmse=20.0)
    registry.promote(s, "bulk")
    with pytest.raises(GateRefused, match="no previous champion"):
        registry.rollback(s, "bulk")
    v2 = _version(s, uri, rmse=10.0)
    registry.promote(s, "bulk")
    assert _champion(s) == v2
    ev = registry.rollback(s, "bulk")
    assert _champion(s) == v1 and ev["previous_champion"] == v2
    hist = json.loads(registry.history_path(s, "t-bulk").read_text())
    assert hist[-1]["action"] == "rollback"


def test_external_gate_when_enabled(env):
    s, uri = env
    s.registry.use_external_validation = True
    _version(s, uri, rmse=20.0)
    with pytest.raises(GateRefused, match="external"):
        registry.promote(s, "bulk")
    import mlflow

    v = mlflow.MlflowClient().get_model_version_by_alias("t-bulk", "challenger").version
    mlflow.MlflowClient().set_model_version_tag("t-bulk", v, "ecdflow.external.dcdft.K_VRH"
                                                ".rmse_gpa", "12.0")
    registry.promote(s, "bulk")
    assert _champion(s) == str(v)


def test_resolve_target():
    assert registry.resolve_target("bulk") == "K_VRH"
    assert registry.resolve_target("G_VRH") == "G_VRH"
    with pytest.raises(EcdflowError):
        registry.resolve_target("young")


@pytest.mark.parametrize(("rmse", "passed", "why"), [
    (20.0, True, ""),                       # no champion yet: beats the baseline, passes
    (35.0, False, "RF\\+Magpie baseline"),  # worse than the baseline of its own run
])
def test_bless_records_the_verdict_without_moving_an_alias(env, rmse, passed, why):
    import mlflow

    s, uri = env
    v = _version(s, uri, rmse=rmse)
    out = registry.bless(s, "bulk")
    mv = mlflow.MlflowClient().get_model_version("t-bulk", v)
    assert out["passed"] is passed and out["version"] == v and out["candidate_value"] == rmse
    assert mv.tags[registry.TAG_GATE] == ("passed" if passed else "refused")
    assert mv.tags[registry.TAG_GATE_CHAMPION] == "none"
    assert re.search(why, mv.tags[registry.TAG_GATE_REASON]) if why else \
        mv.tags[registry.TAG_GATE_REASON] == ""
    assert "champion" not in mv.aliases  # promotion stays a human act


def test_promote_reads_the_recorded_verdict_until_the_champion_changes(env):
    import mlflow

    s, uri = env
    client = mlflow.MlflowClient()
    v1 = _version(s, uri, rmse=20.0)
    registry.promote(s, "bulk")
    v2 = _version(s, uri, rmse=10.0)
    assert registry.bless(s, "bulk")["passed"]
    # a recorded refusal against the current champion is what promote obeys
    client.set_model_version_tag("t-bulk", v2, registry.TAG_GATE, "refused")
    client.set_model_version_tag("t-bulk", v2, registry.TAG_GATE_REASON, "recorded refusal")
    with pytest.raises(GateRefused, match="recorded refusal"):
        registry.promote(s, "bulk")
    # judged against another champion: stale, so the gate runs again (and passes)
    client.set_model_version_tag("t-bulk", v2, registry.TAG_GATE_CHAMPION, "999")
    registry.promote(s, "bulk")
    assert _champion(s) == v2 != v1
