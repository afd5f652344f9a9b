"""Rendering: golden files for every template and flavour, the structure Jenkins relies on, hostile
values through every renderer, and the rendered steps run by a real `sh` (with recording stand-ins
for docker and jr-push, and end to end with the real docker CLI, engine and registry).

Regenerate the golden files after an intended template change with
    JR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_render.py -k golden
and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from jenkins_registry import render
from jenkins_registry.credentials import Secret
from jenkins_registry.errors import (
    ExitCode,
    InvalidReferenceError,
    JrError,
    TemplateError,
    UnsafeValueError,
    UsageError,
)
from jenkins_registry.job_spec import MANAGED_MARKER, CredentialSpec, JobSpec, PushSpec, ScmSpec
from tests.services import REGISTRY_PASSWORD, REGISTRY_USER
from tests.test_escaping import PROPERTY, groovy_value, hostile_text, parse_xml

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

# The example values docs/render.md documents (and Jenkinsfile.example is rendered from).
REGISTRY = "10.211.55.6:8082"
IMAGE = "jenkins-test"
CREDENTIALS_ID = "docker-registry-login"
TAGS = ("latest", "${BUILD_NUMBER}")


def push(**changes: object) -> PushSpec:
    fields: dict[str, object] = {"registry": REGISTRY, "image": IMAGE, "tags": TAGS}
    fields.update(changes)
    return PushSpec(**fields)  # type: ignore[arg-type]


JENKINSFILE_CASES: dict[str, PushSpec] = {
    "jenkinsfile-jr-build.groovy": push(),
    "jenkinsfile-jr-nobuild.groovy": push(build=False),
    "jenkinsfile-docker-build.groovy": push(runner="docker"),
    "jenkinsfile-docker-nobuild.groovy": push(runner="docker", build=False),
    "jenkinsfile-jr-variables.groovy": push(tags=(), username_variable="REG_USER",
                                            password_variable="REG_PASS"),
}
SHELL_CASES: dict[str, PushSpec] = {
    "shell-jr-build.sh": push(),
    "shell-jr-nobuild.sh": push(build=False),
    "shell-docker-build.sh": push(runner="docker"),
    "shell-docker-nobuild.sh": push(runner="docker", build=False),
}
JOB_CASES: dict[str, JobSpec] = {
    "job-pipeline-inline.xml": JobSpec(job_type="pipeline", push=push(runner="docker"),
                                       credentials_id=CREDENTIALS_ID,
                                       description="Build jenkins-test & push it <nightly>."),
    "job-pipeline-scm.xml": JobSpec(
        job_type="pipeline", push=push(), credentials_id=CREDENTIALS_ID,
        scm=ScmSpec(url="https://git.example.com/team/jenkins-test.git", branch="*/release",
                    script_path="ci/Jenkinsfile", credentials_id="git-checkout")),
    "job-freestyle-jr.xml": JobSpec(job_type="freestyle", push=push(), credentials_id=CREDENTIALS_ID),
    "job-freestyle-docker.xml": JobSpec(job_type="freestyle", push=push(runner="docker"),
                                        credentials_id=CREDENTIALS_ID),
}
CREDENTIAL_CASES: dict[str, CredentialSpec] = {
    "credential.xml": CredentialSpec(credential_id=CREDENTIALS_ID, username="ci-bot",
                                     password=Secret("example-only <&> 'pw'"),
                                     description="Registry push account"),
    "credential-username-secret.xml": CredentialSpec(
        credential_id="system-login", username="svc", password=Secret("example-only"),
        scope="SYSTEM", username_secret=True),
}


def golden_renderings() -> dict[str, Callable[[], str]]:
    cases: dict[str, Callable[[], str]] = {}
    for name, spec in JENKINSFILE_CASES.items():
        cases[name] = lambda spec=spec: render.render_jenkinsfile(spec, CREDENTIALS_ID)  # type: ignore[misc]
    for name, spec in SHELL_CASES.items():
        cases[name] = lambda spec=spec: render.render_shell(spec)  # type: ignore[misc]
    for name, job in JOB_CASES.items():
        cases[name] = lambda job=job: render.render_job_xml(job)  # type: ignore[misc]
    for name, cred in CREDENTIAL_CASES.items():
        cases[name] = lambda cred=cred: render.render_credential_xml(cred)  # type: ignore[misc]
    return cases


# ---------------------------------------------------------------------------------------------
# Golden files


@pytest.mark.parametrize("name", sorted(golden_renderings()))
def test_golden(name: str) -> None:
    rendered = golden_renderings()[name]()
    path = GOLDEN_DIR / name
    if os.environ.get("JR_UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(exist_ok=True)
        path.write_text(rendered, encoding="utf-8", newline="")
    assert path.exists(), f"{path} is missing: run with JR_UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_bytes().decode("utf-8"), (
        f"{name} differs from its golden file; if intended, regenerate with JR_UPDATE_GOLDEN=1")


def test_every_template_has_golden_coverage() -> None:
    """A new template must come with golden cases (and a line here)."""
    shipped = sorted(p.name for p in (ROOT / "templates").glob("*.j2"))
    assert shipped == ["Jenkinsfile.j2", "_push.sh.j2", "credential.xml.j2",
                       "job-freestyle.xml.j2", "job-pipeline.xml.j2", "shell.sh.j2"]
    golden = {p.name for p in GOLDEN_DIR.iterdir()}
    assert golden == set(golden_renderings()), "stale or missing files in tests/golden/"


def test_jenkinsfile_example_is_what_the_renderer_produces() -> None:
    """Jenkinsfile.example = `jr render jenkinsfile` with the documented example values."""
    expected = render.render_jenkinsfile(push(), CREDENTIALS_ID)
    assert (ROOT / "Jenkinsfile.example").read_text(encoding="utf-8") == expected, (
        "Jenkinsfile.example drifted: regenerate it with the command in docs/render.md")


# ---------------------------------------------------------------------------------------------
# Reading rendered Jenkinsfiles back

_LITERAL = r"'''(?:\\.|'(?!')|[^\\'])*'''|'(?:\\.|[^\\'\n])*'"


def sh_steps(jenkinsfile: str) -> list[str]:
    """The shell script of every `sh` step, in order, as Groovy reads the literals."""
    return [groovy_value(m.group(1)) for m in re.finditer(rf"\bsh ({_LITERAL})", jenkinsfile)]


def named_argument(jenkinsfile: str, name: str) -> str:
    match = re.search(rf"\b{name}: ({_LITERAL})", jenkinsfile)
    assert match, name
    return groovy_value(match.group(1))


def without_literals_and_comments(jenkinsfile: str) -> str:
    text = re.sub(_LITERAL, "''", jenkinsfile)
    return re.sub(r"//[^\n]*", "", text)


@pytest.mark.parametrize("name", sorted(JENKINSFILE_CASES))
def test_jenkinsfile_structure(name: str) -> None:
    spec = JENKINSFILE_CASES[name]
    text = render.render_jenkinsfile(spec, CREDENTIALS_ID)
    code = without_literals_and_comments(text)
    # No double-quoted (interpolating) Groovy string anywhere, so no secret can be interpolated.
    assert '"' not in code and "$" not in code
    assert code.count("{") == code.count("}")
    assert named_argument(text, "credentialsId") == CREDENTIALS_ID
    assert named_argument(text, "usernameVariable") == spec.username_variable
    assert named_argument(text, "passwordVariable") == spec.password_variable
    assert "withCredentials([usernamePassword(" in code
    steps = sh_steps(text)
    assert len(steps) == (2 if spec.build else 1)
    if spec.build:
        assert steps[0] == f"docker build -t {IMAGE} ."
    if spec.runner == "jr":
        assert named_argument(text, "artifacts") == render.DIGEST_FILE
    else:
        assert "-p " not in steps[-1] and "--password " not in steps[-1]
        assert "--password-stdin" in steps[-1]


def test_jenkinsfile_values_are_escaped_as_groovy_then_shell() -> None:
    """A tag template keeps `${NAME}` away from Groovy (single quotes) and hands it to the shell."""
    text = render.render_jenkinsfile(push(tags=("v${BUILD_NUMBER}",)), CREDENTIALS_ID)
    assert "--tag v\"${BUILD_NUMBER}\"" in sh_steps(text)[-1]


# ---------------------------------------------------------------------------------------------
# Job and credential XML


@pytest.mark.parametrize("name", sorted(JOB_CASES))
def test_job_xml_structure(name: str) -> None:
    spec = JOB_CASES[name]
    text = render.render_job_xml(spec)
    assert text.startswith('<?xml version="1.1" encoding="UTF-8"?>\n')
    root = parse_xml(text)
    description = root.findtext("description") or ""
    assert MANAGED_MARKER in description
    assert description == render.job_description(spec)
    if spec.job_type == "freestyle":
        assert root.tag == "project"
        assert root.findtext("builders/hudson.tasks.Shell/command") == render.render_shell(spec.push)
        binding = root.find("buildWrappers/org.jenkinsci.plugins.credentialsbinding.impl."
                            "SecretBuildWrapper/bindings/org.jenkinsci.plugins.credentialsbinding."
                            "impl.UsernamePasswordMultiBinding")
        assert binding is not None
        assert [child.tag for child in binding] == ["credentialsId", "usernameVariable",
                                                    "passwordVariable"]
        assert binding.findtext("credentialsId") == spec.credentials_id
        assert binding.findtext("usernameVariable") == "DOCKER_LOGIN_USERNAME"
        assert binding.findtext("passwordVariable") == "DOCKER_LOGIN_PASSWORD"
        return
    assert root.tag == "flow-definition"
    definition = root.find("definition")
    assert definition is not None
    if spec.scm is None:
        assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"
        assert definition.findtext("sandbox") == "true"
        assert definition.findtext("script") == render.render_jenkinsfile(spec.push,
                                                                          spec.credentials_id)
    else:
        assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
        assert definition.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") \
            == spec.scm.url
        assert definition.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == \
            spec.scm.branch
        assert definition.findtext("scriptPath") == spec.scm.script_path


@pytest.mark.parametrize("name", sorted(CREDENTIAL_CASES))
def test_credential_xml_structure(name: str) -> None:
    spec = CREDENTIAL_CASES[name]
    root = parse_xml(render.render_credential_xml(spec))
    assert root.tag == "com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl"
    assert [child.tag for child in root] == ["scope", "id", "description", "username", "password",
                                             "usernameSecret"]
    assert root.findtext("scope") == spec.scope
    assert root.findtext("id") == spec.credential_id
    assert root.findtext("username") == spec.username
    assert root.findtext("password") == spec.password.reveal()
    assert root.findtext("usernameSecret") == ("true" if spec.username_secret else "false")


def test_only_the_credential_xml_holds_the_password() -> None:
    """The job renderers are never given the secret: they name its variable instead."""
    for name, make in golden_renderings().items():
        rendered = make()
        if name.startswith("credential"):
            assert "example-only" in rendered
        else:
            assert "example-only" not in rendered, name
    spec = CredentialSpec(credential_id="x", username=REGISTRY_USER, password=Secret(REGISTRY_PASSWORD))
    assert REGISTRY_PASSWORD in render.render_credential_xml(spec)
    assert REGISTRY_PASSWORD not in repr(spec)


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(("changes", "error", "fragment"), [
    ({"registry": "10.211.55.6:8082\n"}, UnsafeValueError, "control character"),
    ({"registry": "http://10.211.55.6:8082"}, InvalidReferenceError, "scheme"),
    ({"registry": "host/path"}, InvalidReferenceError, "path"),
    ({"registry": "host:99999"}, InvalidReferenceError, "out of range"),
    ({"image": "Jenkins-Test"}, InvalidReferenceError, "not valid"),
    ({"image": "jenkins-test:1.0"}, InvalidReferenceError, "tag or digest"),
    ({"image": "10.211.55.6:8082/jenkins-test"}, InvalidReferenceError, "registry address"),
    ({"image": "a b"}, InvalidReferenceError, "white space"),
    ({"image": "x\ty"}, UnsafeValueError, "control character"),
    ({"tags": ("a\nb",)}, UnsafeValueError, "control character"),
    ({"tags": ("-x",)}, InvalidReferenceError, "not valid"),
    ({"tags": ("a" * 129,)}, InvalidReferenceError, "not valid"),
    ({"tags": ("$BUILD_NUMBER",)}, InvalidReferenceError, "not a ${NAME}"),
    ({"tags": ("${BUILD_NUMBER",)}, InvalidReferenceError, "not a ${NAME}"),
    ({"tags": ("v${A}/x",)}, InvalidReferenceError, "not valid"),
    ({"tags": ("${DOCKER_LOGIN_PASSWORD}",)}, UnsafeValueError, "credential variable"),
    ({"tags": ("u-${DOCKER_LOGIN_USERNAME}",)}, UnsafeValueError, "credential variable"),
    ({"runner": "podman"}, UsageError, "runner"),
    ({"password_variable": "A-B"}, UnsafeValueError, "variable name"),
    ({"password_variable": "DOCKER_LOGIN_USERNAME"}, UsageError, "must differ"),
])
def test_push_values_that_are_refused(changes: dict[str, object], error: type[JrError],
                                      fragment: str) -> None:
    spec = push(**changes)
    renderers: list[Callable[[], str]] = [
        lambda: render.render_jenkinsfile(spec, CREDENTIALS_ID),
        lambda: render.render_shell(spec),
        lambda: render.render_job_xml(JobSpec(job_type="freestyle", push=spec,
                                              credentials_id=CREDENTIALS_ID)),
    ]
    for renderer in renderers:
        with pytest.raises(error) as info:
            renderer()
        assert fragment in info.value.message
        assert info.value.exit_code == ExitCode.USAGE
        assert "--name" not in info.value.hint  # hints speak of this command's options


@pytest.mark.parametrize("cid", ["", "a b", "a'b", "ä", "a/b"])
def test_bad_credentials_id_is_refused(cid: str) -> None:
    with pytest.raises(UnsafeValueError):
        render.render_jenkinsfile(push(), cid)
    with pytest.raises(UnsafeValueError):
        render.render_job_xml(JobSpec(job_type="pipeline", push=push(), credentials_id=cid))
    with pytest.raises(UnsafeValueError):
        render.render_credential_xml(CredentialSpec(credential_id=cid, username="u",
                                                    password=Secret(REGISTRY_PASSWORD)))


@pytest.mark.parametrize(("scm", "fragment"), [
    (ScmSpec(url=""), "empty"),
    (ScmSpec(url="https://x/y.git\n"), "control character"),
    (ScmSpec(url="https://x/y.git", branch="main\n"), "control character"),
    (ScmSpec(url="https://x/y.git", script_path=""), "empty"),
    (ScmSpec(url="https://x/y.git", credentials_id="a b"), "Jenkins does not accept"),
])
def test_bad_scm_values_are_refused(scm: ScmSpec, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        render.render_job_xml(JobSpec(job_type="pipeline", push=push(), credentials_id="c", scm=scm))


def test_scm_url_with_a_password_is_refused_without_echoing_it() -> None:
    url = f"https://ci:{REGISTRY_PASSWORD}@git.example.com/x.git"
    for bad in (url, url + "\n"):
        with pytest.raises(UnsafeValueError) as info:
            render.render_job_xml(JobSpec(job_type="pipeline", push=push(), credentials_id="c",
                                          scm=ScmSpec(url=bad)))
        assert REGISTRY_PASSWORD not in f"{info.value} {info.value.hint} {info.value!r}"


def test_scm_with_a_freestyle_job_is_refused() -> None:
    with pytest.raises(UsageError, match="pipeline"):
        render.render_job_xml(JobSpec(job_type="freestyle", push=push(), credentials_id="c",
                                      scm=ScmSpec(url="https://x/y.git")))


def test_bad_credential_values_are_refused_without_echoing_the_password() -> None:
    bad_password = Secret(REGISTRY_PASSWORD + "\x01")
    cases = [
        (CredentialSpec(credential_id="c", username="u", password=bad_password), UnsafeValueError),
        (CredentialSpec(credential_id="c", username="u\n", password=Secret(REGISTRY_PASSWORD)),
         UnsafeValueError),
        (CredentialSpec(credential_id="c", username="u", password=Secret("")), UsageError),
        (CredentialSpec(credential_id="c", username="u", password=Secret(REGISTRY_PASSWORD),
                        scope="PROJECT"), UsageError),  # type: ignore[arg-type]
        (CredentialSpec(credential_id="c", username="u", password=Secret(REGISTRY_PASSWORD),
                        description="\x02"), UnsafeValueError),
    ]
    for spec, error in cases:
        with pytest.raises(error) as info:
            render.render_credential_xml(spec)
        assert REGISTRY_PASSWORD not in f"{info.value} {info.value.hint} {info.value!r}"
        assert info.value.__cause__ is None or REGISTRY_PASSWORD not in str(info.value.__cause__)


def test_template_errors_are_wrapped() -> None:
    with pytest.raises(TemplateError, match=r"nope\.j2"):
        render._render("nope.j2", {})
    with pytest.raises(TemplateError, match="undefined"):  # StrictUndefined: no silent blanks
        render._render("shell.sh.j2", {})
    with pytest.raises(TemplateError) as info:
        render._render("credential.xml.j2", {"password": REGISTRY_PASSWORD}, (REGISTRY_PASSWORD,))
    assert info.value.__cause__ is None and REGISTRY_PASSWORD not in str(info.value)


def test_templates_come_from_the_package() -> None:
    import importlib

    package = importlib.import_module("jenkins_registry.templates")
    origin = Path(render.template_origin("Jenkinsfile.j2"))
    assert origin.parent == Path(package.__path__[0])


# ---------------------------------------------------------------------------------------------
# Hostile values through every renderer: refused, or back exactly


@PROPERTY
@given(hostile_text)
def test_hostile_description_round_trips_through_job_xml(text: str) -> None:
    for job_type in ("pipeline", "freestyle"):
        spec = JobSpec(job_type=job_type, push=push(), credentials_id="c", description=text)
        try:
            rendered = render.render_job_xml(spec)
        except UnsafeValueError:
            assert any(ord(ch) < 0x20 and ch not in "\t\n\r" for ch in text) or \
                "\ufffe" in text or "\uffff" in text
            return
        description = parse_xml(rendered).findtext("description") or ""
        assert description == render.job_description(spec)
        assert description.startswith(text) and description.endswith(render.job_description(
            JobSpec(job_type="pipeline", push=push(), credentials_id="c")))


@PROPERTY
@given(hostile_text, hostile_text, hostile_text)
def test_hostile_credential_values_round_trip(username: str, description: str, password: str) -> None:
    spec = CredentialSpec(credential_id="c", username=username, password=Secret(password),
                          description=description)
    try:
        rendered = render.render_credential_xml(spec)
    except (UnsafeValueError, UsageError) as exc:
        assert password not in str(exc) or len(password) < 3 or password in username + description
        return
    root = parse_xml(rendered)
    assert (root.findtext("username"), root.findtext("description") or "",
            root.findtext("password")) == (username, description, password)


@PROPERTY
@given(hostile_text, hostile_text, hostile_text)
def test_hostile_scm_values_round_trip(url: str, branch: str, script_path: str) -> None:
    assume(url and "://" not in url)
    spec = JobSpec(job_type="pipeline", push=push(), credentials_id="c",
                   scm=ScmSpec(url=url, branch=branch, script_path=script_path))
    try:
        rendered = render.render_job_xml(spec)
    except UsageError:
        return
    definition = parse_xml(rendered).find("definition")
    assert definition is not None
    assert definition.findtext("scm/userRemoteConfigs/hudson.plugins.git.UserRemoteConfig/url") \
        == url
    assert definition.findtext("scm/branches/hudson.plugins.git.BranchSpec/name") == branch
    assert definition.findtext("scriptPath") == script_path


# ---------------------------------------------------------------------------------------------
# Running what was rendered: a real sh, with recording stand-ins for docker and jr-push

FAKE_TOOL = """#!{python}
import hashlib, json, os, sys
tool = os.path.basename(sys.argv[0])
record = {{"tool": tool, "argv": sys.argv[1:], "env": sorted(os.environ),
           "docker_config": os.environ.get("DOCKER_CONFIG")}}
if tool == "docker" and sys.argv[1:2] == ["login"]:
    record["stdin_sha256"] = hashlib.sha256(sys.stdin.buffer.read()).hexdigest()
    record["config_dir_exists"] = os.path.isdir(os.environ["DOCKER_CONFIG"])
if tool == "jr-push" and "--digest-file" in sys.argv:
    with open(sys.argv[sys.argv.index("--digest-file") + 1], "w") as out:
        out.write("sha256:" + "0" * 64 + "\\n")
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
if sys.argv[1:2] == [os.environ.get("FAKE_HANG_ON")]:
    import time
    time.sleep(60)
"""


class Agent:
    """A workspace with stand-in `docker` and `jr-push` first on PATH, run like a Jenkins agent."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.bin = root / "bin"
        self.workspace = root / "workspace"
        self.tmp = root / "tmp"
        self.home = root / "home"
        for path in (self.bin, self.workspace, self.tmp, self.home):
            path.mkdir(parents=True, exist_ok=True)
        for tool in ("docker", "jr-push"):
            (self.bin / tool).write_text(FAKE_TOOL.format(python=sys.executable))
            (self.bin / tool).chmod(0o755)
        # `#!/bin/sh -l` reads /etc/profile, which may reset PATH; ~/.profile puts ours back,
        # as an agent's profile must for jr-push.
        (self.home / ".profile").write_text(f'PATH="{self.bin}:$PATH"\nexport PATH\n')
        self.log = root / "calls.jsonl"

    def env(self, **extra: str) -> dict[str, str]:
        env = {"PATH": f"{self.bin}:{os.environ['PATH']}", "HOME": str(self.home),
               "TMPDIR": str(self.tmp), "FAKE_LOG": str(self.log), "BUILD_NUMBER": "42", "X_Y": "x.y",
               "DOCKER_CONFIG": str(self.home / ".docker"), "LC_ALL": "C.UTF-8"}
        env.update(extra)
        return env

    def calls(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def run_pipeline(self, jenkinsfile: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """Each sh step the way Jenkins runs it: `sh -xe script` in the workspace."""
        out, err = "", ""
        for number, script in enumerate(sh_steps(jenkinsfile)):
            path = self.root / f"step-{number}.sh"
            path.write_text(script)
            done = subprocess.run(["sh", "-xe", str(path)], cwd=self.workspace, env=dict(env),
                                  capture_output=True, text=True, timeout=300)
            out, err = out + done.stdout, err + done.stderr
            assert done.returncode == 0, (script, done.stdout, done.stderr)
        return subprocess.CompletedProcess([], 0, out, err)

    def run_shell_step(self, script: str, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
        """The freestyle step the way Jenkins runs it: a file executed through its #! line."""
        path = self.root / "freestyle.sh"
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        done = subprocess.run([str(path)], cwd=self.workspace, env=dict(env), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, (done.stdout, done.stderr)
        return done


def expected_calls(spec: PushSpec, env: Mapping[str, str] | None = None,
                   ) -> list[tuple[str, list[str]]]:
    """What docker / jr-push must receive, with ${NAME} in tags expanded from *env*."""
    env = env if env is not None else {"BUILD_NUMBER": "42"}
    tags = [re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), tag)
            for tag in dict.fromkeys(spec.tags)] or ["latest"]
    calls: list[tuple[str, list[str]]] = []
    if spec.build:
        calls.append(("docker", ["build", "-t", spec.image, "."]))
    if spec.runner == "jr":
        argv = ["--image", spec.image, "--registry", spec.registry]
        for tag in tags:
            argv += ["--tag", tag]
        if spec.username_variable != "DOCKER_LOGIN_USERNAME":
            argv += ["--username-env", spec.username_variable, "--password-env",
                     spec.password_variable]
        calls.append(("jr-push", [*argv, "--digest-file", "image.digest"]))
        return calls
    calls.append(("docker", ["login", "--username", REGISTRY_USER, "--password-stdin",
                             spec.registry]))
    for tag in tags:
        target = f"{spec.registry}/{spec.image}:{tag}"
        calls += [("docker", ["tag", spec.image, target]), ("docker", ["push", target])]
    return calls


def check_run(agent: Agent, spec: PushSpec, done: subprocess.CompletedProcess[str]) -> None:
    calls = agent.calls()
    assert [(c["tool"], c["argv"]) for c in calls] == expected_calls(spec)
    for call in calls:
        assert spec.password_variable in call["env"]  # type: ignore[operator]
        if call["argv"][:1] == ["login"]:  # type: ignore[index]
            assert call["stdin_sha256"] == hashlib.sha256(REGISTRY_PASSWORD.encode()).hexdigest()
            assert call["config_dir_exists"]
            assert str(call["docker_config"]).startswith(str(agent.tmp))
    assert REGISTRY_PASSWORD not in done.stdout + done.stderr + agent.log.read_text()
    assert list(agent.tmp.iterdir()) == []  # the per-build DOCKER_CONFIG was removed on exit
    assert not (agent.home / ".docker").exists()
    if spec.runner == "jr":
        assert (agent.workspace / "image.digest").read_text().startswith("sha256:")


def credential_env(agent: Agent, spec: PushSpec) -> dict[str, str]:
    return agent.env(**{spec.username_variable: REGISTRY_USER,
                        spec.password_variable: REGISTRY_PASSWORD})


@pytest.mark.parametrize("name", sorted(JENKINSFILE_CASES))
def test_rendered_pipeline_steps_run(name: str, tmp_path: Path) -> None:
    spec = JENKINSFILE_CASES[name]
    agent = Agent(tmp_path)
    done = agent.run_pipeline(render.render_jenkinsfile(spec, CREDENTIALS_ID),
                              credential_env(agent, spec))
    check_run(agent, spec, done)


@pytest.mark.parametrize("name", sorted(SHELL_CASES))
def test_rendered_shell_step_runs_like_the_pipeline(name: str, tmp_path: Path) -> None:
    spec = SHELL_CASES[name]
    agent = Agent(tmp_path / "freestyle")
    check_run(agent, spec, agent.run_shell_step(render.render_shell(spec), credential_env(agent, spec)))
    pipeline = Agent(tmp_path / "pipeline")
    pipeline.run_pipeline(render.render_jenkinsfile(spec, CREDENTIALS_ID),
                          credential_env(pipeline, spec))
    assert [(c["tool"], c["argv"]) for c in agent.calls()] == \
        [(c["tool"], c["argv"]) for c in pipeline.calls()]


def test_unset_tag_variable_stops_the_step(tmp_path: Path) -> None:
    """`set -u`: a tag naming a variable the build does not set fails instead of pushing ':'."""
    agent = Agent(tmp_path)
    env = credential_env(agent, push())
    del env["BUILD_NUMBER"]
    path = tmp_path / "step.sh"
    path.write_text(render.render_shell(push(runner="docker", build=False)))
    path.chmod(0o755)
    done = subprocess.run([str(path)], cwd=agent.workspace, env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "BUILD_NUMBER" in done.stderr
    assert not any(c["argv"][:1] == ["push"] and c["argv"][1].endswith(":")  # type: ignore[index]
                   for c in agent.calls())
    assert list(agent.tmp.iterdir()) == []  # the trap still removed the login


def test_aborted_build_still_removes_the_login(tmp_path: Path) -> None:
    """Jenkins aborts a build with SIGTERM to its process tree; the trap still deletes the login."""
    import signal
    import time

    agent = Agent(tmp_path)
    path = tmp_path / "step.sh"
    path.write_text(render.render_shell(push(runner="docker", build=False)))
    path.chmod(0o755)
    env = {**credential_env(agent, push()), "FAKE_HANG_ON": "push"}
    proc = subprocess.Popen([str(path)], cwd=agent.workspace, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not any(c["argv"][:1] == ["push"] for c in agent.calls()):  # type: ignore[index]
            assert time.monotonic() < deadline and proc.poll() is None, "the push never started"
            time.sleep(0.05)
        login = next(c for c in agent.calls() if c["argv"][:1] == ["login"])  # type: ignore[index]
        assert Path(str(login["docker_config"])).is_dir()  # the login is there while pushing
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert list(agent.tmp.iterdir()) == []


valid_tag = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,12}", fullmatch=True)
tag_template = st.from_regex(r"[A-Za-z0-9_.-]{0,5}\$\{(BUILD_NUMBER|HOME|X_Y)\}[A-Za-z0-9_.-]{0,5}",
                             fullmatch=True).filter(lambda t: t[0] not in ".-")
valid_registry = st.sampled_from(["127.0.0.1:5000", "registry.example.com", "[::1]:5000",
                                  "localhost", "10.211.55.6:8082"])
valid_image = st.from_regex(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+)?", fullmatch=True) \
    .filter(lambda name: len(name) <= 120  # Docker's limit is 255 for the whole name
            and ("/" not in name or "." not in name.split("/")[0]))  # else it is a registry


def run_with_stand_ins(spec: PushSpec) -> None:
    """Render *spec* as a shell step, run it with a real sh, compare what the tools received."""
    import tempfile

    script = render.render_shell(spec)
    with tempfile.TemporaryDirectory() as tmp:
        agent = Agent(Path(tmp))
        env = credential_env(agent, spec)
        done = subprocess.run(["sh", "-c", script], cwd=agent.workspace, capture_output=True,
                              env=env, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert [(c["tool"], c["argv"]) for c in agent.calls()] == expected_calls(spec, env)


@settings(PROPERTY, max_examples=40)  # each example runs sh and the stand-ins
@given(st.lists(st.one_of(valid_tag, tag_template), max_size=3), valid_registry, valid_image,
       st.sampled_from(["jr", "docker"]))
def test_valid_values_reach_the_tools_exactly(
        tags: list[str], registry: str, image: str, runner: str) -> None:
    run_with_stand_ins(push(tags=tuple(tags), registry=registry, image=image, runner=runner,
                            build=False))


@settings(PROPERTY, max_examples=80)
@given(st.lists(st.one_of(valid_tag, hostile_text), max_size=2),
       st.one_of(valid_registry, hostile_text), st.one_of(valid_image, hostile_text),
       st.sampled_from(["jr", "docker"]))
def test_hostile_push_values_are_refused_or_reach_the_tools_exactly(
        tags: list[str], registry: str, image: str, runner: str) -> None:
    spec = push(tags=tuple(tags), registry=registry, image=image, runner=runner, build=False)
    try:
        render.validate_push(spec)
    except UsageError as exc:
        assert exc.exit_code == ExitCode.USAGE
        event("refused")
        return
    event("accepted")
    run_with_stand_ins(spec)


# ---------------------------------------------------------------------------------------------
# End to end with the real docker CLI, engine and registry (the docker runner needs nothing else)


def _real_agent(tmp_path: Path) -> tuple[Agent, dict[str, str]]:
    agent = Agent(tmp_path)
    for tool in ("docker", "jr-push"):
        (agent.bin / tool).unlink()  # the real docker CLI from PATH this time
    (agent.workspace / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    (agent.workspace / "hello").write_text("hello from jr render\n")
    return agent, agent.env(DOCKER_HOST=os.environ["DOCKER_HOST"],
                            DOCKER_LOGIN_USERNAME=REGISTRY_USER,
                            DOCKER_LOGIN_PASSWORD=REGISTRY_PASSWORD)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker CLI (docker.io) is not installed")
def test_docker_runner_pushes_for_real(docker_env: str, registry: object, tmp_path: Path) -> None:
    from tests.services import Registry

    assert isinstance(registry, Registry)
    for flavour in ("freestyle", "pipeline"):
        image = f"render/{flavour}"
        spec = PushSpec(registry=registry.host, image=image, tags=("latest", "b${BUILD_NUMBER}"),
                        runner="docker")
        agent, env = _real_agent(tmp_path / flavour)
        if flavour == "freestyle":
            done = agent.run_shell_step(render.render_shell(spec), env)
        else:
            done = agent.run_pipeline(render.render_jenkinsfile(spec, CREDENTIALS_ID), env)
        assert registry.tags(image) == ["b42", "latest"]
        assert REGISTRY_PASSWORD not in done.stdout + done.stderr
        assert list(agent.tmp.iterdir()) == []  # the login config lived only for the build
        assert not (agent.home / ".docker").exists()  # ~/.docker/config.json never written
