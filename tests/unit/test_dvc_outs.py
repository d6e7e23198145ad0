"""DVC's outputs and the pipeline's published copies never share a folder: `make run` copies
the latest run's records and validation to ``paths.records_dir`` / ``paths.validation_dir``,
and that must not change what ``dvc status`` reports."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
import yaml

from ecdflow.config import REPO_ROOT, load_settings


def _outs() -> list[PurePosixPath]:
    stages = yaml.safe_load((REPO_ROOT / "dvc.yaml").read_text())["stages"]
    return [PurePosixPath(o if isinstance(o, str) else next(iter(o)))
            for st in stages.values() for o in st.get("outs", [])]


def _overlap(a: PurePosixPath, b: PurePosixPath) -> bool:
    return a == b or a in b.parents or b in a.parents


@pytest.mark.parametrize("profile", ["quick", "standard", "paper"])
def test_published_copies_are_not_dvc_outputs(profile):
    s = load_settings(profile=profile)
    outs = _outs()
    assert len(outs) >= 2
    for published in (s.paths.records_dir, s.paths.validation_dir):
        p = PurePosixPath(published)
        assert not any(_overlap(p, o) for o in outs), (published, outs)
