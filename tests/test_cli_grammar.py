"""One grammar across the `jr` commands: --repository is the path in the registry, --image the
local image (a lone --image keeps its old meaning for one release, with a warning), --tag-from git
is handed to jr-push, and every --registry defaults to $JR_REGISTRY. In process, through the real
main functions; `jr jenkins job` against the Jenkins emulator."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import pytest

from jenkins_registry import render
from jenkins_registry.cli.main import main
from jenkins_registry.errors import ExitCode
from jenkins_registry.job_spec import JobSpec, PushSpec, ScmSpec
from jenkins_registry.secret_types import Secret
from tests.support.jenkins_emulator import JenkinsEmulator
from tests.support.services import REGISTRY_PASSWORD
from tests.test_cli_help import all_parsers

REGISTRY = "10.211.55.6:8082"
GIT_URL = "https://git.example.com/team/app.git"
CREDENTIALS_ID = "docker-registry-login"
ENV = {"DOCKER_LOGIN_PASSWORD": REGISTRY_PASSWORD, "JENKINS_API_TOKEN": REGISTRY_PASSWORD}
WARNING = ("jr: warning: --image now names the local image; use --repository jenkins-test for the "
           "path in the registry. The old meaning stays until 0.3.\n")
Capture = pytest.CaptureFixture[str]


@pytest.fixture(autouse=True)
def fresh_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Secret, "_seen", set())  # as in a fresh `jr` process


def jr(capsys: Capture, *argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    code = main(list(argv), {**ENV, **(env or {})})
    out, err = capsys.readouterr()
    assert REGISTRY_PASSWORD not in out + err and "Traceback" not in err
    return code, out, err


# ---------------------------------------------------------------------------------------------
# --repository and --image


@pytest.mark.parametrize(("options", "spec"), [
    (["--repository", "team/app"], PushSpec(registry=REGISTRY, image="team/app")),
    (["--repository", "team/app", "--image", "app"],
     PushSpec(registry=REGISTRY, image="team/app", local_image="app")),
    (["--repository", "team/app", "--image", "app:1.0", "--no-build"],
     PushSpec(registry=REGISTRY, image="team/app", local_image="app:1.0", build=False)),
    (["--repository", "team/app", "--image", "sha256:" + "ab" * 32, "--no-build", "--runner", "docker"],
     PushSpec(registry=REGISTRY, image="team/app", local_image="sha256:" + "ab" * 32, build=False,
              runner="docker")),
])
def test_repository_is_the_path_and_image_the_local_image(capsys: Capture, options: list[str],
                                                          spec: PushSpec) -> None:
    code, out, err = jr(capsys, "render", "shell", "--registry", REGISTRY, *options)
    assert (code, out, err) == (0, render.render_shell(spec), "")
    code, out, err = jr(capsys, "render", "jenkinsfile", "--registry", REGISTRY, *options,
                        "--credentials-id", CREDENTIALS_ID)
    assert (code, out, err) == (0, render.render_jenkinsfile(spec, CREDENTIALS_ID), "")


def test_the_step_builds_and_pushes_the_local_image_under_the_repository(capsys: Capture) -> None:
    code, out, _ = jr(capsys, "render", "shell", "--registry", REGISTRY, "--repository", "team/app",
                      "--image", "app")
    assert code == 0
    assert "jr_image=app:jr-build-" in out and '--tag "$jr_image" .' in out
    assert f'jr-push --image "$jr_image" --name team/app --registry {REGISTRY} ' in out
    code, out, _ = jr(capsys, "render", "shell", "--registry", REGISTRY, "--repository", "team/app",
                      "--image", "app:1.0", "--no-build", "--runner", "docker")
    assert code == 0 and f"docker tag app:1.0 {REGISTRY}/team/app:latest\n" in out


def test_a_lone_image_is_still_the_repository_with_a_warning(capsys: Capture) -> None:
    for what, extra in (("shell", []), ("jenkinsfile", ["--credentials-id", CREDENTIALS_ID]),
                        ("job", ["--type", "freestyle", "--credentials-id", CREDENTIALS_ID,
                                 "--scm-url", GIT_URL])):
        code, old, err = jr(capsys, "render", what, "--registry", REGISTRY, "--image", "jenkins-test",
                            *extra)
        assert (code, err) == (0, WARNING)
        code, new, err = jr(capsys, "render", what, "--registry", REGISTRY, "--repository",
                            "jenkins-test", *extra)
        assert (code, err) == (0, "")
        assert old == new  # the same steps, only the warning differs
    # also under --quiet: a deprecation is a warning
    quiet = jr(capsys, "render", "shell", "--registry", REGISTRY, "--image", "jenkins-test", "-q")
    assert quiet[2] == WARNING


def test_the_warning_quotes_a_value_only_when_it_is_printable(capsys: Capture) -> None:
    code, out, err = jr(capsys, "render", "shell", "--registry", REGISTRY, "--image", "a\nb")
    assert (code, out) == (ExitCode.USAGE, "")
    assert err.startswith("jr: warning: --image now names the local image; use --repository "
                          "REPO/PATH for the path")
    assert "control character" in err
    code, _, err = jr(capsys, "render", "shell", "--registry", REGISTRY, "--image", "team/app's")
    assert "use --repository 'team/app'\"'\"'s' for the path" in err


@pytest.mark.parametrize(("options", "fragment"), [
    ([], "No repository given"),
    (["--image", "app:1"], "tag or digest"),  # alone, --image is still the repository path
    (["--repository", "team/app", "--image", "app:1"], "build tags its own"),
    (["--repository", "team/app", "--image", "App", "--no-build"], "not a valid image name"),
    (["--repository", "team/app:1"], "tag or digest"),
])
def test_bad_repository_or_image_is_refused(capsys: Capture, options: list[str], fragment: str) -> None:
    code, out, err = jr(capsys, "render", "shell", "--registry", REGISTRY, *options)
    assert (code, out) == (ExitCode.USAGE, "")
    assert fragment in err, err
    assert "jr: what to do: " in err


# ---------------------------------------------------------------------------------------------
# --tag-from git


def test_tag_from_git_is_handed_to_jr_push(capsys: Capture) -> None:
    base = ["--registry", REGISTRY, "--repository", "jenkins-test", "--tag-from", "git"]
    code, out, _ = jr(capsys, "render", "shell", *base)
    assert code == 0
    assert f"--registry {REGISTRY} --tag-from git --digest-file image.digest\n" in out  # no latest
    code, out, _ = jr(capsys, "render", "shell", *base, "--tag", "nightly")
    assert code == 0 and "--tag nightly --tag-from git " in out  # jr-push pushes both
    code, out, _ = jr(capsys, "render", "job", "--type", "pipeline", *base, "--credentials-id",
                      CREDENTIALS_ID, "--scm-url", GIT_URL)
    spec = JobSpec(job_type="pipeline", push=PushSpec(registry=REGISTRY, image="jenkins-test",
                                                      tag_from="git"),
                   credentials_id=CREDENTIALS_ID, scm=ScmSpec(url=GIT_URL))
    assert (code, out) == (0, render.render_job_xml(spec))
    assert "--tag-from git" in out


@pytest.mark.parametrize("what", [["shell"], ["jenkinsfile", "--credentials-id", CREDENTIALS_ID]])
def test_tag_from_git_with_the_docker_runner_is_refused(capsys: Capture, what: list[str]) -> None:
    code, out, err = jr(capsys, "render", *what, "--registry", REGISTRY, "--repository", "jenkins-test",
                        "--tag-from", "git", "--runner", "docker")
    assert (code, out) == (ExitCode.USAGE, "")
    assert "--tag-from git needs --runner jr" in err and "Use --runner jr" in err


# ---------------------------------------------------------------------------------------------
# jr jenkins job: the same grammar, applied


@pytest.fixture
def emu() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={"admin": ("admin-pw", {REGISTRY_PASSWORD})}) as emulator:
        yield emulator


def test_jenkins_job_takes_repository_image_tag_from_and_jr_registry(emu: JenkinsEmulator,
                                                                      capsys: Capture) -> None:
    env = {"JENKINS_URL": emu.url, "JENKINS_USER": "admin", "JR_REGISTRY": "127.0.0.1:8082"}
    job = ["jenkins", "job", "--type", "freestyle", "--credentials-id", "reg", "--scm-url", GIT_URL,
           "--allow-missing-credential"]
    code, _, err = jr(capsys, *job, "--name", "new", "--repository", "team/app", "--image", "app",
                      "--tag-from", "git", env=env)
    assert (code, err.count("warning")) == (0, 0)
    xml = emu.job_xml("new")
    assert "jr_image=app:jr-build-" in xml and "--name team/app --registry 127.0.0.1:8082" in xml
    assert "--tag-from git" in xml
    code, _, err = jr(capsys, *job, "--name", "old", "--image", "team/app", env=env)
    assert code == 0 and "jr: warning: --image now names the local image" in err
    assert "--name team/app --registry 127.0.0.1:8082" in emu.job_xml("old")
    code, _, err = jr(capsys, *job, "--name", "docker", "--repository", "team/app", "--runner", "docker",
                      "--tag-from", "git", env=env)
    assert code == ExitCode.USAGE and "--tag-from git needs --runner jr" in err
    assert emu.item("docker") is None


# ---------------------------------------------------------------------------------------------
# $JR_REGISTRY wherever --registry is taken


def _registry_options() -> Iterator[tuple[str, argparse.Action]]:
    for path, parser in all_parsers().items():
        for action in parser._actions:
            if "--registry" in action.option_strings:
                yield path, action


def test_every_registry_option_defaults_to_jr_registry() -> None:
    found = dict(_registry_options())
    assert {"jr render shell", "jr render job", "jr jenkins job", "jr jenkins credential", "jr login",
            "jr doctor", "jr-push"} <= set(found)
    undocumented = [path for path, action in found.items() if "$JR_REGISTRY" not in (action.help or "")]
    assert not undocumented, f"--registry without its $JR_REGISTRY default: {undocumented}"


@pytest.mark.parametrize("argv", [
    ["render", "shell", "--repository", "app"],
    ["render", "jenkinsfile", "--repository", "app", "--credentials-id", "c"],
    ["render", "job", "--type", "pipeline", "--repository", "app", "--credentials-id", "c", "--no-build"],
])
def test_render_takes_the_registry_from_jr_registry(capsys: Capture, argv: list[str]) -> None:
    code, out, _ = jr(capsys, *argv, env={"JR_REGISTRY": "127.0.0.1:5000"})
    assert code == 0 and "--registry 127.0.0.1:5000 " in out
    code, _, err = jr(capsys, *argv)
    assert code == ExitCode.USAGE and "JR_REGISTRY" in err


def test_help_of_every_push_option_names_the_new_grammar(capsys: Capture) -> None:
    parsers: dict[str, Any] = all_parsers()
    for path in ("jr render jenkinsfile", "jr render shell", "jr render job", "jr jenkins job"):
        text = parsers[path].format_help()
        assert "--repository REPO/PATH" in text and "--image NAME" in text and "--tag-from" in text
