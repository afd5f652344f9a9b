"""Running what was rendered: the freestyle step and each pipeline sh step (stages, then post) under
a real `sh`, with recording stand-ins for docker and jr-push, and end to end with the real docker
CLI, engine, registry and jr-push: each build pushes its own image, keeps its exit status, and
leaves no tag behind, also when it fails or is aborted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from jenkins_registry import render
from jenkins_registry.errors import ExitCode, UsageError
from jenkins_registry.job_spec import BuildOptions, PushSpec, ScmSpec
from tests.support.services import REGISTRY_PASSWORD, REGISTRY_USER, Registry
from tests.test_escaping import PROPERTY, hostile_text
from tests.test_render import (
    CREDENTIALS_ID,
    IMAGE,
    JENKINSFILE_CASES,
    REGISTRY,
    SHELL_CASES,
    Pipeline,
    push,
    sh_steps,
)

BUILD_TAG = "jenkins-team-my job ü-42"  # Jenkins' BUILD_TAG: folders joined by '-', any name
GIT_COMMIT = "3f786850e387550fdab836ed7e6dc881de23001b"
TAG_GRAMMAR = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

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
if os.environ.get("FAKE_FAIL_ON") in (tool, (sys.argv[1:2] or [""])[0]):
    sys.exit(3)
if sys.argv[1:2] == [os.environ.get("FAKE_HANG_ON")]:
    import time
    time.sleep(60)
"""


def local_tag(build_tag: str | None) -> str:
    """The model of the rendered shell: BUILD_TAG's bytes outside [A-Za-z0-9_.-] become '_', and
    the last 119 are kept (the build number is at the end), after `jr-build-`."""
    raw = (build_tag or "local").encode("utf-8")
    safe = bytes(b if chr(b) in "-._" or (chr(b).isalnum() and b < 128) else ord("_") for b in raw)
    return "jr-build-" + safe[-119:].decode("ascii")


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
               "BUILD_TAG": BUILD_TAG, "GIT_COMMIT": GIT_COMMIT,
               "DOCKER_CONFIG": str(self.home / ".docker"), "LC_ALL": "C.UTF-8"}
        env.update(extra)
        return env

    def calls(self) -> list[dict[str, object]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def argvs(self) -> list[tuple[str, list[str]]]:
        return [(str(c["tool"]), list(c["argv"])) for c in self.calls()]  # type: ignore[call-overload]

    def run_pipeline(self, jenkinsfile: str, env: Mapping[str, str],
                     check: bool = True) -> subprocess.CompletedProcess[str]:
        """The sh steps the way Jenkins runs them (`sh -xe script` in the workspace): the stages
        until one fails, then the `post { always }` steps whatever happened."""
        stages, _, post = jenkinsfile.partition("\n    post {\n")
        code, out, err = 0, "", ""
        scripts = [(s, False) for s in sh_steps(stages)] + [(s, True) for s in sh_steps(post)]
        for number, (script, always) in enumerate(scripts):
            if code and not always:
                continue
            path = self.root / f"step-{number}.sh"
            path.write_text(script)
            done = subprocess.run(["sh", "-xe", str(path)], cwd=self.workspace, env=dict(env),
                                  capture_output=True, text=True, timeout=300)
            out, err = out + done.stdout, err + done.stderr
            code = code or done.returncode
        if check:
            assert code == 0, (out, err)
        return subprocess.CompletedProcess([], code, out, err)

    def run_shell_step(self, script: str, env: Mapping[str, str],
                       check: bool = True) -> subprocess.CompletedProcess[str]:
        """The freestyle step the way Jenkins runs it: a file executed through its #! line."""
        path = self.root / "freestyle.sh"
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        done = subprocess.run([str(path)], cwd=self.workspace, env=dict(env), capture_output=True,
                              text=True, timeout=300)
        if check:
            assert done.returncode == 0, (done.stdout, done.stderr)
        return done


def expected_calls(spec: PushSpec, env: Mapping[str, str], source_url: str | None = None,
                   ) -> list[tuple[str, list[str]]]:
    """What docker / jr-push must receive, with ${NAME} expanded from *env*, cleanup included."""
    def expand(value: str) -> str:
        return re.sub(r"\$\{(\w+)\}", lambda m: env.get(m.group(1), ""), value)

    tags = [expand(tag) for tag in dict.fromkeys(spec.tags)] or ["latest"] * (spec.tag_from is None)
    named = spec.local_image or spec.image
    local = f"{named}:{local_tag(env.get('BUILD_TAG'))}" if spec.build else named
    targets = [f"{spec.registry}/{spec.image}:{tag}" for tag in tags]
    calls: list[tuple[str, list[str]]] = []
    if spec.build:
        options = spec.build_options
        argv = ["build"] + ["--pull"] * options.pull
        if options.dockerfile is not None:
            argv += ["--file", options.dockerfile]
        for name, value in options.build_args:
            argv += ["--build-arg", f"{name}={expand(value)}"]
        source = options.oci_source if options.oci_source is not None else source_url
        if options.oci_labels and source is not None:
            argv += ["--label", f"org.opencontainers.image.revision={env.get('GIT_COMMIT', '')}",
                     "--label", f"org.opencontainers.image.source={render.public_url(source)}"]
        for key, value in options.labels:
            argv += ["--label", f"{key}={expand(value)}"]
        calls.append(("docker", [*argv, "--tag", local, options.context]))
    if spec.runner == "jr":
        named_otherwise = spec.build or named != spec.image
        argv = ["--image", local] + ["--name", spec.image] * named_otherwise + ["--registry", spec.registry]
        for tag in tags:
            argv += ["--tag", tag]
        if spec.tag_from is not None:
            argv += ["--tag-from", spec.tag_from]
        if spec.username_variable != "DOCKER_LOGIN_USERNAME":
            argv += ["--username-env", spec.username_variable, "--password-env",
                     spec.password_variable]
        calls.append(("jr-push", [*argv, "--digest-file", "image.digest"]))
    else:
        calls.append(("docker", ["login", "--username", REGISTRY_USER, "--password-stdin",
                                 spec.registry]))
        for target in targets:
            calls += [("docker", ["tag", local, target]), ("docker", ["push", target])]
    removed = [local] * spec.build + targets * (spec.runner == "docker")
    if removed:
        calls.append(("docker", ["image", "rm", "--no-prune", *removed]))
    return calls


def credential_env(agent: Agent, spec: PushSpec, **extra: str) -> dict[str, str]:
    return agent.env(**{spec.username_variable: REGISTRY_USER,
                        spec.password_variable: REGISTRY_PASSWORD, **extra})


def check_run(agent: Agent, spec: PushSpec, done: subprocess.CompletedProcess[str],
              env: Mapping[str, str], source_url: str | None = None) -> None:
    assert agent.argvs() == expected_calls(spec, env, source_url)
    for call in agent.calls():
        if call["argv"][:1] == ["login"]:  # type: ignore[index]
            assert call["stdin_sha256"] == hashlib.sha256(REGISTRY_PASSWORD.encode()).hexdigest()
            assert call["config_dir_exists"]
            assert str(call["docker_config"]).startswith(str(agent.tmp))
    assert REGISTRY_PASSWORD not in done.stdout + done.stderr + agent.log.read_text()
    assert list(agent.tmp.iterdir()) == []  # the per-build DOCKER_CONFIG was removed on exit
    assert not (agent.home / ".docker").exists()
    if spec.runner == "jr":
        assert (agent.workspace / "image.digest").read_text().startswith("sha256:")


# ---------------------------------------------------------------------------------------------
# With stand-ins


@pytest.mark.parametrize("name", sorted(JENKINSFILE_CASES))
def test_rendered_pipeline_steps_run(name: str, tmp_path: Path) -> None:
    case = JENKINSFILE_CASES[name]
    agent = Agent(tmp_path)
    env = credential_env(agent, case.push, JOB_NAME="team/app")
    done = agent.run_pipeline(case.render(), env)
    check_run(agent, case.push, done, env, None if case.checkout is None else case.checkout.url)


@pytest.mark.parametrize("name", sorted(SHELL_CASES))
def test_rendered_shell_step_runs_like_the_pipeline(name: str, tmp_path: Path) -> None:
    case = SHELL_CASES[name]
    agent = Agent(tmp_path / "freestyle")
    env = credential_env(agent, case.push, JOB_NAME="team/app")
    check_run(agent, case.push, agent.run_shell_step(case.render(), env), env,
              None if case.scm is None else case.scm.url)
    pipeline = Agent(tmp_path / "pipeline")
    pipeline.run_pipeline(Pipeline(push=case.push, checkout=case.scm).render(),
                          credential_env(pipeline, case.push, JOB_NAME="team/app"))
    assert agent.argvs() == pipeline.argvs()


def test_outside_jenkins_the_local_tag_is_local(tmp_path: Path) -> None:
    agent = Agent(tmp_path)
    env = credential_env(agent, push())
    del env["BUILD_TAG"], env["GIT_COMMIT"]
    agent.run_shell_step(render.render_shell(push(), scm=ScmSpec(url="https://h/x.git")), env)
    build = agent.argvs()[0][1]
    assert build[-3:] == ["--tag", "jenkins-test:jr-build-local", "."]
    assert "org.opencontainers.image.revision=" in build  # empty, not a failed step (set -u)


@pytest.mark.parametrize(("runner", "fail_on"), [
    ("jr", "build"), ("jr", "jr-push"), ("docker", "build"), ("docker", "login"), ("docker", "push")])
@pytest.mark.parametrize("flavour", ["freestyle", "pipeline"])
def test_a_failing_step_keeps_its_status_and_still_removes_its_tags(
        tmp_path: Path, runner: str, fail_on: str, flavour: str) -> None:
    spec = push(runner=runner)
    agent = Agent(tmp_path)
    env = credential_env(agent, spec, FAKE_FAIL_ON=fail_on)
    if flavour == "freestyle":
        done = agent.run_shell_step(render.render_shell(spec), env, check=False)
    else:
        done = agent.run_pipeline(render.render_jenkinsfile(spec, CREDENTIALS_ID), env, check=False)
    assert done.returncode == 3  # the failing command's own status, not the cleanup's
    calls = agent.argvs()
    failed_at = next(i for i, (tool, argv) in enumerate(calls) if fail_on in (tool, argv[0]))
    targets = [f"{REGISTRY}/{IMAGE}:latest", f"{REGISTRY}/{IMAGE}:42"] * (runner == "docker")
    assert calls[failed_at + 1:] == [
        ("docker", ["image", "rm", "--no-prune", f"{IMAGE}:{local_tag(BUILD_TAG)}", *targets])]
    assert list(agent.tmp.iterdir()) == []


def test_unset_tag_variable_stops_the_step(tmp_path: Path) -> None:
    """`set -u`: a tag naming a variable the build does not set fails instead of pushing ':'."""
    agent = Agent(tmp_path)
    env = credential_env(agent, push())
    del env["BUILD_NUMBER"]
    done = agent.run_shell_step(render.render_shell(push(runner="docker", build=False)), env,
                                check=False)
    assert done.returncode != 0 and "BUILD_NUMBER" in done.stderr
    assert not any(argv[:1] == ["push"] and argv[1].endswith(":") for _, argv in agent.argvs())
    assert list(agent.tmp.iterdir()) == []  # the trap still removed the login


@pytest.mark.parametrize("runner", ["jr", "docker"])
def test_aborted_build_still_removes_the_login_and_its_tags(tmp_path: Path, runner: str) -> None:
    """Jenkins aborts a build with SIGTERM to its process tree; the trap still cleans up."""
    agent = Agent(tmp_path)
    path = tmp_path / "step.sh"
    path.write_text(render.render_shell(push(runner=runner)))
    path.chmod(0o755)
    hang_on = "push" if runner == "docker" else "build"
    env = {**credential_env(agent, push()), "FAKE_HANG_ON": hang_on}
    proc = subprocess.Popen([str(path)], cwd=agent.workspace, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not any(argv[:1] == [hang_on] for _, argv in agent.argvs()):
            assert time.monotonic() < deadline and proc.poll() is None, "the step never got there"
            time.sleep(0.05)
        if runner == "docker":
            login = next(c for c in agent.calls() if c["argv"][:1] == ["login"])  # type: ignore[index]
            assert Path(str(login["docker_config"])).is_dir()  # the login is there while pushing
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    assert list(agent.tmp.iterdir()) == []
    assert agent.argvs()[-1][1][:4] == ["image", "rm", "--no-prune", f"jenkins-test:{local_tag(BUILD_TAG)}"]


@settings(PROPERTY, max_examples=60)
@given(st.one_of(st.none(), st.just(""), hostile_text.filter(lambda t: "\0" not in t),
                 st.builds(lambda name, n: f"jenkins-{name}-{n}", hostile_text.filter(
                     lambda t: "\0" not in t).map(lambda t: t * 20), st.integers(1, 10**6))))
def test_the_local_tag_is_a_valid_tag_unique_to_the_build(build_tag: str | None) -> None:
    """Whatever BUILD_TAG holds, the rendered shell turns it into a valid tag, keeping its end."""
    script = render.render_shell(push()).split("\n")
    line = next(line for line in script if line.startswith("jr_image="))
    env = {"PATH": os.environ["PATH"]}
    if build_tag is not None:
        env["BUILD_TAG"] = build_tag
    done = subprocess.run(["sh", "-c", f"set -eu\n{line}\nprintf '%s' \"$jr_image\""], env=env,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    name, _, tag = done.stdout.decode("ascii").partition(":")
    assert name == IMAGE and TAG_GRAMMAR.fullmatch(tag)
    assert tag == local_tag(build_tag or None)
    numbered = re.fullmatch(r"jenkins-.*(-[0-9]+)", build_tag or "", re.S)
    if numbered:
        assert tag.endswith(numbered.group(1))  # the build number survives the cut
        event("cut" if len((build_tag or "").encode()) > 119 else "whole")


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
        assert agent.argvs() == expected_calls(spec, env)


@settings(PROPERTY, max_examples=40)  # each example runs sh and the stand-ins
@given(st.lists(st.one_of(valid_tag, tag_template), max_size=3), valid_registry, valid_image,
       st.sampled_from(["jr", "docker"]), st.booleans())
def test_valid_values_reach_the_tools_exactly(
        tags: list[str], registry: str, image: str, runner: str, build: bool) -> None:
    run_with_stand_ins(push(tags=tuple(tags), registry=registry, image=image, runner=runner,
                            build=build))


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
# End to end: the real docker CLI, engine, registry and jr-push


def _real_agent(root: Path, docker_host: str, content: str, *, jr_push: bool = False,
                **extra: str) -> tuple[Agent, dict[str, str]]:
    """An agent whose workspace is a git checkout with a tiny Dockerfile, using the real tools."""
    agent = Agent(root)
    for tool in ("docker", "jr-push"):
        (agent.bin / tool).unlink()
    if jr_push:  # the jr-push of this checkout's venv, where `#!/bin/sh -l` finds it (~/.profile)
        (agent.bin / "jr-push").symlink_to(Path(sys.executable).parent / "jr-push")
    (agent.workspace / "Dockerfile").write_text("FROM scratch\nCOPY hello /hello\n")
    (agent.workspace / "hello").write_text(content)
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=agent.workspace, check=True, timeout=60)
    subprocess.run([*git, "add", "."], cwd=agent.workspace, check=True, timeout=60)
    subprocess.run([*git, "commit", "-qm", content], cwd=agent.workspace, check=True, timeout=60)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=agent.workspace, check=True,
                            capture_output=True, text=True, timeout=60).stdout.strip()
    env = agent.env(**{"DOCKER_HOST": docker_host, "DOCKER_LOGIN_USERNAME": REGISTRY_USER,
                       "DOCKER_LOGIN_PASSWORD": REGISTRY_PASSWORD, "GIT_COMMIT": commit, **extra})
    del env["FAKE_LOG"]
    return agent, env


def engine_references(docker_host: str, repository: str) -> list[str]:
    """Every name:tag the engine holds for *repository*, with or without a registry prefix."""
    done = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
                          env={**os.environ, "DOCKER_HOST": docker_host}, capture_output=True,
                          text=True, timeout=60, check=True)
    return sorted(ref for ref in done.stdout.split() if ref.split(":")[-2].endswith(repository))


def image_labels(registry: Registry, name: str, tag: str) -> dict[str, str]:
    accept = "application/vnd.docker.distribution.manifest.v2+json, " \
             "application/vnd.oci.image.manifest.v1+json"
    status, _, body = registry.get(f"/v2/{name}/manifests/{tag}", {"Accept": accept})
    assert status == 200, (status, body[:200])
    digest = json.loads(body)["config"]["digest"]
    status, _, config = registry.get(f"/v2/{name}/blobs/{digest}")
    assert status == 200
    return dict(json.loads(config)["config"].get("Labels") or {})


needs_docker = pytest.mark.skipif(shutil.which("docker") is None,
                                  reason="the docker CLI (docker.io) is not installed")


@pytest.mark.slow
@needs_docker
@pytest.mark.parametrize("runner", ["docker", "jr"])
def test_concurrent_builds_each_push_their_own_image(docker_env: str, registry: Registry,
                                                     tmp_path: Path, runner: str) -> None:
    """Two builds of one job at once on one engine, one freestyle and one pipeline: each build's
    own tags hold its own image (its label says so), and nothing is left tagged on the engine.

    Only per-build tags here: two pushes of one shared tag at once race in the registry itself
    (Debian's distribution answers 500 now and then), and which build wins it is not ours to fix.
    """
    image = f"render/concurrent-{runner}"
    spec = PushSpec(registry=registry.host, image=image, tags=("b${BUILD_NUMBER}", "c${BUILD_NUMBER}"),
                    runner=runner,  # type: ignore[arg-type]
                    build_options=BuildOptions(labels=(("org.example.build", "${BUILD_NUMBER}"),)))
    scm = ScmSpec(url="https://ci@git.example.com/team/app.git")
    agents = {number: _real_agent(tmp_path / number, docker_env, f"build {number}\n", jr_push=True,
                                  BUILD_NUMBER=number, BUILD_TAG=f"jenkins-team-app-{number}")
              for number in ("1", "2")}
    freestyle_agent, freestyle_env = agents["1"]
    script = freestyle_agent.root / "freestyle.sh"
    script.write_text(render.render_shell(spec, scm=scm))
    script.chmod(0o755)
    first = subprocess.Popen([str(script)], cwd=freestyle_agent.workspace, env=freestyle_env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        pipeline_agent, pipeline_env = agents["2"]
        second = pipeline_agent.run_pipeline(
            render.render_jenkinsfile(spec, CREDENTIALS_ID, checkout=scm), pipeline_env, check=False)
        out, _ = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(timeout=30)
    server_errors = [line for line in (registry.root / "registry.log").read_text().splitlines()
                     if "level=error" in line and "blob unknown" not in line]
    assert first.returncode == 0, (out, server_errors[-3:])
    assert second.returncode == 0, (second.stdout + second.stderr, server_errors[-3:])
    assert registry.tags(image) == ["b1", "b2", "c1", "c2"]
    for number, (_, env) in agents.items():
        labels = image_labels(registry, image, f"b{number}")
        assert image_labels(registry, image, f"c{number}") == labels
        assert labels["org.example.build"] == number
        assert labels["org.opencontainers.image.revision"] == env["GIT_COMMIT"]
        assert labels["org.opencontainers.image.source"] == "https://git.example.com/team/app.git"
    assert engine_references(docker_env, image) == []
    for text in (out, second.stdout, second.stderr):
        assert REGISTRY_PASSWORD not in text
    for agent, _ in agents.values():
        assert list(agent.tmp.iterdir()) == [] and not (agent.home / ".docker").exists()


@pytest.mark.slow
@needs_docker
@pytest.mark.parametrize("runner", ["docker", "jr"])
@pytest.mark.parametrize("failure", ["build", "login"])
def test_a_failed_real_build_keeps_its_status_and_leaves_no_tag(
        docker_env: str, registry: Registry, tmp_path: Path, runner: str, failure: str) -> None:
    image = f"render/failed-{runner}-{failure}"
    spec = PushSpec(registry=registry.host, image=image, runner=runner)  # type: ignore[arg-type]
    extra = {"DOCKER_LOGIN_PASSWORD": "not-the-password"} if failure == "login" else {}
    agent, env = _real_agent(tmp_path, docker_env, "x\n", jr_push=True, **extra)
    if failure == "build":
        (agent.workspace / "Dockerfile").write_text("FROM scratch\nCOPY missing /missing\n")
    done = agent.run_shell_step(render.render_shell(spec), env, check=False)
    expected = {("build", "docker"): 1, ("build", "jr"): 1, ("login", "docker"): 1,
                ("login", "jr"): ExitCode.AUTH}[(failure, runner)]
    assert done.returncode == expected, done.stdout + done.stderr
    assert registry.tags(image) == []
    assert engine_references(docker_env, image) == []
    assert list(agent.tmp.iterdir()) == []
