"""The pipeline's `gate` step on a tiny real pipeline run: it records the verdict on the
challenger (version tags, a gate run with metrics, the KFP Metrics output), moves no alias,
and `ecdflow promote` then follows the recorded verdict."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from _demo_runs import demo_settings, make_pipeline_run  # noqa: E402

pytestmark = pytest.mark.slow


class _Metrics:
    """Stands in for KFP's ``Output[Metrics]`` (records ``log_metric`` calls)."""

    def __init__(self) -> None:
        self.metadata: dict[str, float] = {}

    def log_metric(self, name: str, value: float) -> None:
        self.metadata[name] = value


def test_gate_step_records_the_verdict_and_promote_reads_it(tmp_path):
    import mlflow

    from ecdflow import registry, tracking
    from ecdflow.errors import GateRefused
    from ecdflow.kfp.steps import step_gate

    s = demo_settings(tmp_path)
    pid = make_pipeline_run(s)
    mv = registry.register_best(s, pid, "K_VRH")
    overrides = json.dumps({"paths": {k: getattr(s.paths, k) for k in
                                      ("work_dir", "reports_dir", "materials")},
                            "mlflow": {"tracking_uri": s.mlflow.tracking_uri,
                                       "artifact_root": s.mlflow.artifact_root},
                            "density": {"grid": s.density.grid},
                            "registry": {"model_names": s.registry.model_names},
                            "targets": list(s.targets)})
    out = _Metrics()
    verdicts = json.loads(step_gate("quick", "", overrides, pid, True, out))
    client = mlflow.MlflowClient()
    tags = client.get_model_version("test-bulk", mv.version).tags
    cand = float(tags[registry.TAG_CV.format(metric="rmse")])
    # the run's best CV model never loses to the run's own baseline, and there is no champion
    assert verdicts["K_VRH"] == {**verdicts["K_VRH"], "passed": True, "reason": "",
                                 "version": str(mv.version), "champion": "",
                                 "champion_value": None}
    assert tags[registry.TAG_GATE] == "passed" and tags[registry.TAG_GATE_REASON] == ""
    assert tags[registry.TAG_GATE_CHAMPION] == "none" and tags[registry.TAG_GATE_AT]
    assert out.metadata == {"gate_passed_K_VRH": 1.0,
                            "candidate_cv_rmse_gpa_K_VRH": pytest.approx(cand)}
    gate_runs = tracking.pipeline_runs(s, pid, role="gate")
    assert [r.data.tags[tracking.TAG_TARGET] for r in gate_runs] == ["K_VRH"]
    assert gate_runs[0].data.metrics["gate_passed"] == 1.0
    assert gate_runs[0].data.metrics["candidate_cv_rmse_gpa"] == pytest.approx(cand)
    with pytest.raises(mlflow.exceptions.MlflowException):  # the gate moved no alias
        client.get_model_version_by_alias("test-bulk", registry.CHAMPION)
    assert registry.promote(s, "bulk")["version"] == str(mv.version)  # the human act

    # the same run registered again cannot beat its own twin by the margin: refused, recorded
    again = registry.register_best(s, pid, "K_VRH")
    out = _Metrics()
    verdict = json.loads(step_gate("quick", "", overrides, pid, True, out))["K_VRH"]
    tags = client.get_model_version("test-bulk", again.version).tags
    assert not verdict["passed"] and "margin" in verdict["reason"]
    assert verdict["champion"] == str(mv.version) == tags[registry.TAG_GATE_CHAMPION]
    assert tags[registry.TAG_GATE] == "refused" and "margin" in tags[registry.TAG_GATE_REASON]
    assert out.metadata["gate_passed_K_VRH"] == 0.0
    with pytest.raises(GateRefused, match="margin"):
        registry.promote(s, "bulk")
    assert json.loads(step_gate("quick", "", overrides, pid, False)) == {"skipped": True}
