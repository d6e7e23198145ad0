"""CLI wiring: the subcommands exist, explain themselves, and user errors are one line."""

import pytest
from click.testing import CliRunner

from ecdflow.cli import cli
from ecdflow.cli.common import run_main

SUBCOMMANDS = ["data", "preprocess", "validate", "train", "evaluate", "register", "promote",
               "predict", "pipeline"]


def test_help_lists_every_subcommand():
    out = CliRunner().invoke(cli, ["--help"]).output
    for name in SUBCOMMANDS:
        assert f"  {name}" in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name):
    res = CliRunner().invoke(cli, [name, "--help"])
    assert res.exit_code == 0
    assert "Usage:" in res.output


def test_config_typo_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "params.yaml"
    bad.write_text("trainning: {}\n")
    # --help short-circuits before settings load: use a command that loads them.
    code = run_main(cli, ["--params", str(bad), "pipeline", "compile"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and "unknown key 'trainning'" in err[0]
