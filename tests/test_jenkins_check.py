"""`jr jenkins check` and the credential check of `jr jenkins job`, against the Jenkins emulator: each
prerequisite reported with its fix, the exit codes, and nothing written."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import pytest

from jenkins_registry.checklist import Status
from jenkins_registry.cli.main import main
from jenkins_registry.errors import ExitCode
from jenkins_registry.jenkins_check import REQUIRED_PLUGINS, check_jenkins, find_credential
from jenkins_registry.jenkins_client import JenkinsClient, JenkinsSettings, connect
from jenkins_registry.secret_types import Secret
from tests.support.jenkins_emulator import USERNAME_PASSWORD_CLASS, JenkinsEmulator

Capture = pytest.CaptureFixture[str]
ADMIN, PASSWORD, TOKEN = "admin", "jenkins-Pa55word-77e1", "33aa44bb55cc66dd77ee88ff99001122aa"
REGISTRY_SECRET = "registry-S3cret-check-5b1"


@pytest.fixture
def emu() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={ADMIN: (PASSWORD, {TOKEN})}) as emulator:
        yield emulator


def client(emu: JenkinsEmulator, token: str = TOKEN, url: str | None = None) -> JenkinsClient:
    return connect(JenkinsSettings(url=url or emu.url, user=ADMIN, token=Secret(token), timeout=10))


def add_credential(emu: JenkinsEmulator, cid: str, *, folder: str | None = None,
                   scope: str = "GLOBAL") -> None:
    import xml.etree.ElementTree as ET

    from tests.support.jenkins_emulator import Credential

    root = ET.fromstring(  # noqa: S314 - the test's own XML
        f"<{USERNAME_PASSWORD_CLASS}><scope>{scope}</scope><id>{cid}</id><description/>"
        f"<username>ci</username><password>{REGISTRY_SECRET}</password>"
        f"<usernameSecret>false</usernameSecret></{USERNAME_PASSWORD_CLASS}>")
    emu.store(folder).domains["_"][cid] = Credential(element=root)


def add_folder(emu: JenkinsEmulator, *names: str) -> None:
    from jenkins_registry.jenkins_provision import LiveWriter, Provisioner

    c = client(emu)
    Provisioner(c, LiveWriter(c)).ensure_folders(names)


def statuses(results: tuple[object, ...]) -> dict[str, Status]:
    return {r.name: r.status for r in results}  # type: ignore[attr-defined]


def writes(emu: JenkinsEmulator) -> list[str]:
    return [f"{r.method} {r.path}" for r in emu.requests if r.method not in ("GET", "HEAD")]


# -- the library ----------------------------------------------------------------------------------------


def test_all_prerequisites_hold(emu: JenkinsEmulator) -> None:
    add_credential(emu, "reg")
    results = check_jenkins(client(emu), credential_ids=["reg"])
    assert all(r.status in (Status.OK, Status.INFO) for r in results), results
    names = [r.name for r in results]
    assert names[:3] == ["Jenkins reachable", "token accepted", "crumb"]
    assert [n for n in names if n.startswith("plugin ")] == [f"plugin {p}" for p in REQUIRED_PLUGINS]
    assert "plugin cloudbees-folder" not in names  # no folder: not needed
    assert names[-1] == "credential reg"
    assert "2.479.3" in results[0].summary
    assert writes(emu) == []


def test_missing_and_inactive_plugins_are_named_with_the_fix(emu: JenkinsEmulator) -> None:
    del emu.state.plugins["credentials-binding"]
    emu.state.plugins["git"].enabled = False
    emu.state.plugins["git"].active = False
    del emu.state.plugins["cloudbees-folder"]
    results = {r.name: r for r in check_jenkins(client(emu), job_folder=("team",))}
    binding = results["plugin credentials-binding"]
    assert binding.status is Status.FAIL and "not installed" in binding.summary
    assert binding.fix is not None and "credentials-binding" in binding.fix
    assert results["plugin git"].status is Status.FAIL and "not active" in results["plugin git"].summary
    assert results["plugin cloudbees-folder"].status is Status.FAIL  # asked for because of the folder
    assert results["plugin workflow-cps"].status is Status.OK


def test_credential_found_in_folder_store_on_the_path_only(emu: JenkinsEmulator) -> None:
    add_folder(emu, "team", "app")
    add_folder(emu, "other")
    add_credential(emu, "reg", folder="team")
    add_credential(emu, "elsewhere", folder="other")
    c = client(emu)
    assert find_credential(c, "reg", ("team", "app")).store == "folder team"
    assert find_credential(c, "reg", ()).store is None  # the root sees no folder store
    assert find_credential(c, "elsewhere", ("team", "app")).store is None
    # a folder that does not exist yet (the job would create it) simply holds nothing
    add_credential(emu, "sys")
    assert find_credential(c, "sys", ("new", "folder")).store == "the system store"


def test_system_scoped_credential_is_invisible_to_builds(emu: JenkinsEmulator) -> None:
    add_credential(emu, "reg", scope="SYSTEM")
    found = find_credential(client(emu), "reg", ())
    assert found.store is None and found.invisible == "the system store"
    result = {r.name: r for r in check_jenkins(client(emu), credential_ids=["reg"])}["credential reg"]
    assert result.status is Status.FAIL and "SYSTEM scope" in result.summary


def test_missing_credential_names_the_command_that_creates_it(emu: JenkinsEmulator) -> None:
    result = check_jenkins(client(emu), credential_ids=["nonexistent"], job_folder=("a", "b"))[-1]
    assert result.status is Status.FAIL
    assert result.fix is not None and "jr jenkins credential --id nonexistent" in result.fix
    assert "--folder a/b" in result.fix


def test_bad_token_fails_the_login_and_skips_the_rest(emu: JenkinsEmulator) -> None:
    results = check_jenkins(client(emu, token="wrong-" + TOKEN), credential_ids=["reg"])
    got = statuses(results)
    assert got["Jenkins reachable"] is Status.OK and got["token accepted"] is Status.FAIL
    assert {got["crumb"], got["plugins"], got["credential reg"]} == {Status.SKIP}


def test_unreachable_jenkins(emu: JenkinsEmulator) -> None:
    from tests.support.services import free_port

    results = check_jenkins(client(emu, url=f"http://127.0.0.1:{free_port()}/"))
    assert statuses(results)["Jenkins reachable"] is Status.FAIL


def test_crumb_issuer_off_is_information(emu: JenkinsEmulator) -> None:
    emu.state.csrf_enabled = False
    result = {r.name: r for r in check_jenkins(client(emu))}["crumb"]
    assert result.status is Status.INFO


# -- jr jenkins check --------------------------------------------------------------------------------------


def environ(emu: JenkinsEmulator, **extra: str) -> dict[str, str]:
    return {"JENKINS_URL": emu.url, "JENKINS_USER": ADMIN, "JENKINS_API_TOKEN": TOKEN, **extra}


def run(capsys: Capture, argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    code = main(argv, env)
    out, err = capsys.readouterr()
    for secret in (TOKEN, PASSWORD, REGISTRY_SECRET):
        assert secret not in out and secret not in err
    return code, out, err


def test_cli_check_passes_when_all_hold(emu: JenkinsEmulator, capsys: Capture) -> None:
    add_credential(emu, "reg")
    code, out, _ = run(capsys, ["jenkins", "check", "--credentials-id", "reg"], environ(emu))
    assert code == 0, out
    assert "[ ok ] plugin credentials-binding" in out and "[ ok ] credential reg" in out
    assert writes(emu) == []


def test_cli_check_names_missing_plugin_and_credential(emu: JenkinsEmulator, capsys: Capture) -> None:
    del emu.state.plugins["workflow-durable-task-step"]
    code, out, err = run(capsys, ["jenkins", "check", "--credentials-id", "nonexistent"], environ(emu))
    assert code == ExitCode.CHECK_FAILED
    assert "[FAIL] plugin workflow-durable-task-step: not installed" in out
    assert "[FAIL] credential nonexistent: not found" in out
    assert "fix: create it: `jr jenkins credential --id nonexistent" in out
    assert "2 check(s) failed" in err and "Traceback" not in err


def test_cli_check_bad_token(emu: JenkinsEmulator, capsys: Capture) -> None:
    code, out, _ = run(capsys, ["jenkins", "check"], environ(emu, JENKINS_API_TOKEN="wrong-" + TOKEN))
    assert code == ExitCode.CHECK_FAILED
    assert "[FAIL] token accepted" in out


# -- jr jenkins job refuses a credential no store holds --------------------------------------------------


JOB = ["jenkins", "job", "--name", "app", "--type", "pipeline", "--registry", "127.0.0.1:8082",
       "--image", "team/app", "--credentials-id", "reg", "--no-build"]


def test_job_with_a_missing_credential_is_refused_before_any_write(emu: JenkinsEmulator,
                                                                    capsys: Capture) -> None:
    code, out, err = run(capsys, [*JOB, "--folder", "team"], environ(emu))
    assert code == ExitCode.NOT_FOUND
    assert "credential reg" in err.lower() or "'reg'" in err
    assert "jr jenkins credential --id reg" in err
    assert writes(emu) == [] and emu.item("team") is None and out == ""


def test_job_with_the_credential_in_its_folder_is_created(emu: JenkinsEmulator, capsys: Capture) -> None:
    add_folder(emu, "team")
    add_credential(emu, "reg", folder="team")
    code, out, _ = run(capsys, [*JOB, "--folder", "team"], environ(emu))
    assert code == 0 and "created job team/app" in out


def test_allow_missing_credential_skips_the_check(emu: JenkinsEmulator, capsys: Capture) -> None:
    code, out, _ = run(capsys, [*JOB, "--allow-missing-credential"], environ(emu))
    assert code == 0 and "created job app" in out


def test_dry_run_also_refuses_a_missing_credential(emu: JenkinsEmulator, capsys: Capture) -> None:
    code, _, _ = run(capsys, [*JOB, "--dry-run"], environ(emu))
    assert code == ExitCode.NOT_FOUND and writes(emu) == []
