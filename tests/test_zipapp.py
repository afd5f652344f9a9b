"""The single-file jr-push (scripts/build-zipapp.sh → jr-push.pyz), run as an agent runs it: the
system python3, no virtualenv, nothing on PYTHONPATH, isolated mode (-I), a fresh HOME. It pushes
through both routes to the real registry, and the jr commands whose packages it leaves out say
what to install. The in-process tests below pin the same behaviour for a full install that lacks a
package (keyring skipped quietly, a missing package named, a genuine bug still reported as one)."""

from __future__ import annotations

import argparse
import configparser
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.main import _needing
from jenkins_registry.cli.main import main as jr
from jenkins_registry.credentials import resolve_registry_credentials
from jenkins_registry.errors import ExitCode, MissingPackageError
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.optional_packages import require
from jenkins_registry.secret_types import Secret
from tests.support import services
from tests.support.secret_checks import assert_absent, assert_absent_in_tree

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / "scripts" / "build-zipapp.sh"
WHEELS = ROOT / ".cache" / "zipapp-wheels"  # fetched on the first build, offline after it
SECRET = services.REGISTRY_PASSWORD
# The agent's interpreter: Debian's python3 (a pyenv or virtualenv python3 may come first on PATH).
SYSTEM_PYTHON = Path(os.environ.get("JR_TEST_SYSTEM_PYTHON", "/usr/bin/python3"))
BUNDLED = {"certifi", "charset_normalizer", "docker", "idna", "jenkins_registry", "requests", "urllib3"}
LEFT_OUT = {"jenkins", "jinja2", "keyring", "markupsafe", "isal"}
INSTALL_HINT = "pipx install jenkins-registry"


def minimum_python() -> tuple[int, int]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", config["options"]["python_requires"].strip())
    assert match, "setup.cfg's python_requires is not >=X.Y"
    return int(match[1]), int(match[2])


def build(output: Path, checkout: Path = ROOT) -> Path:
    """Run *checkout*'s build script with this test run's interpreter (it has the pinned packages)."""
    env = {**os.environ, "PYTHON": sys.executable, "JR_ZIPAPP_WHEELS": str(WHEELS)}
    env.pop("JR_ZIPAPP_OUTPUT", None)
    done = subprocess.run(["bash", str(checkout / BUILD.relative_to(ROOT)), "--output", str(output)],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return output


@pytest.fixture(scope="module")
def system_python() -> Path:
    """The system python3, at least setup.cfg's minimum: not found or too old fails, never skips."""
    assert SYSTEM_PYTHON.exists(), (
        f"no system python3 at {SYSTEM_PYTHON}: install Debian's python3 (apt-get install python3) "
        "or point JR_TEST_SYSTEM_PYTHON at the agents' interpreter")
    out = subprocess.run([str(SYSTEM_PYTHON), "-I", "-c", "import sys; print(*sys.version_info[:2])"],
                         capture_output=True, text=True, check=True).stdout
    found = tuple(int(part) for part in out.split())
    assert found >= minimum_python(), (
        f"{SYSTEM_PYTHON} is Python {found}, older than the single-file jr-push's minimum "
        f"{minimum_python()} (setup.cfg python_requires)")
    return SYSTEM_PYTHON


@pytest.fixture(scope="module")
def pyz(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("zipapp") / "jr-push.pyz")


def agent_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """What an agent's step has: a plain PATH without any virtualenv, its own HOME, no PYTHON*."""
    home = tmp_path / "agent-home"
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
            "TMPDIR": str(tmp_path), **extra}


def run_pyz(python: Path, pyz: Path, args: list[str], env: Mapping[str, str], cwd: Path,
            stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), "-I", str(pyz), *args], env=dict(env), cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=300)


# Runs the archive as `python3 -I jr-push.pyz ARGS` does, then writes to $JR_TEST_OUTSIDE_MODULES
# every module it imported (not what site.py loaded before) from neither the archive nor the stdlib.
OUTSIDE_PROBE = """
import atexit, os, runpy, sys, sysconfig
archive = sys.argv[1]
sys.argv = sys.argv[1:]
stdlib = tuple(os.path.join(sysconfig.get_paths()[key], "") for key in ("stdlib", "platstdlib"))
before = set(sys.modules)

def outside():
    files = {getattr(module, "__file__", None) for name, module in list(sys.modules.items())
             if name not in before}
    with open(os.environ["JR_TEST_OUTSIDE_MODULES"], "w") as out:
        out.writelines(f + "\\n" for f in sorted(f for f in files if f and
                       not f.startswith(archive + os.sep) and not f.startswith(stdlib)))

atexit.register(outside)
runpy.run_path(archive, run_name="__main__")
"""


def run_pyz_probed(python: Path, pyz: Path, args: list[str], env: Mapping[str, str],
                   cwd: Path) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """run_pyz, and the modules the run imported from outside the archive and the stdlib."""
    report = cwd / "outside-modules.txt"
    done = subprocess.run([str(python), "-I", "-c", OUTSIDE_PROBE, str(pyz), *args],
                          env={**env, "JR_TEST_OUTSIDE_MODULES": str(report)}, cwd=cwd,
                          capture_output=True, text=True, timeout=300)
    return done, report.read_text().splitlines()


def save_archive(docker_client: Any, tag: str, path: Path) -> Path:
    with open(path, "wb") as handle:
        for chunk in docker_client.images.get(tag).save(named=True):
            handle.write(chunk)
    return path


def pushed_digest(stdout: str, reference: str) -> str:
    match = re.search(rf"^{re.escape(reference)}@(sha256:[0-9a-f]{{64}})$", stdout, re.MULTILINE)
    assert match, stdout
    return match[1]


# -- the archive ----------------------------------------------------------------------------------


def test_the_archive_holds_the_push_in_pure_python_and_nothing_else(pyz: Path) -> None:
    with zipfile.ZipFile(pyz) as archive:
        names = archive.namelist()
    tops = {name.split("/")[0] for name in names if "/" in name and ".dist-info/" not in name}
    assert tops == BUNDLED
    assert "__main__.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd", ".dylib", ".pyc")) or ".so." in n]
    assert not tops & LEFT_OUT
    assert pyz.read_bytes().startswith(b"#!/usr/bin/env python3\n")


def test_the_build_is_reproducible(tmp_path: Path) -> None:
    """Two builds of one checkout are the same bytes (a snapshot: the working tree may change)."""
    checkout = tmp_path / "checkout"
    for part in ("jenkins_registry", "scripts", "setup.cfg"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy2
        copy(ROOT / part, checkout / part)
    first, second = (build(tmp_path / name, checkout) for name in ("first.pyz", "second.pyz"))
    assert hashlib.sha256(first.read_bytes()).digest() == hashlib.sha256(second.read_bytes()).digest()


def test_version_and_help_with_the_system_python(system_python: Path, pyz: Path, tmp_path: Path) -> None:
    env = agent_env(tmp_path)
    version = run_pyz(system_python, pyz, ["--version"], env, tmp_path)
    assert version.returncode == 0, version.stderr
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    assert version.stdout == f"jr-push {config['metadata']['version']}\n"
    jr_help = run_pyz(system_python, pyz, ["jr", "--help"], env, tmp_path)
    assert jr_help.returncode == 0 and jr_help.stdout.startswith("usage: jr "), jr_help.stderr
    assert "full install" in jr_help.stdout


def test_an_older_python_is_told_the_minimum(system_python: Path, pyz: Path, tmp_path: Path) -> None:
    """The archive's __main__.py checks the version before importing anything (here: an interpreter
    that reports itself older than setup.cfg's minimum)."""
    major, minor = minimum_python()
    pretend = (f"import runpy, sys; sys.version_info = ({major}, {minor - 1}, 9); "
               f"runpy.run_path({str(pyz)!r}, run_name='__main__')")
    done = subprocess.run([str(system_python), "-I", "-c", pretend, "--help"], env=agent_env(tmp_path),
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == ExitCode.MISSING_PACKAGE
    assert f"needs Python {major}.{minor} or newer" in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""


def test_installed_as_jr_push_and_linked_as_jr(system_python: Path, pyz: Path, tmp_path: Path) -> None:
    """The README's install: the file as `jr-push` on PATH (its #! line finds python3), `jr` a link."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shutil.copy2(pyz, bin_dir / "jr-push")
    (bin_dir / "jr").symlink_to("jr-push")
    env = agent_env(tmp_path, PATH=f"{bin_dir}:{system_python.parent}:/bin")
    for command, usage in (("jr-push", "usage: jr-push "), ("jr", "usage: jr ")):
        done = subprocess.run([command, "--help"], env=env, cwd=tmp_path, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0 and done.stdout.startswith(usage), done.stderr


# -- the two push routes, through the system python3 ----------------------------------------------


def test_daemonless_push_with_the_system_python(
    system_python: Path, pyz: Path, docker_client: Any, registry: services.Registry, tmp_path: Path,
) -> None:
    services.build_image(docker_client, "zipapp/daemonless:1", {"app.txt": b"daemonless from the pyz\n"})
    archive = save_archive(docker_client, "zipapp/daemonless:1", tmp_path / "image.tar")
    env = agent_env(tmp_path, DOCKER_LOGIN_USERNAME=registry.username or "",
                    DOCKER_LOGIN_PASSWORD=SECRET,
                    DOCKER_HOST="unix:///nonexistent/docker.sock")  # no engine on this route
    done, outside = run_pyz_probed(system_python, pyz, ["--from-archive", str(archive), "--registry",
                                                        registry.host], env, tmp_path)
    assert_absent(SECRET, done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    assert outside == []  # the archive and the stdlib: no compiled extension, no system package
    digest = pushed_digest(done.stdout, f"{registry.host}/zipapp/daemonless:1")
    assert registry.manifest_digest("zipapp/daemonless", "1") == digest
    assert_absent_in_tree(SECRET, [tmp_path / "agent-home"])


@pytest.mark.parametrize("via", ["engine", "export"])
def test_engine_push_with_the_system_python(
    via: str, system_python: Path, pyz: Path, docker_engine: services.DockerEngine, docker_client: Any,
    registry: services.Registry, tmp_path: Path,
) -> None:
    """`--image` through the real dockerd: the docker SDK and requests, from inside the archive."""
    repository = f"zipapp/engine-{via}"
    services.build_image(docker_client, f"{repository}:1", {"app.txt": f"{via} from the pyz\n".encode()})
    env = agent_env(tmp_path, DOCKER_LOGIN_USERNAME=registry.username or "",
                    DOCKER_LOGIN_PASSWORD=SECRET, DOCKER_HOST=docker_engine.host)
    done, outside = run_pyz_probed(system_python, pyz, ["--image", f"{repository}:1", "--registry",
                                                        registry.host, "--via", via], env, tmp_path)
    assert_absent(SECRET, done.stdout, done.stderr)
    assert done.returncode == 0, done.stderr
    assert outside == []  # docker, requests, urllib3, charset_normalizer: pure Python, all inside
    digest = pushed_digest(done.stdout, f"{registry.host}/{repository}:1")
    assert registry.manifest_digest(repository, "1") == digest
    assert "Traceback" not in done.stderr and "RequestsDependencyWarning" not in done.stderr
    assert_absent_in_tree(SECRET, [tmp_path / "agent-home"])


def test_without_credentials_the_absent_keyring_is_skipped_without_a_warning(
    system_python: Path, pyz: Path, docker_client: Any, registry: services.Registry, tmp_path: Path,
) -> None:
    services.build_image(docker_client, "zipapp/anonymous:1", {"app.txt": b"anonymous\n"})
    archive = save_archive(docker_client, "zipapp/anonymous:1", tmp_path / "image.tar")
    done = run_pyz(system_python, pyz, ["--from-archive", str(archive), "--registry", registry.host,
                                        "--debug"], agent_env(tmp_path), tmp_path)
    assert done.returncode == ExitCode.CREDENTIALS, done.stderr  # the registry wants a login
    assert "the keyring package is not installed" in done.stderr
    assert "WARNING" not in done.stderr
    assert registry.tags("zipapp/anonymous") == []


# -- jr from the archive --------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "package"), [
    (["jenkins", "check"], "python-jenkins"),
    (["render", "jenkinsfile", "--registry", "127.0.0.1:5000", "--image", "app",
      "--credentials-id", "registry-login"], "jinja2"),
    (["login", "127.0.0.1:5000", "--username", "ci-bot", "--password-stdin"], "keyring"),
])
def test_jr_commands_needing_a_left_out_package_say_what_to_install(
    args: list[str], package: str, system_python: Path, pyz: Path, tmp_path: Path,
) -> None:
    env = agent_env(tmp_path, JENKINS_URL="http://127.0.0.1:9/", JENKINS_USER="alice",
                    JENKINS_API_TOKEN=SECRET)
    done = run_pyz(system_python, pyz, ["jr", *args], env, tmp_path, stdin=SECRET)
    assert done.returncode == ExitCode.MISSING_PACKAGE, done.stderr
    assert f"jr {args[0]} needs the package" in done.stderr and package in done.stderr
    assert "single-file jr-push does not hold" in done.stderr and INSTALL_HINT in done.stderr
    assert "Traceback" not in done.stderr and "bug" not in done.stderr
    assert_absent(SECRET, done.stdout, done.stderr)


def test_jr_commands_of_bundled_packages_run_from_the_archive(
    system_python: Path, pyz: Path, docker_engine: services.DockerEngine, registry: services.Registry,
    tmp_path: Path,
) -> None:
    daemon_json = tmp_path / "daemon.json"
    env = agent_env(tmp_path, DOCKER_HOST=docker_engine.host)
    added = run_pyz(system_python, pyz, ["jr", "docker", "insecure-registry", "add", "10.0.0.5:8082",
                                         "--daemon-json", str(daemon_json)], env, tmp_path)
    assert added.returncode == 0, added.stderr
    listed = run_pyz(system_python, pyz, ["jr", "docker", "insecure-registry", "list",
                                          "--daemon-json", str(daemon_json)], env, tmp_path)
    assert listed.returncode == 0 and listed.stdout.splitlines() == ["10.0.0.5:8082"], listed.stderr
    doctor_env = {**env, "DOCKER_LOGIN_USERNAME": registry.username or "", "DOCKER_LOGIN_PASSWORD": SECRET}
    doctor = run_pyz(system_python, pyz, ["jr", "doctor", "--registry", registry.host], doctor_env, tmp_path)
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "[FAIL]" not in doctor.stdout
    assert_absent(SECRET, doctor.stdout, doctor.stderr)


# -- the same rules in-process: a full install missing a package ----------------------------------


@pytest.fixture
def no_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # `import keyring` fails, find_spec says absent


def test_an_absent_keyring_package_reads_as_empty_and_refuses_to_store(
    no_keyring: None, caplog: pytest.LogCaptureFixture,
) -> None:
    store = KeyringStore()
    with caplog.at_level(logging.DEBUG, logger="jenkins_registry"):
        found = resolve_registry_credentials("127.0.0.1:5000", environ={}, keyring_store=store)
    assert found is None
    assert [r.levelno for r in caplog.records if "keyring" in r.getMessage()] == [logging.DEBUG]
    assert store.available() is False
    with pytest.raises(MissingPackageError) as raised:
        store.set("127.0.0.1:5000", "ci-bot", Secret(SECRET))
    assert raised.value.exit_code == ExitCode.MISSING_PACKAGE
    assert "needs the package keyring, which is not installed for" in raised.value.message
    assert SECRET not in raised.value.message + raised.value.hint


def test_jr_login_without_keyring_names_it_before_reading_a_password(
    no_keyring: None, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", _Unreadable())
    code = jr(["login", "127.0.0.1:5000", "--username", "ci-bot", "--password-stdin"], {})
    err = capsys.readouterr().err
    assert code == ExitCode.MISSING_PACKAGE, err
    assert "jr login needs the package keyring" in err and "Reinstall" in err


class _Unreadable:
    def read(self) -> str:
        raise AssertionError("the password was read although it could not be stored")


def test_jr_jenkins_without_python_jenkins_names_both_packages(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setitem(sys.modules, "jenkins", None)
    monkeypatch.setitem(sys.modules, "jinja2", None)
    code = jr(["jenkins", "check"], {"JENKINS_URL": "http://127.0.0.1:9/"})
    err = capsys.readouterr().err
    assert code == ExitCode.MISSING_PACKAGE, err
    assert "jr jenkins needs the packages python-jenkins and jinja2" in err


def test_the_check_passes_a_genuine_import_error_through_as_the_bug_it_is() -> None:
    """Only an absent top-level package is reported as missing: a ModuleNotFoundError raised by
    the command itself (a broken jenkins_registry module) is not caught and renamed."""

    def broken(args: argparse.Namespace) -> int:
        raise ModuleNotFoundError("No module named 'jenkins_registry.gone'", name="jenkins_registry.gone")

    with pytest.raises(ModuleNotFoundError):
        _needing("jr test", ("json",), broken)(argparse.Namespace())
    require(["json", "zipfile"], "jr test")  # present: no error
    with pytest.raises(MissingPackageError, match="needs the packages no_such_pkg_a and no_such_pkg_b"):
        require(["json", "no_such_pkg_a", "no_such_pkg_b"], "jr test")
