"""`jr render …` in process: output, exit codes, one-line errors without tracebacks, atomic --output,
and no secret anywhere even when the environment holds one."""

from __future__ import annotations

import logging
import os
import re
import shlex
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from jenkins_registry import render
from jenkins_registry.cli.main import main
from jenkins_registry.errors import ExitCode
from jenkins_registry.job_spec import BuildOptions, JobSpec, JobType, PushSpec, ScmSpec
from jenkins_registry.secret_types import Secret
from tests.support.services import REGISTRY_PASSWORD
from tests.test_escaping import parse_xml
from tests.test_render import CREDENTIALS_ID, IMAGE, REGISTRY, ROOT, TAGS

BASE = ["--registry", REGISTRY, "--repository", IMAGE, "--tag", TAGS[0], "--tag", TAGS[1]]
# An environment as a Jenkins agent inside withCredentials has it: the secret is right there.
SECRET_ENV = {"DOCKER_LOGIN_USERNAME": "ci-bot", "DOCKER_LOGIN_PASSWORD": REGISTRY_PASSWORD,
              "JENKINS_API_TOKEN": REGISTRY_PASSWORD, "PATH": os.environ.get("PATH", "")}
# JR_REGISTRY is a default, not an option given: a job from the repository does not refuse it.
ENV_WITH_REGISTRY = {**SECRET_ENV, "JR_REGISTRY": REGISTRY}
GIT_URL = "https://git.example.com/team/jenkins-test.git"


class Result:
    def __init__(self, code: int, out: str, err: str, logs: str) -> None:
        self.code, self.out, self.err, self.logs = code, out, err, logs

    def assert_no_secret(self) -> None:
        assert REGISTRY_PASSWORD not in self.out + self.err + self.logs


Run = Callable[..., Result]


@pytest.fixture
def jr(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
       monkeypatch: pytest.MonkeyPatch) -> Run:
    # The CLI masks every value any Secret of this process ever held; other tests' hostile
    # passwords ("--tag", "-n", …) must not mask option names here, as in a fresh `jr` process.
    monkeypatch.setattr(Secret, "_seen", set())

    def run(*argv: str, environ: dict[str, str] | None = None) -> Result:
        env = dict(SECRET_ENV if environ is None else environ)
        with caplog.at_level(logging.DEBUG):
            code = main(list(argv), env)
        # cli.common sends the package's log records to stderr itself (no propagation), so the
        # log lines are part of err; caplog holds anything that reached the root logger.
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err, caplog.text)
    return run


def assert_clean_error(result: Result, fragment: str) -> None:
    assert result.code == ExitCode.USAGE
    assert result.out == ""
    lines = result.err.splitlines()
    assert lines[0].startswith("jr: error: ") and fragment in lines[0], result.err
    assert lines[1].startswith("jr: what to do: ")
    assert "Traceback" not in result.err
    result.assert_no_secret()


# ---------------------------------------------------------------------------------------------
# Success


def test_render_jenkinsfile_to_stdout(jr: Run) -> None:
    result = jr("render", "jenkinsfile", *BASE, "--credentials-id", CREDENTIALS_ID)
    assert result.code == 0
    assert result.out == render.render_jenkinsfile(
        PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS), CREDENTIALS_ID)
    result.assert_no_secret()
    assert "DOCKER_LOGIN_PASSWORD" in result.out  # the variable name, not its value


@pytest.mark.parametrize(("options", "spec"), [
    (["--no-build", "--runner", "docker"], PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS,
                                                    build=False, runner="docker")),
    (["--build", "--runner", "jr"], PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS)),
])
def test_render_flavours(jr: Run, options: list[str], spec: PushSpec) -> None:
    result = jr("render", "jenkinsfile", *BASE, "--credentials-id", CREDENTIALS_ID, *options)
    assert (result.code, result.out) == (0, render.render_jenkinsfile(spec, CREDENTIALS_ID))
    result = jr("render", "shell", *BASE, *options)
    assert (result.code, result.out) == (0, render.render_shell(spec))
    result.assert_no_secret()


def test_registry_defaults_to_jr_registry(jr: Run) -> None:
    env = {**SECRET_ENV, "JR_REGISTRY": "127.0.0.1:5000"}
    result = jr("render", "shell", "--repository", IMAGE, environ=env)
    assert result.code == 0 and "--registry 127.0.0.1:5000 " in result.out
    result = jr("render", "shell", "--repository", IMAGE, "--registry", REGISTRY, environ=env)
    assert result.code == 0 and f"--registry {REGISTRY} " in result.out  # the option wins


def test_render_job_pipeline_and_freestyle(jr: Run) -> None:
    job_types: tuple[JobType, ...] = ("pipeline", "freestyle")
    for job_type in job_types:
        result = jr("render", "job", "--type", job_type, *BASE, "--credentials-id", CREDENTIALS_ID,
                    "--description", "nightly <push>", "--scm-url", GIT_URL)
        assert result.code == 0, result.err
        expected = JobSpec(job_type=job_type, push=PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS),
                           credentials_id=CREDENTIALS_ID, description="nightly <push>",
                           scm=ScmSpec(url=GIT_URL))
        assert result.out == render.render_job_xml(expected)
        assert parse_xml(result.out).findtext("description", "").startswith("nightly <push>")
        result.assert_no_secret()


def test_every_job_option_reaches_the_spec(jr: Run) -> None:
    """The one factory (cli/job_options.py) maps each option to its field; nothing is dropped."""
    result = jr(
        "render", "job", "--type", "freestyle", *BASE, "--credentials-id", CREDENTIALS_ID,
        "--scm-url", GIT_URL, "--scm-branch", "*/release", "--scm-credentials-id", "git-login",
        "--runner", "docker", "--dockerfile", "docker/Dockerfile", "--context", "src",
        "--build-arg", "A=1", "--build-arg", "B=x=${BUILD_NUMBER}", "--label", "k=v",
        "--label", "e=", "--pull", "--oci-source", "https://h/x.git", "--agent", "linux",
        "--no-concurrent", "--description", "d")
    assert result.code == 0, result.err
    expected = JobSpec(
        job_type="freestyle", credentials_id=CREDENTIALS_ID, description="d", agent="linux",
        concurrent=False,
        scm=ScmSpec(url=GIT_URL, branch="*/release", credentials_id="git-login"),
        push=PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS, runner="docker",
                      build_options=BuildOptions(
                          dockerfile="docker/Dockerfile", context="src",
                          build_args=(("A", "1"), ("B", "x=${BUILD_NUMBER}")),
                          labels=(("k", "v"), ("e", "")), pull=True, oci_source="https://h/x.git")))
    assert result.out == render.render_job_xml(expected)
    result = jr("render", "job", "--type", "pipeline", *BASE, "--credentials-id", CREDENTIALS_ID,
                "--no-build", "--oci-labels", "--no-pull", "--concurrent")  # defaults, given
    assert result.code == 0, result.err
    assert result.out == render.render_job_xml(JobSpec(
        job_type="pipeline", credentials_id=CREDENTIALS_ID,
        push=PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS, build=False)))


def test_render_jenkinsfile_and_shell_build_options(jr: Run) -> None:
    options = ["--build-arg", "V=${BUILD_NUMBER}", "--oci-source", GIT_URL]
    push = PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS, build_options=BuildOptions(
        build_args=(("V", "${BUILD_NUMBER}"),), oci_source=GIT_URL))
    result = jr("render", "jenkinsfile", *BASE, "--credentials-id", CREDENTIALS_ID, *options,
                "--agent", "docker && linux", "--no-concurrent")
    assert result.code == 0, result.err
    assert result.out == render.render_jenkinsfile(push, CREDENTIALS_ID, agent="docker && linux",
                                                   concurrent=False)
    assert "Checkout" not in result.out  # a committed Jenkinsfile gets Jenkins' own checkout
    result = jr("render", "shell", *BASE, *options)
    assert (result.code, result.out) == (0, render.render_shell(push))
    for option in (["--agent", "x"], ["--no-concurrent"], ["--scm-url", GIT_URL]):
        result = jr("render", "shell", *BASE, *option)  # a shell step has neither: argparse says so
        assert result.code == ExitCode.USAGE and "unrecognized arguments" in result.err


def test_render_job_from_scm(jr: Run) -> None:
    """--script-path: the job runs the repository's Jenkinsfile and takes only the source options."""
    result = jr("render", "job", "--type", "pipeline", "--scm-url", GIT_URL,
                "--script-path", "ci/Jenkinsfile", "--description", "from git", environ=ENV_WITH_REGISTRY)
    assert result.code == 0, result.err
    expected = JobSpec(job_type="pipeline", description="from git", scm=ScmSpec(url=GIT_URL),
                       script_path="ci/Jenkinsfile")
    assert result.out == render.render_job_xml(expected)
    assert "<name>*/main</name>" in result.out


@pytest.mark.parametrize("option", [
    ["--registry", REGISTRY], ["--repository", IMAGE], ["--image", IMAGE], ["--tag", "x"],
    ["--tag-from", "git"], ["--credentials-id", "c"],
    ["--runner", "jr"], ["--build"], ["--no-build"], ["--dockerfile", "D"], ["--context", "."],
    ["--build-arg", "A=b"], ["--label", "k=v"], ["--pull"], ["--no-oci-labels"],
    ["--oci-source", GIT_URL], ["--agent", "x"], ["--no-concurrent"], ["--concurrent"],
])
def test_jenkinsfile_from_the_repository_refuses_what_it_would_ignore(jr: Run, option: list[str]) -> None:
    result = jr("render", "job", "--type", "pipeline", "--scm-url", GIT_URL, "--script-path", "ci/J",
                *option)
    assert_clean_error(result, option[0].replace("--no-", "--"))
    assert "would be ignored" in result.err and "jr render jenkinsfile" in result.err
    assert "ci/J" in result.err


def test_output_is_written_atomically(jr: Run, tmp_path: Path) -> None:
    target = tmp_path / "out" / "Jenkinsfile"
    result = jr("render", "jenkinsfile", *BASE, "--credentials-id", CREDENTIALS_ID,
                "--output", str(target))
    assert result.code == 0 and result.out == ""
    assert f"wrote {target}" in result.err
    assert target.read_text(encoding="utf-8") == render.render_jenkinsfile(
        PushSpec(registry=REGISTRY, image=IMAGE, tags=TAGS), CREDENTIALS_ID)
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["Jenkinsfile"]  # no temp file left


def test_quiet_prints_nothing_but_the_result(jr: Run, tmp_path: Path) -> None:
    result = jr("render", "shell", *BASE, "--output", str(tmp_path / "s.sh"), "-q")
    assert (result.code, result.out, result.err) == (0, "", "")


@pytest.mark.parametrize("document", ["README.md", "docs/render.md"])
def test_documented_example_command_renders_jenkinsfile_example(jr: Run, tmp_path: Path,
                                                                 document: str) -> None:
    """README.md and docs/render.md show the command that produces Jenkinsfile.example; run it."""
    docs = (ROOT / document).read_text(encoding="utf-8")
    match = re.search(r"<!-- example-command -->\n```(?:sh|console)?\n(.+?)\n```", docs, re.S)
    assert match, f"{document} lost its <!-- example-command --> block"
    argv = shlex.split(match.group(1).replace("\\\n", " "))
    assert argv[:3] == ["jr", "render", "jenkinsfile"] and "--output" in argv
    argv[argv.index("--output") + 1] = str(tmp_path / "Jenkinsfile.example")
    result = jr(*argv[1:])
    assert result.code == 0, result.err
    assert (tmp_path / "Jenkinsfile.example").read_bytes() == \
        (ROOT / "Jenkinsfile.example").read_bytes(), "Jenkinsfile.example drifted from the renderer"


# ---------------------------------------------------------------------------------------------
# Errors: a clear line, exit 2, nothing written, no secret


@pytest.mark.parametrize(("argv", "fragment"), [
    (["render", "jenkinsfile", "--repository", IMAGE, "--credentials-id", "c"], "No registry given"),
    (["render", "jenkinsfile", *BASE, "--credentials-id", "bad id"], "credentials id"),
    (["render", "jenkinsfile", *BASE, "--credentials-id", "c", "--tag", "a\nb"], "control character"),
    (["render", "jenkinsfile", *BASE, "--credentials-id", "c", "--tag", "$BUILD_NUMBER"],
     "not a ${NAME}"),
    (["render", "jenkinsfile", *BASE, "--credentials-id", "c", "--tag",
      "${DOCKER_LOGIN_PASSWORD}"], "credential variable"),
    (["render", "shell", "--registry", "https://10.211.55.6:8082", "--repository", IMAGE], "scheme"),
    (["render", "shell", "--registry", REGISTRY, "--repository", "Jenkins-Test"], "not valid"),
    (["render", "shell", "--registry", REGISTRY, "--repository", "jenkins-test:1"], "tag or digest"),
    (["render", "shell", *BASE, "--image", "app:1"], "build tags its own"),
    (["render", "shell", *BASE, "--image", "Bad Name", "--no-build"], "not a valid image name"),
    (["render", "shell", *BASE, "--tag-from", "git", "--runner", "docker"], "needs --runner jr"),
    (["render", "job", "--type", "freestyle", *BASE, "--credentials-id", "c", "--scm-url", "u",
      "--script-path", "J"], "only applies to --type pipeline"),
    (["render", "job", "--type", "pipeline", *BASE, "--credentials-id", "c", "--scm-branch", "b"],
     "need --scm-url"),
    (["render", "job", "--type", "pipeline", *BASE, "--credentials-id", "c"], "needs a source"),
    (["render", "job", "--type", "freestyle", *BASE, "--credentials-id", "c", "--runner", "docker"],
     "needs a source"),
    (["render", "job", "--type", "pipeline", *BASE, "--scm-url", "u"], "No credentials id given"),
    (["render", "job", "--type", "pipeline", "--registry", REGISTRY, "--credentials-id", "c",
      "--scm-url", "u"], "No repository given"),
    (["render", "shell", *BASE, "--build-arg", "NOEQUALS"], "has no '='"),
    (["render", "shell", *BASE, "--label", "k"], "has no '='"),
    (["render", "shell", *BASE, "--label", "bad key=v"], "label key"),
    (["render", "shell", *BASE, "--build-arg", "A=${DOCKER_LOGIN_PASSWORD}"], "credential variable"),
    (["render", "shell", *BASE, "--build-arg", "A=$HOME"], "not a ${NAME}"),
    (["render", "shell", *BASE, "--no-oci-labels", "--oci-source", "https://h/x"], "contradict"),
    (["render", "shell", *BASE, "--oci-source", f"https://u:{REGISTRY_PASSWORD}@h/x"],
     "contains a password"),
    (["render", "shell", *BASE, "--dockerfile=-x"], "starts with '-'"),
    (["render", "shell", *BASE, "--no-build", "--build-arg", "A=1"], "--build-arg only apply"),
    (["render", "job", "--type", "pipeline", *BASE, "--credentials-id", "c", "--no-build",
      "--scm-url", "u", "--pull"], "--pull only apply"),
    (["render", "jenkinsfile", *BASE, "--credentials-id", "c", "--agent", "a\nb"],
     "control character"),
    (["render", "job", "--type", "pipeline", *BASE, "--credentials-id", "c",
      "--scm-url", f"https://u:{REGISTRY_PASSWORD}@git.example.com/x.git"], "contains a password"),
    (["render", "job", "--type", "pipeline", *BASE, "--credentials-id", "c", "--scm-url", "u",
      "--description", "bell\x07"], "XML cannot carry"),
    (["render"], "Say what to render"),
])
def test_bad_input_fails_cleanly_and_writes_nothing(jr: Run, tmp_path: Path, argv: list[str],
                                                    fragment: str) -> None:
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    target = out_dir / "out.txt"
    target.write_text("previous content\n")
    output = ["--output", str(target)] if len(argv) > 1 else []
    result = jr(*argv, *output)
    assert_clean_error(result, fragment)
    assert target.read_text() == "previous content\n"  # untouched: rendering failed before writing
    assert sorted(p.name for p in out_dir.iterdir()) == ["out.txt"]


def test_unwritable_output_is_a_clean_error(jr: Run, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = jr("render", "shell", *BASE, "--output", str(blocker / "sub" / "out.sh"))
    assert_clean_error(result, "Cannot write")


def test_debug_shows_a_traceback_but_still_no_secret(jr: Run) -> None:
    result = jr("render", "job", "--type", "pipeline", *BASE, "--credentials-id", "c", "--debug",
                "--scm-url", f"https://u:{REGISTRY_PASSWORD}@git.example.com/x.git")
    assert result.code == ExitCode.USAGE
    assert "Traceback" in result.err
    result.assert_no_secret()


def test_missing_required_option_is_an_argparse_usage_error(jr: Run) -> None:
    result = jr("render", "jenkinsfile", "--registry", REGISTRY, "--repository", IMAGE)
    assert result.code == ExitCode.USAGE and result.out == ""
    assert "--credentials-id" in result.err and "Traceback" not in result.err


def test_help_mentions_tag_variables(jr: Run) -> None:
    result = jr("render", "jenkinsfile", "--help")
    assert result.code == 0
    assert "${BUILD_NUMBER}" in result.out and "JR_REGISTRY" in result.out
