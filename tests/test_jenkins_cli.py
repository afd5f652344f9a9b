"""`jr jenkins credential|job` in process, against the Jenkins emulator: exit codes, what is printed,
where secrets come from, and that no secret is ever printed, logged or left in a traceback."""

from __future__ import annotations

import io
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest

from jenkins_registry.cli.main import main
from jenkins_registry.errors import ExitCode
from jenkins_registry.job_spec import MANAGED_MARKER
from jenkins_registry.secret_types import Secret
from tests.support.jenkins_emulator import Fault, JenkinsEmulator, iter_job_bodies
from tests.support.services import REGISTRY_PASSWORD, REGISTRY_USER

Capture = pytest.CaptureFixture[str]
ADMIN, PASSWORD, TOKEN = "admin", "jenkins-Pa55word-41c7", "22ff33ee44dd55cc66bb77aa8899001122"
SECRETS = (REGISTRY_PASSWORD, PASSWORD, TOKEN)
GIT_URL = "https://git.example.com/team/app.git"
BASE_JOB = ["jenkins", "job", "--name", "app", "--type", "pipeline", "--registry", "127.0.0.1:8082",
            "--image", "team/app", "--credentials-id", "reg", "--scm-url", GIT_URL]
JOB = [*BASE_JOB, "--allow-missing-credential"]  # the credential check: tests/test_jenkins_check.py
CREDENTIAL = ["jenkins", "credential", "--id", "reg", "--username", REGISTRY_USER,
              "--description", "registry"]


@pytest.fixture
def emu() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={ADMIN: (PASSWORD, {TOKEN})}) as emulator:
        emulator.add_user("reader", "reader-pw", {"reader-token"}, can_write=False)
        yield emulator


def environ(emu: JenkinsEmulator, secret: str | None = TOKEN, **extra: str) -> dict[str, str]:
    env = {"JENKINS_URL": emu.url, "JENKINS_USER": ADMIN, "DOCKER_LOGIN_PASSWORD": REGISTRY_PASSWORD}
    if secret is not None:
        env["JENKINS_API_TOKEN"] = secret
    env.update(extra)
    return env


def run(capsys: Capture, argv: list[str], env: Mapping[str, str]) -> tuple[int, str, str]:
    code = main(argv, env)
    out, err = capsys.readouterr()
    for secret in SECRETS:
        assert secret not in out and secret not in err
    return code, out, err


@pytest.fixture
def file_keyring(monkeypatch: pytest.MonkeyPatch) -> None:
    """keyrings.alt's PlaintextKeyring, its file under the temporary HOME (conftest isolates it)."""
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setattr(keyring.core, "_keyring_backend", None)


# -- jr jenkins credential --------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [TOKEN, PASSWORD], ids=["api-token", "password"])
def test_credential_in_system_store_created_then_updated(emu: JenkinsEmulator, capsys: Capture,
                                                         secret: str) -> None:
    code, out, err = run(capsys, [*CREDENTIAL, "--debug"], environ(emu, secret))
    assert (code, out) == (0, "created credential reg in the system store\n")
    assert "from the environment (DOCKER_LOGIN_PASSWORD)" in err  # the source is logged, not the value
    code, out, _ = run(capsys, CREDENTIAL, environ(emu, secret))
    assert code == 0
    assert out == ("updated credential reg in the system store "
                   "(password re-sent (Jenkins never returns it); other fields unchanged)\n")
    store = emu.store()
    assert list(store.domains["_"]) == ["reg"]
    assert store.domains["_"]["reg"].field("password") == REGISTRY_PASSWORD


def test_credential_in_a_folder_store(emu: JenkinsEmulator, capsys: Capture) -> None:
    assert run(capsys, [*JOB, "--folder", "Team/Sub"], environ(emu))[0] == 0
    code, out, _ = run(capsys, [*CREDENTIAL, "--folder", "Team/Sub"], environ(emu))
    assert (code, out) == (0, "created credential reg in folder Team/Sub\n")
    assert emu.credential("reg", "Team/Sub") is not None and emu.credential("reg") is None
    code, out, err = run(capsys, [*CREDENTIAL, "--folder", "Nope"], environ(emu))
    assert code == ExitCode.NOT_FOUND and out == ""
    assert "Folder Nope does not exist" in err


def test_credential_dry_run_prints_the_action_only(emu: JenkinsEmulator, capsys: Capture) -> None:
    code, out, _ = run(capsys, [*CREDENTIAL, "--dry-run", "--debug"], environ(emu))
    assert (code, out) == (0, "would create credential reg in the system store\n")
    run(capsys, CREDENTIAL, environ(emu))
    emu.clear_log()
    code, out, _ = run(capsys, [*CREDENTIAL, "--dry-run"], environ(emu, DOCKER_LOGIN_PASSWORD="other-pw"))
    assert code == 0 and out.startswith("would update credential reg in the system store (password re-sent")
    assert {r.method for r in emu.requests} == {"GET"}
    assert emu.credential("reg").field("password") == REGISTRY_PASSWORD  # type: ignore[union-attr]


def test_credential_password_from_another_variable(emu: JenkinsEmulator, capsys: Capture) -> None:
    env = environ(emu, REG_PW=REGISTRY_PASSWORD)
    del env["DOCKER_LOGIN_PASSWORD"]
    assert run(capsys, [*CREDENTIAL, "--password-env", "REG_PW"], env)[0] == 0
    assert emu.credential("reg").field("password") == REGISTRY_PASSWORD  # type: ignore[union-attr]


def test_credential_without_a_password_is_a_credentials_error(emu: JenkinsEmulator,
                                                               capsys: Capture) -> None:
    env = environ(emu)
    del env["DOCKER_LOGIN_PASSWORD"]
    code, out, err = run(capsys, CREDENTIAL, env)  # stdin is not a terminal: no prompt, no hang
    assert code == ExitCode.CREDENTIALS and out == ""
    assert "DOCKER_LOGIN_PASSWORD" in err and "--registry" in err
    assert emu.requests == []  # nothing was sent


def test_credential_password_from_the_keyring_entry_of_jr_login(emu: JenkinsEmulator, file_keyring: None,
                                                                 capsys: Capture) -> None:
    from jenkins_registry.keyring_store import KeyringStore

    KeyringStore().set("127.0.0.1:8082", REGISTRY_USER, Secret(REGISTRY_PASSWORD))
    env = environ(emu)
    del env["DOCKER_LOGIN_PASSWORD"]
    code, _, err = run(capsys, [*CREDENTIAL, "--registry", "127.0.0.1:8082"], env)
    assert code == 0 and "from the OS keyring" in err
    assert emu.credential("reg").field("password") == REGISTRY_PASSWORD  # type: ignore[union-attr]
    # an entry stored for another user is not used
    code, _, _ = run(capsys, [*CREDENTIAL, "--registry", "127.0.0.1:8082", "--username", "someone"], env)
    assert code == ExitCode.CREDENTIALS


def test_credential_keyring_registry_defaults_to_jr_registry(emu: JenkinsEmulator, file_keyring: None,
                                                             capsys: Capture) -> None:
    from jenkins_registry.keyring_store import KeyringStore

    KeyringStore().set("127.0.0.1:8082", REGISTRY_USER, Secret(REGISTRY_PASSWORD))
    env = environ(emu, JR_REGISTRY="127.0.0.1:8082")
    del env["DOCKER_LOGIN_PASSWORD"]
    code, _, err = run(capsys, CREDENTIAL, env)
    assert code == 0 and "from the OS keyring" in err
    assert emu.credential("reg").field("password") == REGISTRY_PASSWORD  # type: ignore[union-attr]


class Stdin(io.StringIO):
    """Standard input that is a pipe, never a terminal: no prompt may be shown."""

    def isatty(self) -> bool:
        return False


@pytest.mark.parametrize("piped", [f"{REGISTRY_PASSWORD}", f"{REGISTRY_PASSWORD}\n",
                                   f"{REGISTRY_PASSWORD}\r\n"], ids=["bare", "newline", "crlf"])
def test_credential_password_from_stdin(emu: JenkinsEmulator, capsys: Capture,
                                        monkeypatch: pytest.MonkeyPatch, piped: str) -> None:
    # The environment holds another password: standard input wins, and is named in the log only.
    monkeypatch.setattr(sys, "stdin", Stdin(piped))
    code, out, err = run(capsys, [*CREDENTIAL, "--password-stdin", "--debug"],
                         environ(emu, DOCKER_LOGIN_PASSWORD="not-this-one"))
    assert (code, out) == (0, "created credential reg in the system store\n")
    assert "from standard input" in err
    assert emu.credential("reg").field("password") == REGISTRY_PASSWORD  # type: ignore[union-attr]
    assert all(REGISTRY_PASSWORD not in r.path for r in emu.requests)  # in a body, never a URL


@pytest.mark.parametrize(("piped", "options", "exit_code", "text"), [
    ("", [], ExitCode.CREDENTIALS, "is empty"),
    ("\n", [], ExitCode.CREDENTIALS, "is empty"),
    (f"{REGISTRY_PASSWORD}\nsecond line\n", [], ExitCode.USAGE, "more than one line"),
    (f"{REGISTRY_PASSWORD}\n", ["--registry", "127.0.0.1:8082"], ExitCode.USAGE, "would be ignored"),
    (f"{REGISTRY_PASSWORD}\n", ["--password-env", "X"], ExitCode.USAGE, "not allowed with"),
])
def test_credential_password_stdin_refusals(emu: JenkinsEmulator, capsys: Capture,
                                            monkeypatch: pytest.MonkeyPatch, piped: str,
                                            options: list[str], exit_code: int, text: str) -> None:
    monkeypatch.setattr(sys, "stdin", Stdin(piped))
    code, out, err = run(capsys, [*CREDENTIAL, "--password-stdin", *options], environ(emu))
    assert (code, out) == (exit_code, "")
    assert text in err and "Traceback" not in err
    assert emu.requests == []  # nothing was sent


def test_a_keyring_that_cannot_be_read_warns_and_falls_through(
    emu: JenkinsEmulator, capsys: Capture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.support.failing_keyring import BACKEND

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", BACKEND)  # conftest makes keyring load it afresh
    env = environ(emu, secret=None)
    del env["DOCKER_LOGIN_PASSWORD"]
    code, out, err = run(capsys, [*CREDENTIAL, "--registry", "127.0.0.1:8082"], env)
    # both the registry password and the Jenkins token were looked for in the keyring: the
    # password's absence is the error, as without a keyring, and nothing reached Jenkins
    assert code == ExitCode.CREDENTIALS and out == ""
    assert err.count("skipped the OS keyring") == 1 and "KeyringLocked" in err
    assert "DOCKER_LOGIN_PASSWORD" in err and "Traceback" not in err
    assert emu.requests == []
    code, _, err = run(capsys, CREDENTIAL, environ(emu, secret=None))  # the token: keyring, then missing
    assert code == ExitCode.CREDENTIALS and "No Jenkins API token for admin found" in err
    assert "Jenkins API token for admin: skipped the OS keyring" in err


def test_jenkins_token_from_the_keyring(emu: JenkinsEmulator, file_keyring: None,
                                        capsys: Capture) -> None:
    from jenkins_registry.keyring_store import KeyringStore

    KeyringStore().set_secret(f"jenkins:{emu.url.rstrip('/')}", ADMIN, Secret(TOKEN))
    code, _, err = run(capsys, CREDENTIAL, environ(emu, secret=None))
    assert code == 0 and "Jenkins API token for admin: from the OS keyring" in err


def test_missing_jenkins_token_is_a_credentials_error(emu: JenkinsEmulator, capsys: Capture) -> None:
    code, _, err = run(capsys, JOB, environ(emu, secret=None))
    assert code == ExitCode.CREDENTIALS and "JENKINS_API_TOKEN" in err
    assert emu.requests == []


# -- jr jenkins job -------------------------------------------------------------------------------------


@pytest.mark.parametrize("secret", [TOKEN, PASSWORD], ids=["api-token", "password"])
def test_job_created_unchanged_updated(emu: JenkinsEmulator, capsys: Capture, secret: str) -> None:
    env = environ(emu, secret)
    code, out, _ = run(capsys, [*JOB, "--folder", "A/B", "--tag", "latest", "--tag", "${BUILD_NUMBER}"], env)
    assert (code, out) == (0, "created folder A\ncreated folder A/B\ncreated job A/B/app\n")
    code, out, _ = run(capsys, [*JOB, "--folder", "A/B", "--tag", "latest", "--tag", "${BUILD_NUMBER}"], env)
    assert (code, out) == (0, "unchanged job A/B/app\n")
    code, out, _ = run(capsys, [*JOB, "--folder", "A/B", "--tag", "v2"], env)
    assert (code, out) == (0, "updated job A/B/app\n")
    assert "--tag v2" in emu.job_xml("A/B/app") and MANAGED_MARKER in emu.job_xml("A/B/app")


def test_job_dry_run_prints_a_diff_and_writes_nothing(emu: JenkinsEmulator, capsys: Capture) -> None:
    code, out, _ = run(capsys, [*JOB, "--dry-run"], environ(emu))
    assert code == 0 and out.startswith("would create job app\n--- app (in Jenkins)\n+++ app (wanted)\n")
    assert emu.item("app") is None
    run(capsys, JOB, environ(emu))
    emu.clear_log()
    code, out, _ = run(capsys, [*JOB, "--tag", "v9", "--dry-run"], environ(emu))
    assert code == 0 and out.startswith("would update job app\n")
    assert "\n-" in out and "\n+" in out and "--tag v9" in out
    assert {r.method for r in emu.requests} == {"GET"}
    code, out, _ = run(capsys, [*JOB, "--dry-run"], environ(emu))
    assert (code, out) == (0, "unchanged job app\n")


def test_freestyle_and_scm_pipeline_jobs(emu: JenkinsEmulator, capsys: Capture) -> None:
    freestyle = [*JOB[:5], "freestyle", *JOB[6:], "--agent", "docker", "--no-concurrent"]
    freestyle[3] = "fs"
    assert run(capsys, freestyle, environ(emu))[:2] == (0, "created job fs\n")
    xml = emu.job_xml("fs")
    assert "SecretBuildWrapper" in xml and "hudson.plugins.git.GitSCM" in xml
    assert "<assignedNode>docker</assignedNode>" in xml and "<concurrentBuild>false<" in xml
    scm = ["jenkins", "job", "--name", "app", "--type", "pipeline", "--scm-url", GIT_URL,
           "--scm-branch", "*/release", "--script-path", "ci/Jenkinsfile"]
    assert run(capsys, scm, environ(emu))[:2] == (0, "created job app\n")
    assert "CpsScmFlowDefinition" in emu.job_xml("app") and "ci/Jenkinsfile" in emu.job_xml("app")
    assert run(capsys, scm, environ(emu))[:2] == (0, "unchanged job app\n")
    for body in iter_job_bodies(emu.requests):
        assert REGISTRY_PASSWORD.encode() not in body


def test_job_build_options_reach_the_job(emu: JenkinsEmulator, capsys: Capture) -> None:
    argv = [*JOB, "--dockerfile", "docker/Dockerfile", "--build-arg", "V=${BUILD_NUMBER}",
            "--label", "team=web", "--pull", "--runner", "docker"]
    assert run(capsys, argv, environ(emu))[:2] == (0, "created job app\n")
    script = emu.job_xml("app")
    assert "checkout(scmGit(" in script
    assert "docker build --pull --file docker/Dockerfile --build-arg V=&quot;${BUILD_NUMBER}&quot; " \
        "--label org.opencontainers.image.revision=&quot;${GIT_COMMIT:-}&quot; " \
        f"--label org.opencontainers.image.source={GIT_URL} --label team=web" in script


def test_unmanaged_job_needs_force(emu: JenkinsEmulator, capsys: Capture) -> None:
    import jenkins

    jenkins.Jenkins(emu.url, ADMIN, TOKEN, timeout=10).create_job(
        "app", "<flow-definition><description>by hand</description></flow-definition>")
    code, out, err = run(capsys, JOB, environ(emu))
    assert code == ExitCode.CONFLICT and out == ""
    assert "was not created by jenkins-registry" in err and "--force" in err
    code, out, err = run(capsys, [*JOB, "--force"], environ(emu))
    assert (code, out) == (0, "updated job app\n") and "taking over" in err


# -- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "secret", "code", "text"), [
    (ADMIN, "not-the-token", ExitCode.AUTH, "rejected the credentials of user 'admin' (HTTP 401)"),
    ("reader", "reader-token", ExitCode.PERMISSION, "User 'reader' is not allowed to create job app"),
])
def test_auth_errors(emu: JenkinsEmulator, capsys: Capture, user: str, secret: str,
                     code: int, text: str) -> None:
    got, out, err = run(capsys, [*JOB, "--debug"], environ(emu, secret, JENKINS_USER=user))
    assert (got, out) == (code, "") and text in err
    assert "not-the-token" not in err


def test_unreachable_jenkins(capsys: Capture) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        env = {"JENKINS_URL": url, "JENKINS_USER": ADMIN, "JENKINS_API_TOKEN": TOKEN}
        code, _, err = run(capsys, JOB, env)
    assert code == ExitCode.UNREACHABLE and f"Cannot reach Jenkins at {url}" in err


def test_credentials_plugin_missing(emu: JenkinsEmulator, capsys: Capture) -> None:
    emu.state.credentials_plugin = False
    code, _, err = run(capsys, CREDENTIAL, environ(emu))
    assert code == ExitCode.NOT_FOUND and "Install the Credentials plugin" in err


def test_name_refused_by_jenkins_shows_its_reason(emu: JenkinsEmulator, capsys: Capture) -> None:
    emu.state.faults[("POST", "/createItem")] = Fault(
        400, x_error="‘app’ does not match the job name convention pattern [a-z]+-job")
    code, _, err = run(capsys, JOB, environ(emu))
    assert code == ExitCode.USAGE
    assert "Jenkins refused to create job app: ‘app’ does not match the job name convention pattern" in err


def test_server_error_with_debug_shows_no_secret(emu: JenkinsEmulator, capsys: Capture) -> None:
    run(capsys, CREDENTIAL, environ(emu))
    emu.state.faults[("POST", "/credentials/")] = Fault(500, echo_body=True)  # the Oops page quotes the XML
    code, _, err = run(capsys, [*CREDENTIAL, "--debug"], environ(emu, PASSWORD))
    assert code == ExitCode.SERVER and "Traceback" in err and "HTTP 500" in err


@pytest.mark.parametrize(("argv", "text"), [
    ([*BASE_JOB[:3], "bad?name", *BASE_JOB[4:]], "‘?’"),
    ([*BASE_JOB, "--folder", "A//B"], "empty component"),
    ([*BASE_JOB, "--folder", "A/."], "not an allowed"),
    ([*BASE_JOB[:-2], "--scm-branch", "main"], "need --scm-url"),
    (BASE_JOB[:-2], "needs a source"),
    ([*BASE_JOB[:5], "freestyle", *BASE_JOB[6:], "--script-path", "J"], "only applies to --type pipeline"),
    ([*BASE_JOB, "--script-path", "J"], "--registry, --image, --credentials-id would be ignored"),
    ([*BASE_JOB[:-4], "--scm-url", GIT_URL], "No credentials id given"),
    ([*BASE_JOB, "--build-arg", "A=${DOCKER_LOGIN_PASSWORD}"], "credential variable"),
    ([*BASE_JOB, "--jenkins-url", "ftp://jenkins/"], "not an http:// or https:// URL"),
    ([*CREDENTIAL[:3], "bad id", *CREDENTIAL[4:]], "credentials id"),
    ([*CREDENTIAL, "--password-env", ""], "--password-env needs a variable name"),
])
def test_bad_input_is_refused_before_anything_is_sent(emu: JenkinsEmulator, capsys: Capture,
                                                      argv: list[str], text: str) -> None:
    code, out, err = run(capsys, argv, environ(emu))
    assert (code, out) == (ExitCode.USAGE, "") and text in err and "Traceback" not in err
    assert emu.requests == []


def test_credentials_in_the_jenkins_url_are_refused(emu: JenkinsEmulator, capsys: Capture) -> None:
    url = emu.url.replace("http://", f"http://{ADMIN}:{TOKEN}@")
    code, _, err = run(capsys, JOB, environ(emu, JENKINS_URL=url))
    assert code == ExitCode.USAGE and "contains a user name or password" in err
    assert emu.requests == []


def test_missing_url_and_user(capsys: Capture) -> None:
    assert run(capsys, JOB, {"JENKINS_API_TOKEN": TOKEN})[0] == ExitCode.USAGE
    code, _, err = run(capsys, JOB, {"JENKINS_URL": "http://127.0.0.1:9/", "JENKINS_API_TOKEN": TOKEN})
    assert code == ExitCode.USAGE and "JENKINS_USER" in err


def test_no_option_takes_a_secret_and_help_stays_light(capsys: Capture) -> None:
    for argv in (["jenkins", "--help"], ["jenkins", "job", "--help"], ["jenkins", "credential", "--help"]):
        assert main(argv, {}) == 0
        text = capsys.readouterr().out
        assert "--token" not in text and "--password " not in text and "--api-token" not in text
    probe = ("import sys, jenkins_registry.cli.jenkins as m; "
             "print('jenkins' in sys.modules, 'requests' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            timeout=60)
    assert result.stdout.split() == ["False", "False"]
