"""The commands exist, start, and document what they return."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from jenkins_registry.cli.main import main as jr
from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import ExitCode

ROOT = Path(__file__).resolve().parent.parent


def test_readme_exit_code_table_matches_the_enum() -> None:
    readme = (ROOT / "README.md").read_text()
    rows = re.findall(r"^\| (\d+) \| ([A-Z_]+) \|", readme, re.MULTILINE)
    assert [(int(code), name) for code, name in rows] == [(int(c), c.name) for c in ExitCode]


def test_readme_has_exactly_the_two_setup_commands_and_ci_runs_the_test_one() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```\n(bash scripts/\S+)\n```", readme)
    assert blocks == ["bash scripts/demo.sh", "bash scripts/test.sh"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert "bash scripts/test.sh" in ci


def test_python_dash_m_runs_jr() -> None:
    out = subprocess.run([sys.executable, "-m", "jenkins_registry", "--help"], capture_output=True,
                         text=True, check=True)
    assert "usage: jr" in out.stdout


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert jr(["--version"]) == 0
    assert re.match(r"jr \S+", capsys.readouterr().out)


def test_jr_push_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert jr_push(["--help"]) == 0
    text = capsys.readouterr().out
    for option in ("--image", "--from-archive", "--from-oci", "--registry", "--name", "--tag",
                   "--digest-file", "--json", "--username-env", "--password-env", "--compression",
                   "--jobs", "--insecure", "--debug"):
        assert option in text
    assert "--password " not in text


def test_no_option_takes_a_password() -> None:
    import argparse

    from jenkins_registry.cli.main import build_parser
    from jenkins_registry.cli.push import build_parser as build_push_parser

    def options(parser: argparse.ArgumentParser) -> list[str]:
        found = []
        for action in parser._actions:
            found += action.option_strings
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found += options(sub)
        return found

    for option in options(build_parser()) + options(build_push_parser()):
        assert not re.fullmatch(r"--(password|passwd|token|api-token|secret)", option), option


def test_usage_error_from_argparse_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert jr_push(["--image"]) == ExitCode.USAGE
    assert jr_push([]) == ExitCode.USAGE


def test_unexpected_exception_is_reported_without_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import jenkins_registry.cli.push as push_cli

    def boom(args: object) -> int:
        raise RuntimeError("internal detail")

    monkeypatch.setattr(push_cli, "handle_push", boom)
    assert push_cli.main(["--image", "x", "--registry", "r:1"]) == ExitCode.FAILURE
    err = capsys.readouterr().err
    assert "bug in jenkins-registry" in err and "Traceback" not in err and "internal detail" not in err
    assert push_cli.main(["--image", "x", "--registry", "r:1", "--debug"]) == ExitCode.FAILURE
    assert "Traceback" in capsys.readouterr().err


def test_debug_traceback_redacts_secrets_quoted_by_third_party_errors(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import jenkins_registry.cli.push as push_cli
    from jenkins_registry.errors import RegistryError
    from jenkins_registry.secret_types import Secret

    secret = "Debug-Tr4ceback-Secret"

    def leaky(args: object) -> int:
        password = Secret(secret)
        try:
            raise RuntimeError(f"server echoed Authorization: {password.reveal()}")
        except RuntimeError as exc:
            raise RegistryError(f"failed near {password.reveal()}") from exc

    monkeypatch.setattr(push_cli, "handle_push", leaky)
    assert push_cli.main(["--image", "x", "--registry", "r:1", "--debug"]) == ExitCode.REGISTRY
    err = capsys.readouterr().err
    assert "Traceback" in err and "server echoed" in err
    assert secret not in err
