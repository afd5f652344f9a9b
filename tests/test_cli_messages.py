"""Messages that tell the truth (issue 13 item 5): each wording is the one that fits the route."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from jenkins_registry import registry_errors
from jenkins_registry.cli.main import main as jr
from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.credentials import resolve_registry_credentials
from jenkins_registry.doctor import _firewall_fix
from jenkins_registry.errors import ExitCode
from tests.support import services
from tests.support.hostile_server import hostile_server
from tests.support.secret_checks import assert_absent
from tests.test_image_archive import sample_layers, write_oci_dir

SECRET = "Null-Backend-Pa55-9e1f"


def test_daemonless_push_to_plain_http_names_insecure_not_the_engine(
    remote: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    write_oci_dir(tmp_path, sample_layers())
    with hostile_server() as server:
        host = f"{remote}:{server.port}"
        code = jr_push(["--from-oci", str(tmp_path), "--registry", host, "--name", "team/app",
                        "--tag", "1"], {"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    err = capsys.readouterr().err
    assert code == ExitCode.INSECURE, err
    assert "speaks plain HTTP" in err and "refused without --insecure" in err
    assert "pass --insecure" in err
    assert "Docker engine" not in err and "insecure-registries" not in err


def test_engine_wording_stays_for_the_engine() -> None:
    assert "insecure-registries" in registry_errors.http_to_https("10.0.0.5:5000").hint
    assert "insecure-registries" not in registry_errors.plain_http_refused("10.0.0.5:5000").hint


@pytest.mark.parametrize("tag", ["", "latest"])
def test_an_empty_tag_names_an_unset_variable_and_tag_option(
    tag: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    write_oci_dir(tmp_path, sample_layers())
    code = jr_push(["--from-oci", str(tmp_path), "--registry", "127.0.0.1:1", "--name", "a",
                    "--tag", tag, "--tag", ""], {})
    err = capsys.readouterr().err
    assert code == ExitCode.USAGE
    assert "--tag is empty" in err and "variable" in err and "unset" in err
    assert "lowercase path components" not in err  # not the generic grammar hint
    assert len([line for line in err.splitlines() if "error:" in line]) == 1


def test_doctor_credentials_log_says_checking_not_pushing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    resolve_registry_credentials("r.example:5000", environ={},
                                 anonymous_note="checking anonymous access")
    assert "checking anonymous access" in caplog.text and "pushing" not in caplog.text


def test_doctor_uses_the_checking_wording() -> None:
    source = Path("jenkins_registry/doctor.py").read_text()
    assert 'anonymous_note="checking anonymous access"' in source


def test_refused_connection_says_nothing_listens_not_firewall() -> None:
    error = registry_errors.unreachable("10.0.0.5:1", "connection refused")
    assert "Nothing listens on 10.0.0.5:1" in (error.hint or "")
    assert "firewall" not in (error.hint or "")
    timeout = registry_errors.unreachable("10.0.0.5:8082", "timed out")
    assert "firewall-cmd --zone=public --add-port=8082/tcp" in (timeout.hint or "")


def test_doctor_tcp_fix_gives_firewall_only_on_timeout() -> None:
    assert "firewall" not in _firewall_fix("h", 1, timed_out=False)
    assert "listens on port 1" in _firewall_fix("h", 1, timed_out=False)
    assert "firewall-cmd" in _firewall_fix("h", 1, timed_out=True)


def test_closed_port_push_says_nothing_listens(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_oci_dir(tmp_path, sample_layers())
    closed = f"127.0.0.1:{services.free_port()}"
    code = jr_push(["--from-oci", str(tmp_path), "--registry", closed, "--name", "a", "--tag", "1"],
                   {})
    err = capsys.readouterr().err
    assert code == ExitCode.UNREACHABLE, err
    assert "Nothing listens on" in err and "firewall" not in err


def test_login_with_a_backend_that_keeps_nothing_fails(
    registry: services.Registry, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    monkeypatch.setattr("sys.stdin", io.StringIO(services.REGISTRY_PASSWORD + "\n"))
    caplog.set_level(logging.DEBUG)
    code = jr(["login", "--registry", registry.host, "--username", services.REGISTRY_USER,
               "--password-stdin"], dict(os.environ))
    out, err = capsys.readouterr()
    assert_absent(services.REGISTRY_PASSWORD, out, err, caplog.text)
    assert code == ExitCode.CREDENTIALS, err
    assert "Login Succeeded" not in out and "stored in the OS keyring" not in out
    assert "nothing was stored" in err
