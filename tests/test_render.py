"""Rendering: golden files for every template and flavour, the structure Jenkins relies on, the
shapes of job that are refused, and hostile values through every renderer (refused, or back
exactly). Running what was rendered, with a real sh, is in test_render_steps.py.

Regenerate the golden files after an intended template change with
    JR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_render.py -k golden
and review the diff.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from jenkins_registry import render
from jenkins_registry.errors import (
    ExitCode,
    InvalidReferenceError,
    JrError,
    TemplateError,
    UnsafeValueError,
    UsageError,
)
from jenkins_registry.job_spec import (
    MANAGED_MARKER,
    BuildOptions,
    CredentialSpec,
    JobSpec,
    JobType,
    PushSpec,
    ScmSpec,
)
from jenkins_registry.secret_types import Secret
from tests.support.services import REGISTRY_PASSWORD, REGISTRY_USER
from tests.test_escaping import PROPERTY, groovy_value, hostile_text, parse_xml

ROOT = Path(__file__).resolve().parent.parent
GOLDEN_DIR = Path(__file__).resolve().parent / "golden"

# The example values docs/render.md documents (and Jenkinsfile.example is rendered from).
REGISTRY = "10.211.55.6:8082"
IMAGE = "jenkins-test"
CREDENTIALS_ID = "docker-registry-login"
TAGS = ("latest", "${BUILD_NUMBER}")
SCM_URL = "https://git.example.com/team/jenkins-test.git"
SCM = ScmSpec(url=SCM_URL, credentials_id="git-checkout")
# Valid, but every character that matters somewhere: quotes, backslash, $-references, XML, unicode.
AWKWARD_BUILD = BuildOptions(
    dockerfile="docker/Dockerfile it's", context="src dir",
    build_args=(("VERSION", "1.${BUILD_NUMBER}"), ("NOTE", "it's \"q\" \\ ''' <&> ünï 🐳 #x ;`id`")),
    labels=(("org.example.team", "web & <ops> '${JOB_NAME}'"), ("org.example/empty", "")),
    pull=True, oci_source="ssh://git@git.example.com:2222/team/jenkins-test.git",
)


def push(**changes: object) -> PushSpec:
    fields: dict[str, object] = {"registry": REGISTRY, "image": IMAGE, "tags": TAGS}
    fields.update(changes)
    return PushSpec(**fields)  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True)
class Pipeline:
    """A `render_jenkinsfile` call."""

    push: PushSpec
    agent: str | None = None
    concurrent: bool = True
    checkout: ScmSpec | None = None

    def render(self) -> str:
        return render.render_jenkinsfile(self.push, CREDENTIALS_ID, agent=self.agent,
                                         concurrent=self.concurrent, checkout=self.checkout)


@dataclass(frozen=True, kw_only=True)
class Step:
    """A `render_shell` call."""

    push: PushSpec
    scm: ScmSpec | None = None

    def render(self) -> str:
        return render.render_shell(self.push, scm=self.scm)


JENKINSFILE_CASES: dict[str, Pipeline] = {
    "jenkinsfile-jr-build.groovy": Pipeline(push=push()),
    "jenkinsfile-jr-nobuild.groovy": Pipeline(push=push(build=False)),
    "jenkinsfile-docker-build.groovy": Pipeline(push=push(runner="docker")),
    "jenkinsfile-docker-nobuild.groovy": Pipeline(push=push(runner="docker", build=False)),
    "jenkinsfile-jr-variables.groovy": Pipeline(push=push(tags=(), username_variable="REG_USER",
                                                          password_variable="REG_PASS")),
    "jenkinsfile-build-options.groovy": Pipeline(push=push(build_options=AWKWARD_BUILD),
                                                 agent="linux && 'docker'", concurrent=False),
    "jenkinsfile-checkout.groovy": Pipeline(push=push(runner="docker"), checkout=SCM),
    # --tag-from git and no --tag: jr-push derives every tag; no default `latest`.
    "jenkinsfile-jr-tag-from-git.groovy": Pipeline(push=push(tags=(), tag_from="git")),
    # --repository team/jenkins-test --image jenkins-test: the build tags the local name.
    "jenkinsfile-jr-local-image.groovy": Pipeline(push=push(image="team/jenkins-test",
                                                           local_image="jenkins-test")),
}
SHELL_CASES: dict[str, Step] = {
    "shell-jr-build.sh": Step(push=push()),
    "shell-jr-nobuild.sh": Step(push=push(build=False)),
    "shell-docker-build.sh": Step(push=push(runner="docker")),
    "shell-docker-nobuild.sh": Step(push=push(runner="docker", build=False)),
    "shell-build-options.sh": Step(push=push(runner="docker", build_options=AWKWARD_BUILD), scm=SCM),
    "shell-jr-tag-from-git.sh": Step(push=push(tags=("latest",), tag_from="git")),
    # --no-build --image jenkins-test:1.0 --repository team/jenkins-test
    "shell-docker-local-image.sh": Step(push=push(runner="docker", build=False, image="team/jenkins-test",
                                                  local_image="jenkins-test:1.0")),
    "shell-jr-local-image.sh": Step(push=push(build=False, image="team/jenkins-test",
                                              local_image="jenkins-test:1.0")),
}
JOB_CASES: dict[str, JobSpec] = {
    "job-pipeline-inline.xml": JobSpec(
        job_type="pipeline", push=push(runner="docker"), credentials_id=CREDENTIALS_ID,
        description="Build jenkins-test & push it <nightly>.",
        scm=ScmSpec(url=SCM_URL, branch="*/release")),
    "job-pipeline-nobuild.xml": JobSpec(job_type="pipeline", push=push(build=False),
                                        credentials_id=CREDENTIALS_ID, agent="docker",
                                        concurrent=False),
    "job-pipeline-scm.xml": JobSpec(
        job_type="pipeline", script_path="ci/Jenkinsfile",
        scm=ScmSpec(url=SCM_URL, branch="*/release", credentials_id="git-checkout")),
    "job-freestyle-jr.xml": JobSpec(job_type="freestyle", push=push(), credentials_id=CREDENTIALS_ID,
                                    scm=SCM, agent="linux && docker", concurrent=False),
    "job-freestyle-docker.xml": JobSpec(job_type="freestyle", push=push(runner="docker", build=False),
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
    for name, case in {**JENKINSFILE_CASES, **SHELL_CASES}.items():
        cases[name] = case.render
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
    assert shipped == ["Jenkinsfile.j2", "_push.sh.j2", "_scm.xml.j2", "casc.yaml.j2", "credential.xml.j2",
                       "job-freestyle.xml.j2", "job-pipeline.xml.j2", "shell.sh.j2"]
    # casc*.yaml are test_render_casc.py's golden files
    golden = {p.name for p in GOLDEN_DIR.iterdir() if p.is_file() and not p.name.startswith("casc")}
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


def stages(jenkinsfile: str) -> list[str]:
    return [groovy_value(m.group(1)) for m in re.finditer(rf"\bstage\(({_LITERAL})\)", jenkinsfile)]


def build_argv(script: str, env: dict[str, str]) -> list[str]:
    """The arguments of the `docker build` line of *script*, as a real sh expands them (set -u)."""
    import subprocess

    line = next(line for line in script.splitlines() if line.lstrip().startswith("docker build "))
    probe = f"set -u\njr_image=LOCAL\nset -- {line}\nshift 2\nprintf '%s\\0' \"$@\""
    done = subprocess.run(["sh", "-c", probe], capture_output=True, env=env, timeout=30, check=True)
    return [part.decode("utf-8") for part in done.stdout.split(b"\0")[:-1]]


@pytest.mark.parametrize("name", sorted(JENKINSFILE_CASES))
def test_jenkinsfile_structure(name: str) -> None:
    case = JENKINSFILE_CASES[name]
    spec = case.push
    text = case.render()
    code = without_literals_and_comments(text)
    # No double-quoted (interpolating) Groovy string anywhere, so no secret can be interpolated.
    assert '"' not in code and "$" not in code
    assert code.count("{") == code.count("}") and code.count("(") == code.count(")")
    binding = text.split("withCredentials(", 1)[1]
    assert named_argument(binding, "credentialsId") == CREDENTIALS_ID
    assert named_argument(text, "usernameVariable") == spec.username_variable
    assert named_argument(text, "passwordVariable") == spec.password_variable
    assert "withCredentials([usernamePassword(" in code
    assert stages(text) == ["Checkout"] * (case.checkout is not None) + ["Build"] * spec.build + ["Push"]
    if case.agent is None:
        assert "\n    agent any\n" in text
    else:
        assert named_argument(text.replace("label '", "label: '"), "label") == case.agent
    assert ("disableConcurrentBuilds()" in code) == (not case.concurrent)
    steps = sh_steps(text)
    cleans = spec.build or spec.runner == "docker"
    assert len(steps) == spec.build + 1 + cleans
    assert ("post {\n        always {" in text) == cleans
    if spec.build:
        env = {"BUILD_NUMBER": "42", "JOB_NAME": "app"}
        assert build_argv(steps[0], env)[-3:] == ["--tag", "LOCAL", spec.build_options.context]
    if spec.runner == "jr":
        assert named_argument(text, "artifacts") == render.DIGEST_FILE
    else:
        assert "-p " not in steps[spec.build] and "--password " not in steps[spec.build]
        assert "--password-stdin" in steps[spec.build]
    if cleans:
        last = [line for line in steps[-1].splitlines() if line.strip()][-1].split()
        assert last[:4] == ["docker", "image", "rm", "--no-prune"]
        assert last[-3:] == ["2>/dev/null", "||", "true"]


def test_checkout_stage_reads_back() -> None:
    """The inline checkout: scmGit with the branch spec, URL and credential as given."""
    scm = ScmSpec(url="https://git.example.com/a'b.git", branch="*/rel'ease", credentials_id="git-x")
    text = render.render_jenkinsfile(push(), CREDENTIALS_ID, checkout=scm)
    assert named_argument(text, "name") == scm.branch
    assert named_argument(text, "url") == scm.url
    assert re.search(r"credentialsId: ('git-x')\]\]\)\)\n", text)
    assert "Map scmVars = checkout(scmGit(" in text
    assert "env.GIT_COMMIT = scmVars.GIT_COMMIT" in text and "env.GIT_BRANCH = scmVars.GIT_BRANCH" in text
    no_credential = render.render_jenkinsfile(push(), CREDENTIALS_ID, checkout=ScmSpec(url=SCM_URL))
    assert no_credential.count("credentialsId") == 1  # only the registry login's


def test_jenkinsfile_values_are_escaped_as_groovy_then_shell() -> None:
    """A tag template keeps `${NAME}` away from Groovy (single quotes) and hands it to the shell."""
    text = render.render_jenkinsfile(push(tags=("v${BUILD_NUMBER}",)), CREDENTIALS_ID)
    assert "--tag v\"${BUILD_NUMBER}\"" in sh_steps(text)[1]


@pytest.mark.parametrize(("build", "source", "expected"), [
    (BuildOptions(), None, []),
    (BuildOptions(), SCM_URL,
     ["org.opencontainers.image.revision=abc", f"org.opencontainers.image.source={SCM_URL}"]),
    (BuildOptions(oci_labels=False), SCM_URL, []),
    (BuildOptions(oci_source="https://u@h/x.git"), None,
     ["org.opencontainers.image.revision=abc", "org.opencontainers.image.source=https://h/x.git"]),
    (BuildOptions(oci_source="https://h/y"), SCM_URL,
     ["org.opencontainers.image.revision=abc", "org.opencontainers.image.source=https://h/y"]),
    (BuildOptions(labels=(("org.opencontainers.image.source", "mine"),)), "git@h:t/x.git",
     ["org.opencontainers.image.revision=abc", "org.opencontainers.image.source=mine"]),
])
def test_oci_labels(build: BuildOptions, source: str | None, expected: list[str]) -> None:
    """Revision and source when the build has a source; the user's own label of a key wins."""
    scm = None if source is None else ScmSpec(url=source)
    script = render.render_shell(push(build_options=build), scm=scm)
    argv = build_argv(script, {"GIT_COMMIT": "abc"})
    labels = [argv[i + 1] for i, word in enumerate(argv) if word == "--label"]
    assert labels == expected
    if expected:  # GIT_COMMIT unset (set -u): an empty revision, not a failed step
        assert build_argv(script, {})[argv.index("--label") + 1] == "org.opencontainers.image.revision="


@pytest.mark.parametrize(("url", "public"), [
    ("https://git.example.com/x.git", "https://git.example.com/x.git"),
    ("https://token@git.example.com/x.git", "https://git.example.com/x.git"),
    ("ssh://git@git.example.com:2222/x.git", "ssh://git.example.com:2222/x.git"),
    ("git@git.example.com:team/x.git", "git.example.com:team/x.git"),
    ("/srv/git/x.git", "/srv/git/x.git"),
    ("file:///srv/git/x.git", "file:///srv/git/x.git"),
])
def test_public_url_drops_the_user(url: str, public: str) -> None:
    assert render.public_url(url) == public


# ---------------------------------------------------------------------------------------------
# Job and credential XML


def git_scm(element: object) -> dict[str, str | None]:
    import xml.etree.ElementTree as ET

    assert isinstance(element, ET.Element) and element.get("class") == "hudson.plugins.git.GitSCM"
    assert element.findtext("configVersion") == "2"
    remotes = element.findall("userRemoteConfigs/hudson.plugins.git.UserRemoteConfig")
    branches = element.findall("branches/hudson.plugins.git.BranchSpec")
    assert len(remotes) == 1 and len(branches) == 1
    return {"url": remotes[0].findtext("url"), "credentials_id": remotes[0].findtext("credentialsId"),
            "branch": branches[0].findtext("name")}


def scm_fields(scm: ScmSpec) -> dict[str, str | None]:
    return {"url": scm.url, "credentials_id": scm.credentials_id, "branch": scm.branch}


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
        assert spec.push is not None
        assert root.tag == "project"
        scm = root.find("scm")
        assert scm is not None
        if spec.scm is None:
            assert scm.get("class") == "hudson.scm.NullSCM"
        else:
            assert git_scm(scm) == scm_fields(spec.scm)
        assert root.findtext("assignedNode") == spec.agent
        assert root.findtext("canRoam") == ("true" if spec.agent is None else "false")
        assert root.findtext("concurrentBuild") == ("true" if spec.concurrent else "false")
        assert root.findtext("builders/hudson.tasks.Shell/command") == \
            render.render_shell(spec.push, scm=spec.scm)
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
    if spec.script_path is None:
        assert spec.push is not None and spec.credentials_id is not None
        assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"
        assert definition.findtext("sandbox") == "true"
        assert definition.findtext("script") == render.render_jenkinsfile(
            spec.push, spec.credentials_id, agent=spec.agent, concurrent=spec.concurrent,
            checkout=spec.scm)
    else:
        assert spec.scm is not None
        assert definition.get("class") == "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
        assert git_scm(definition.find("scm")) == scm_fields(spec.scm)
        assert definition.findtext("scriptPath") == spec.script_path


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
# Shapes of job that are refused: nothing silently ignored, nothing that cannot build


@pytest.mark.parametrize(("spec", "fragment"), [
    (JobSpec(job_type="pipeline", push=push(), credentials_id="c"), "needs a source"),
    (JobSpec(job_type="pipeline", push=push(runner="docker"), credentials_id="c", agent="a"),
     "needs a source"),
    (JobSpec(job_type="freestyle", push=push(), credentials_id="c"), "needs a source"),
    (JobSpec(job_type="pipeline", push=push(), credentials_id="c", scm=SCM, script_path="J"),
     "the push settings"),
    (JobSpec(job_type="pipeline", credentials_id="c", scm=SCM, script_path="J"), "credentials id"),
    (JobSpec(job_type="pipeline", scm=SCM, script_path="J", agent="x"), "the agent"),
    (JobSpec(job_type="pipeline", scm=SCM, script_path="J", concurrent=False), "--no-concurrent"),
    (JobSpec(job_type="pipeline", script_path="J"), "needs --scm-url"),
    (JobSpec(job_type="freestyle", push=push(), credentials_id="c", scm=SCM, script_path="J"),
     "only applies to --type pipeline"),
    (JobSpec(job_type="pipeline", scm=SCM), "needs the push settings"),
    (JobSpec(job_type="pipeline", push=push(build=False)), "needs the push settings"),
    (JobSpec(job_type="matrix", push=push(build=False), credentials_id="c"),  # type: ignore[arg-type]
     "Unknown job type"),
])
def test_job_shapes_that_are_refused(spec: JobSpec, fragment: str) -> None:
    with pytest.raises(UsageError) as info:
        render.render_job_xml(spec)
    assert fragment in info.value.message
    assert info.value.exit_code == ExitCode.USAGE
    if "needs a source" in fragment:
        assert "--scm-url" in info.value.hint and "--no-build" in info.value.hint
    if "would be ignored" in info.value.message:
        assert "jr render jenkinsfile" in info.value.hint


def test_a_job_without_a_source_may_push_what_is_on_the_agent() -> None:
    job_types: tuple[JobType, ...] = ("pipeline", "freestyle")
    for job_type in job_types:
        text = render.render_job_xml(JobSpec(job_type=job_type, push=push(build=False),
                                             credentials_id="c"))
        assert "GitSCM" not in text and "docker build" not in text


# ---------------------------------------------------------------------------------------------
# Values that are refused


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
    ({"build_options": BuildOptions(build_args=(("A", "${DOCKER_LOGIN_PASSWORD}"),))},
     UnsafeValueError, "credential variable"),
    ({"password_variable": "P", "build_options": BuildOptions(labels=(("k", "x${P}"),))},
     UnsafeValueError, "credential variable"),
    ({"build_options": BuildOptions(build_args=(("A", "$HOME"),))}, UsageError, "not a ${NAME}"),
    ({"build_options": BuildOptions(labels=(("k", "a\nb"),))}, UnsafeValueError, "control character"),
    ({"build_options": BuildOptions(build_args=(("A-B", "x"),))}, UnsafeValueError, "variable name"),
    ({"build_options": BuildOptions(build_args=(("", "x"),))}, UnsafeValueError, "variable name"),
    ({"build_options": BuildOptions(labels=(("a b", "x"),))}, UsageError, "label key"),
    ({"build_options": BuildOptions(labels=(("", "x"),))}, UsageError, "label key"),
    ({"build_options": BuildOptions(labels=(("-a", "x"),))}, UsageError, "label key"),
    ({"build_options": BuildOptions(dockerfile="")}, UsageError, "--dockerfile is empty"),
    ({"build_options": BuildOptions(dockerfile="-f")}, UsageError, "starts with '-'"),
    ({"build_options": BuildOptions(context="a\tb")}, UnsafeValueError, "control character"),
    ({"build_options": BuildOptions(context="")}, UsageError, "--context is empty"),
    ({"build_options": BuildOptions(oci_source="https://h/x", oci_labels=False)}, UsageError,
     "contradict"),
    ({"build_options": BuildOptions(oci_source="")}, UsageError, "empty"),
    ({"build_options": BuildOptions(oci_source="https://h/\x00")}, UnsafeValueError,
     "control character"),
])
def test_push_values_that_are_refused(changes: dict[str, object], error: type[JrError],
                                      fragment: str) -> None:
    spec = push(**changes)
    renderers: list[Callable[[], str]] = [
        lambda: render.render_jenkinsfile(spec, CREDENTIALS_ID),
        lambda: render.render_shell(spec),
        lambda: render.render_job_xml(JobSpec(job_type="freestyle", push=spec,
                                              credentials_id=CREDENTIALS_ID, scm=SCM)),
        lambda: render.render_job_xml(JobSpec(job_type="pipeline", push=spec,
                                              credentials_id=CREDENTIALS_ID, scm=SCM)),
    ]
    for renderer in renderers:
        with pytest.raises(error) as info:
            renderer()
        assert fragment in info.value.message
        assert info.value.exit_code == ExitCode.USAGE
        assert "--name" not in info.value.hint  # hints speak of this command's options


@pytest.mark.parametrize(("options", "named"), [
    (BuildOptions(context=""), "--context"),
    (BuildOptions(dockerfile="D", pull=True), "--dockerfile, --pull"),
    (BuildOptions(build_args=(("A", "b"),), labels=(("k", "v"),)), "--build-arg, --label"),
    (BuildOptions(oci_labels=False), "--no-oci-labels"),
    (BuildOptions(oci_source="https://h/x"), "--oci-source"),
])
def test_build_options_without_a_build_are_refused(options: BuildOptions, named: str) -> None:
    """--no-build drops the build step; its options would be silently ignored, so they are refused."""
    with pytest.raises(UsageError) as info:
        render.render_shell(push(build=False, build_options=options))
    assert info.value.message.startswith(f"{named} only apply") and "--no-build" in info.value.hint


@pytest.mark.parametrize("cid", ["", "a b", "a'b", "ä", "a/b"])
def test_bad_credentials_id_is_refused(cid: str) -> None:
    with pytest.raises(UnsafeValueError):
        render.render_jenkinsfile(push(), cid)
    with pytest.raises(UnsafeValueError):
        render.render_job_xml(JobSpec(job_type="pipeline", push=push(), credentials_id=cid, scm=SCM))
    with pytest.raises(UnsafeValueError):
        render.render_job_xml(JobSpec(job_type="pipeline", push=push(), credentials_id="c",
                                      scm=ScmSpec(url=SCM_URL, credentials_id=cid or " ")))
    with pytest.raises(UnsafeValueError):
        render.render_credential_xml(CredentialSpec(credential_id=cid, username="u",
                                                    password=Secret(REGISTRY_PASSWORD)))


@pytest.mark.parametrize(("spec", "fragment"), [
    (JobSpec(job_type="pipeline", scm=ScmSpec(url=""), script_path="J"), "empty"),
    (JobSpec(job_type="freestyle", push=push(), credentials_id="c", scm=ScmSpec(url="")), "empty"),
    (JobSpec(job_type="pipeline", scm=ScmSpec(url="https://x/y.git\n"), script_path="J"),
     "control character"),
    (JobSpec(job_type="pipeline", push=push(), credentials_id="c",
             scm=ScmSpec(url="https://x/y.git", branch="main\n")), "control character"),
    (JobSpec(job_type="pipeline", scm=ScmSpec(url="https://x/y.git"), script_path=""), "empty"),
    (JobSpec(job_type="pipeline", scm=ScmSpec(url="https://x/y.git", credentials_id="a b"),
             script_path="J"), "Jenkins does not accept"),
    (JobSpec(job_type="freestyle", push=push(), credentials_id="c", scm=SCM, agent=""), "empty"),
    (JobSpec(job_type="pipeline", push=push(), credentials_id="c", scm=SCM, agent="a\nb"),
     "control character"),
])
def test_bad_scm_and_agent_values_are_refused(spec: JobSpec, fragment: str) -> None:
    with pytest.raises(UsageError, match=fragment):
        render.render_job_xml(spec)


def test_scm_url_with_a_password_is_refused_without_echoing_it() -> None:
    url = f"https://ci:{REGISTRY_PASSWORD}@git.example.com/x.git"
    attempts: list[Callable[[], str]] = []
    for bad in (url, url + "\n"):
        attempts += [
            lambda bad=bad: render.render_job_xml(JobSpec(  # type: ignore[misc]
                job_type="pipeline", scm=ScmSpec(url=bad), script_path="J")),
            lambda bad=bad: render.render_job_xml(JobSpec(  # type: ignore[misc]
                job_type="freestyle", push=push(), credentials_id="c", scm=ScmSpec(url=bad))),
            lambda bad=bad: render.render_shell(  # type: ignore[misc]
                push(build_options=BuildOptions(oci_source=bad))),
        ]
    for attempt in attempts:
        with pytest.raises(UnsafeValueError) as info:
            attempt()
        assert REGISTRY_PASSWORD not in f"{info.value} {info.value.hint} {info.value!r}"


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
    job_types: tuple[JobType, ...] = ("pipeline", "freestyle")
    for job_type in job_types:
        spec = JobSpec(job_type=job_type, push=push(), credentials_id="c", description=text, scm=SCM)
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
@given(hostile_text, hostile_text, hostile_text, hostile_text)
def test_hostile_scm_values_round_trip(url: str, branch: str, script_path: str, agent: str) -> None:
    """Into the XML of every job shape, and into the Groovy of the inline checkout stage."""
    assume(url and "://" not in url)
    scm = ScmSpec(url=url, branch=branch)
    specs = [
        JobSpec(job_type="pipeline", scm=scm, script_path=script_path),
        JobSpec(job_type="freestyle", push=push(), credentials_id="c", scm=scm, agent=agent),
        JobSpec(job_type="pipeline", push=push(), credentials_id="c", scm=scm, agent=agent),
    ]
    for spec in specs:
        try:
            rendered = render.render_job_xml(spec)
        except UsageError:
            continue
        root = parse_xml(rendered)
        if spec.job_type == "freestyle":
            assert git_scm(root.find("scm")) == scm_fields(scm)
            assert root.findtext("assignedNode") == agent
            continue
        definition = root.find("definition")
        assert definition is not None
        if spec.script_path is not None:
            assert git_scm(definition.find("scm")) == scm_fields(scm)
            assert definition.findtext("scriptPath") == script_path
            continue
        script = definition.findtext("script") or ""
        assert named_argument(script, "url") == url and named_argument(script, "name") == branch
        assert named_argument(script.replace("label '", "label: '"), "label") == agent
        assert without_literals_and_comments(script).count("{") == \
            without_literals_and_comments(script).count("}")


_expandable = st.one_of(
    hostile_text,
    st.lists(st.one_of(hostile_text.filter(lambda v: "$" not in v),
                       st.sampled_from(["${BUILD_NUMBER}", "${X_Y}"])), max_size=4).map("".join),
)


@PROPERTY
@given(st.lists(st.tuples(st.sampled_from(["A", "VERSION", "_x"]), _expandable), max_size=2),
       st.lists(st.tuples(st.sampled_from(["org.example.k", "k", "a/b"]), _expandable), max_size=2),
       st.one_of(st.just("Dockerfile"), hostile_text), st.one_of(st.just("."), hostile_text),
       st.one_of(st.none(), hostile_text))
def test_hostile_build_options_are_refused_or_reach_docker_build_exactly(
        build_args: list[tuple[str, str]], labels: list[tuple[str, str]], dockerfile: str,
        context: str, oci_source: str | None) -> None:
    """The build line parsed back by a real sh (from the shell step, the Groovy literal and the
    freestyle job's XML alike) gives exactly the values, with ${NAME} expanded."""
    options = BuildOptions(build_args=tuple(build_args), labels=tuple(labels), dockerfile=dockerfile,
                           context=context, oci_source=oci_source)
    spec = push(build_options=options)
    try:
        shell = render.render_shell(spec)
    except UsageError as exc:
        assert exc.exit_code == ExitCode.USAGE
        return
    env = {"BUILD_NUMBER": "42", "X_Y": "x y $(id)", "GIT_COMMIT": "c0ffee"}
    for _, value in build_args + labels:  # anything else referenced is set too (set -u)
        for name in re.findall(r"\$\{(\w+)\}", value):
            env.setdefault(name, f"<{name} 'set'>")

    def expand(value: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: env[m.group(1)], value)

    expected = ["--file", dockerfile]
    for name, value in build_args:
        expected += ["--build-arg", f"{name}={expand(value)}"]
    if oci_source is not None:
        expected += ["--label", "org.opencontainers.image.revision=c0ffee",
                     "--label", f"org.opencontainers.image.source={render.public_url(oci_source)}"]
    for key, value in labels:
        expected += ["--label", f"{key}={expand(value)}"]
    expected += ["--tag", "LOCAL", context]
    assert build_argv(shell, env) == expected
    pipeline = render.render_jenkinsfile(spec, CREDENTIALS_ID)
    assert build_argv(sh_steps(pipeline)[0], env) == expected
    job = render.render_job_xml(JobSpec(job_type="freestyle", push=spec, credentials_id="c", scm=SCM))
    assert parse_xml(job).findtext("builders/hudson.tasks.Shell/command") == \
        render.render_shell(spec, scm=SCM)
