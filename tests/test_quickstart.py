"""The README's quick start, run as one sequence, and then the created jobs built as an agent builds
them: from nothing to a green build and an image in the registry.

The sequence is the README's: `jr nexus setup … --user jenkins` (the Nexus emulator),
`jr jenkins check`, `jr jenkins credential`, `jr jenkins job … --scm-url …` (the Jenkins emulator),
then the build (tests/support/agent_build.py: a fresh workspace, git checkout of a local repository,
the credential bound from the emulator's store, the freestyle step under `#!/bin/sh -l` or the
pipeline on real Groovy) against the real Docker engine and the real registry. jr-push is found the
way the README's install puts it: `~/.local/bin` (where pipx installs), which Debian's `~/.profile`
adds to the login shell's PATH.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from jenkins_registry.cli.main import main as jr
from tests.support import nexus_emulator, services
from tests.support.agent_build import BuildResult, run_build
from tests.support.jenkins_emulator import JenkinsEmulator
from tests.support.nexus_emulator import NexusState
from tests.support.secret_checks import assert_absent

ADMIN, JENKINS_TOKEN = "admin", "44ee55dd66cc77bb88aa99001122334455"
NEXUS_ADMIN_PASSWORD = "Nexus-Adm1n-Qu1ck-6a0d"
PUSH_USER, PUSH_PASSWORD = services.REGISTRY_USER, services.REGISTRY_PASSWORD  # the registry's account
CREDENTIALS_ID = "docker-registry-login"
IMAGE = "jenkins-test"
SECRETS = (JENKINS_TOKEN, NEXUS_ADMIN_PASSWORD, PUSH_PASSWORD)
REVISION_LABEL = "org.opencontainers.image.revision"
# Debian's skeleton ~/.profile: a login shell (the seed's `#!/bin/sh -l`) finds ~/.local/bin through it.
DEBIAN_PROFILE = 'if [ -d "$HOME/.local/bin" ] ; then\n    PATH="$HOME/.local/bin:$PATH"\nfi\n'


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def commit(repo: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def source(tmp_path: Path) -> tuple[Path, str]:
    """The application's repository: a Dockerfile whose image holds the commit's message."""
    repo = tmp_path / "app.git"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    for key, value in (("user.name", "Quick Start"), ("user.email", "qs@example.invalid"),
                       ("commit.gpgsign", "false")):
        git(repo, "config", key, value)
    commit(repo, {"Dockerfile": "FROM scratch\nCOPY message.txt /message.txt\n",
                  "message.txt": "first\n"}, "first")
    return repo, repo.as_uri()


@pytest.fixture
def agent(tmp_path: Path, docker_env: str) -> dict[str, str]:
    """The agent's environment, with jr-push installed as the README says for a per-user install:
    `pipx install` puts it in ~/.local/bin, the agent process has that directory on its PATH (a pipeline
    `sh` step inherits it), and Debian's ~/.profile adds it again for the freestyle step's login shell,
    whose /etc/profile resets PATH. The project's virtualenv is not on the PATH."""
    home = Path(os.environ["HOME"])
    bin_dir = home / ".local" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    (bin_dir / "jr-push").symlink_to(Path(sys.executable).parent / "jr-push")
    (home / ".profile").write_text(DEBIAN_PROFILE)
    return {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin", "HOME": str(home), "LC_ALL": "C.UTF-8",
            "DOCKER_HOST": docker_env, "DOCKER_CONFIG": os.environ["DOCKER_CONFIG"],
            "TMPDIR": str(tmp_path)}


@pytest.fixture
def jenkins() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={ADMIN: ("admin-password-unused", {JENKINS_TOKEN})}) as emulator:
        yield emulator


def quick_start(capsys: pytest.CaptureFixture[str], jenkins: JenkinsEmulator, registry: services.Registry,
                job_args: list[str]) -> str:
    """The README's quick start, step by step; returns everything it printed."""
    printed = []
    state = NexusState(users={"admin": NEXUS_ADMIN_PASSWORD})
    env = {"NEXUS_PASSWORD": NEXUS_ADMIN_PASSWORD, "DOCKER_LOGIN_PASSWORD": PUSH_PASSWORD,
           "JENKINS_URL": jenkins.url, "JENKINS_USER": ADMIN, "JENKINS_API_TOKEN": JENKINS_TOKEN}
    with nexus_emulator.nexus(state) as nexus:
        steps = [
            ["nexus", "setup", "--url", nexus.url, "--repository", "docker-hosted", "--http-port", "8082",
             "--user", PUSH_USER],
            ["jenkins", "check"],
            ["jenkins", "credential", "--id", CREDENTIALS_ID, "--username", PUSH_USER],
            ["jenkins", "check", "--credentials-id", CREDENTIALS_ID],
            ["jenkins", "job", "--name", "jenkins-test", *job_args],
        ]
        for argv in steps:
            code = jr(argv, env)
            out, err = capsys.readouterr()
            printed.append(out + err)
            assert code == 0, (argv, out, err)
        record = state.record(PUSH_USER)  # the push account exists, active, with the push role
        assert record is not None and record["status"] == "active"
        assert "nx-repository-view-docker-docker-hosted-add" in state.privileges_of(PUSH_USER)
    text = "".join(printed)
    assert_absent_all(text)
    return text


def assert_absent_all(*texts: str) -> None:
    for secret in SECRETS:
        assert_absent(secret, *texts)


def revision_of(registry: services.Registry, tag: str) -> str:
    """The commit a pushed image was built from, read back from the registry (its config's label)."""
    status, _, body = registry.get(f"/v2/{IMAGE}/manifests/{tag}",
                                   {"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200, (tag, status)
    config = json.loads(body)["config"]["digest"]
    status, _, body = registry.get(f"/v2/{IMAGE}/blobs/{config}")
    assert status == 200
    return str(json.loads(body)["config"]["Labels"][REVISION_LABEL])


def registry_tags_on_engine(docker_client: object) -> list[str]:
    """Every tag the engine holds for our image, under any name (local or registry-prefixed)."""
    return sorted(tag for image in docker_client.images.list()  # type: ignore[attr-defined]
                  for tag in image.tags if IMAGE in tag)


def build(jenkins: JenkinsEmulator, job: str, workspace: Path, number: int,
          agent: dict[str, str]) -> BuildResult:
    result = run_build(jenkins, job, workspace, number=number, environ=agent)
    assert_absent_all(result.log)
    assert result.status == "SUCCESS", result.log[-4000:]
    return result


@pytest.mark.parametrize("job_type", ["freestyle", "pipeline"])
def test_quick_start_job_goes_green_and_the_image_is_in_the_registry(
        job_type: str, capsys: pytest.CaptureFixture[str], jenkins: JenkinsEmulator,
        registry: services.Registry, docker_client: object, source: tuple[Path, str],
        agent: dict[str, str], tmp_path: Path) -> None:
    repo, url = source
    quick_start(capsys, jenkins, registry, [
        "--type", job_type, "--registry", registry.host, "--repository", IMAGE, "--credentials-id",
        CREDENTIALS_ID, "--tag", "latest", "--tag", "${BUILD_NUMBER}", "--scm-url", url])
    before = registry_tags_on_engine(docker_client)

    result = build(jenkins, "jenkins-test", tmp_path / "ws", 7, agent)

    head = git(repo, "rev-parse", "HEAD")
    assert f"Checking out Revision {head}" in result.log
    assert {"latest", "7"} <= set(registry.tags(IMAGE))
    assert revision_of(registry, "7") == head
    assert registry.manifest_digest(IMAGE, "latest") == registry.manifest_digest(IMAGE, "7")
    assert registry_tags_on_engine(docker_client) == before  # nothing of the build stays on the agent


@pytest.mark.parametrize("job_type", ["freestyle", "pipeline"])
def test_tags_from_git_job_pushes_the_branch_commit_and_latest(
        job_type: str, capsys: pytest.CaptureFixture[str], jenkins: JenkinsEmulator,
        registry: services.Registry, docker_client: object, source: tuple[Path, str],
        agent: dict[str, str], tmp_path: Path) -> None:
    """`--tag-from git`: the Git plugin's GIT_BRANCH (origin/main) and GIT_COMMIT after the
    checkout give jr-push the tags main, sha-XXXXXXX and latest (main is the default branch).
    `--image` names the local image the step builds, apart from the registry path."""
    repo, url = source
    repository, local = f"{IMAGE}-git-{job_type}", f"{IMAGE}-local-{job_type}"
    quick_start(capsys, jenkins, registry, [
        "--type", job_type, "--registry", registry.host, "--repository", repository,
        "--image", local, "--credentials-id", CREDENTIALS_ID, "--tag-from", "git", "--scm-url", url])

    result = build(jenkins, "jenkins-test", tmp_path / "ws", 4, agent)

    head = git(repo, "rev-parse", "HEAD")
    assert sorted(registry.tags(repository)) == sorted(["main", f"sha-{head[:7]}", "latest"])
    assert "tags from git (GIT_BRANCH, GIT_COMMIT): main, sha-" in result.log
    assert len({registry.manifest_digest(repository, tag) for tag in registry.tags(repository)}) == 1
    assert not [tag for image in docker_client.images.list()  # type: ignore[attr-defined]
                for tag in image.tags if local in tag or repository in tag]  # nothing stays


def test_jenkinsfile_from_the_repository_goes_green(
        capsys: pytest.CaptureFixture[str], jenkins: JenkinsEmulator, registry: services.Registry,
        docker_client: object, source: tuple[Path, str], agent: dict[str, str], tmp_path: Path) -> None:
    """`jr render jenkinsfile` writes the file to commit; the job reads it with --script-path."""
    repo, url = source
    (repo / "ci").mkdir()
    code = jr(["render", "jenkinsfile", "--registry", registry.host, "--repository", IMAGE,
               "--credentials-id", CREDENTIALS_ID, "--tag", "latest", "--tag", "${BUILD_NUMBER}",
               "--oci-source", url, "--output", str(repo / "ci" / "Jenkinsfile")], {})
    assert code == 0, capsys.readouterr()
    head = commit(repo, {}, "add the Jenkinsfile")
    quick_start(capsys, jenkins, registry,
                ["--type", "pipeline", "--scm-url", url, "--script-path", "ci/Jenkinsfile"])

    build(jenkins, "jenkins-test", tmp_path / "ws", 3, agent)

    assert {"latest", "3"} <= set(registry.tags(IMAGE))
    assert revision_of(registry, "3") == head


def test_two_concurrent_builds_push_their_own_images_and_twenty_leave_nothing(
        capsys: pytest.CaptureFixture[str], jenkins: JenkinsEmulator, registry: services.Registry,
        docker_client: object, source: tuple[Path, str], agent: dict[str, str], tmp_path: Path) -> None:
    repo, url = source
    quick_start(capsys, jenkins, registry, [
        "--type", "freestyle", "--registry", registry.host, "--image", IMAGE, "--credentials-id",
        CREDENTIALS_ID, "--tag", "${BUILD_NUMBER}", "--tag", "latest", "--scm-url", url])
    before = registry_tags_on_engine(docker_client)
    first = git(repo, "rev-parse", "HEAD")

    # Build 1 checks out the first commit; a second commit lands; build 2 checks it out, while build 1
    # is still building: two builds of one job at once, in workspaces ws and ws@2, on one engine.
    results: dict[int, BuildResult] = {}

    def run(number: int, workspace: Path) -> None:
        results[number] = run_build(jenkins, "jenkins-test", workspace, number=number, environ=agent)

    one = threading.Thread(target=run, args=(1, tmp_path / "ws"))
    one.start()
    deadline = time.monotonic() + 60
    while not (tmp_path / "ws" / "message.txt").exists() and time.monotonic() < deadline and one.is_alive():
        time.sleep(0.01)
    second = commit(repo, {"message.txt": "second\n"}, "second")
    two = threading.Thread(target=run, args=(2, tmp_path / "ws@2"))
    two.start()
    one.join(300)
    two.join(300)
    for number in (1, 2):
        assert results[number].status == "SUCCESS", results[number].log[-4000:]
        assert_absent_all(results[number].log)
    assert f"Checking out Revision {first}" in results[1].log
    assert f"Checking out Revision {second}" in results[2].log
    assert (revision_of(registry, "1"), revision_of(registry, "2")) == (first, second)
    assert registry.manifest_digest(IMAGE, "1") != registry.manifest_digest(IMAGE, "2")
    assert registry_tags_on_engine(docker_client) == before

    for number in range(3, 23):  # twenty more builds on the same agent
        build(jenkins, "jenkins-test", tmp_path / "ws", number, agent)
    assert registry_tags_on_engine(docker_client) == before
    assert {str(n) for n in range(1, 23)} <= set(registry.tags(IMAGE))


def test_the_freestyle_step_needs_jr_push_on_the_login_path(
        capsys: pytest.CaptureFixture[str], jenkins: JenkinsEmulator, registry: services.Registry,
        docker_client: object, source: tuple[Path, str], agent: dict[str, str], tmp_path: Path) -> None:
    """Why the README adds ~/.local/bin through ~/.profile (or installs into /usr/local/bin): the
    seed's `#!/bin/sh -l` resets PATH, so the agent's own PATH does not reach the step. The control
    for the tests above: without that ~/.profile line the same build fails."""
    _, url = source
    quick_start(capsys, jenkins, registry, [
        "--type", "freestyle", "--registry", registry.host, "--image", IMAGE, "--credentials-id",
        CREDENTIALS_ID, "--scm-url", url])
    (Path(agent["HOME"]) / ".profile").unlink()
    result = run_build(jenkins, "jenkins-test", tmp_path / "ws", number=1, environ=agent)
    assert result.status == "FAILURE"
    assert "jr-push: not found" in result.log
