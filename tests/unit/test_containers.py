"""The pieces of a kfp.local DockerRunner run: runner choice and the overrides that keep every
task's files under the (only mounted) pipeline root."""

import stat

import pytest

from ecdflow.config import load_settings
from ecdflow.containers import docker_overrides, kfp_local_runner
from ecdflow.errors import InputError


def test_runner_kinds():
    from kfp import local

    assert isinstance(kfp_local_runner("subprocess"), local.SubprocessRunner)
    assert isinstance(kfp_local_runner("docker"), local.DockerRunner)
    with pytest.raises(InputError, match="unknown kfp.local runner 'k8s'"):
        kfp_local_runner("k8s")


def test_docker_overrides_put_every_path_under_the_root(tmp_path):
    root = tmp_path / "kfp"
    s = load_settings(overrides=docker_overrides(root, "localhost/ecdflow/ecdflow-cpu:local"))
    assert stat.S_IMODE(root.stat().st_mode) == 0o777
    for p in (s.work_dir, s.path(s.paths.records_dir), s.path(s.paths.reports_dir),
              s.path(s.paths.validation_dir)):
        assert p.is_absolute() and p.is_relative_to(root)
    assert s.tracking_uri == f"sqlite:///{root / 'work' / 'mlflow.db'}"
    assert s.artifact_root.startswith((root / "work").as_uri())
    assert s.pipeline.cpu_image == s.pipeline.gpu_image == "localhost/ecdflow/ecdflow-cpu:local"
    assert s.pipeline.gpus_per_train_task == 0 and s.pipeline.local_runner == "docker"
