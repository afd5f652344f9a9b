"""The agent harness (tests/support/agent_build.py): jobs stored in the Jenkins emulator run the way an
agent runs them, with real git, /bin/sh and, for pipelines, real Groovy. Each test builds a job and
asserts what the build did (files, environment, log, result), and that no secret reaches the log,
the Groovy JVM's command line or its environment."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import pytest

from jenkins_registry.jenkins_client import JenkinsClient, JenkinsSettings, connect
from jenkins_registry.secret_types import Secret
from tests.support import services
from tests.support.agent_build import (
    AgentMismatchError,
    JobNotBuildableError,
    NotModelledError,
    label_matches,
    run_build,
)
from tests.support.agent_pipeline import groovy_classpath
from tests.support.groovy_runtime import INSTALL
from tests.support.jenkins_emulator import JenkinsEmulator
from tests.support.secret_checks import assert_absent

ADMIN, TOKEN = "admin", "5e1f0c2d3b4a59687766554433221100"
SECRET = services.REGISTRY_PASSWORD  # the known secret: never in a log, an argv or the JVM's environment
USER = services.REGISTRY_USER
SECRET_SHA = hashlib.sha256(SECRET.encode()).hexdigest()



@pytest.fixture
def groovy_runtime() -> None:
    """Pipelines run on java and npm-groovy-lint's Groovy runtime: missing, the test fails (a skip
    would let a plain `pytest` run pass without running any pipeline)."""
    if groovy_classpath() is None or shutil.which("java") is None:
        pytest.fail(f"pipelines need java and npm-groovy-lint's Groovy runtime: {INSTALL}.", pytrace=False)


needs_groovy = pytest.mark.usefixtures("groovy_runtime")


# -- set-up helpers --------------------------------------------------------------------------------------


@pytest.fixture
def emu() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={ADMIN: ("admin-pw", {TOKEN})}) as emulator:
        yield emulator


@pytest.fixture
def client(emu: JenkinsEmulator) -> JenkinsClient:
    return connect(JenkinsSettings(url=emu.url, user=ADMIN, token=Secret(TOKEN), timeout=10))


@pytest.fixture
def agent_env() -> dict[str, str]:
    """What the agent's processes inherit (HOME is the test's isolated home, see conftest)."""
    return {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"], "LC_ALL": "C.UTF-8"}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.strip()


def make_repo(root: Path, files: Mapping[str, str], *, branch: str = "main") -> tuple[str, str]:
    """A local repository with one commit of *files* on *branch*; returns (file:// URL, HEAD)."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", branch)
    for key, value in (("user.name", "Agent Test"), ("user.email", "agent@example.invalid"),
                       ("commit.gpgsign", "false")):
        git(root, "config", key, value)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first commit")
    return root.as_uri(), git(root, "rev-parse", "HEAD")


def create_folder(client: JenkinsClient, name: str) -> None:
    client.post_xml("createItem?name=" + name, "<com.cloudbees.hudson.plugins.folder.Folder/>",
                    what=f"create folder {name}")


def create_job(client: JenkinsClient, full_name: str, xml: str) -> None:
    *folders, name = full_name.split("/")
    prefix = "".join(f"job/{f}/" for f in folders)
    client.post_xml(f"{prefix}createItem?name={name}", xml, what=f"create job {full_name}")


def add_credential(client: JenkinsClient, xml: str, folder: str | None = None) -> None:
    store = f"job/{folder}/credentials/store/folder/" if folder else "credentials/store/system/"
    client.post_xml(store + "domain/_/createCredentials", xml, what="create credential")


def userpass_xml(cid: str, *, scope: str = "GLOBAL", username_secret: bool = False) -> str:
    return (f"<com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl><scope>{scope}</scope>"
            f"<id>{cid}</id><description/><username>{USER}</username><password>{SECRET}</password>"
            f"<usernameSecret>{str(username_secret).lower()}</usernameSecret>"
            "</com.cloudbees.plugins.credentials.impl.UsernamePasswordCredentialsImpl>")


def git_scm_xml(url: str, branch: str = "*/main", credentials_id: str | None = None) -> str:
    cred = f"<credentialsId>{escape(credentials_id)}</credentialsId>" if credentials_id else ""
    return (f'<scm class="hudson.plugins.git.GitSCM"><configVersion>2</configVersion><userRemoteConfigs>'
            f"<hudson.plugins.git.UserRemoteConfig><url>{escape(url)}</url>{cred}"
            "</hudson.plugins.git.UserRemoteConfig></userRemoteConfigs><branches><hudson.plugins.git.BranchSpec>"
            f"<name>{escape(branch)}</name></hudson.plugins.git.BranchSpec></branches>"
            "<doGenerateSubmoduleConfigurations>false</doGenerateSubmoduleConfigurations>"
            '<submoduleCfg class="empty-list"/><extensions/></scm>')


def freestyle_xml(commands: list[str], *, scm: str = '<scm class="hudson.scm.NullSCM"/>',
                  credentials_id: str | None = None, node: str = "<canRoam>true</canRoam>",
                  concurrent: bool = False, publishers: str = "") -> str:
    """A freestyle project as in spec §3c (SecretBuildWrapper with UsernamePasswordMultiBinding)."""
    builders = "".join(f"<hudson.tasks.Shell><command>{escape(c)}</command><configuredLocalRules/>"
                       "</hudson.tasks.Shell>" for c in commands)
    wrapper = "" if credentials_id is None else (
        '<org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper plugin="credentials-binding">'
        "<bindings><org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding>"
        f"<credentialsId>{credentials_id}</credentialsId><usernameVariable>REG_USER</usernameVariable>"
        "<passwordVariable>REG_PASS</passwordVariable>"
        "</org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding></bindings>"
        "</org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper>")
    return (f"<?xml version='1.1' encoding='UTF-8'?><project><actions/><description/>"
            f"<keepDependencies>false</keepDependencies><properties/>{scm}{node}<disabled>false</disabled>"
            "<blockBuildWhenDownstreamBuilding>false</blockBuildWhenDownstreamBuilding>"
            "<blockBuildWhenUpstreamBuilding>false</blockBuildWhenUpstreamBuilding><triggers/>"
            f"<concurrentBuild>{str(concurrent).lower()}</concurrentBuild><builders>{builders}</builders>"
            f"<publishers>{publishers}</publishers><buildWrappers>{wrapper}</buildWrappers></project>")


def pipeline_xml(script: str) -> str:
    """An inline pipeline (CpsFlowDefinition, sandbox true) as in spec §3b."""
    return ("<?xml version='1.1' encoding='UTF-8'?><flow-definition plugin=\"workflow-job\"><actions/>"
            "<description/><keepDependencies>false</keepDependencies><properties/>"
            '<definition class="org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition" plugin="workflow-cps">'
            f"<script>{escape(script)}</script><sandbox>true</sandbox></definition><triggers/>"
            "<disabled>false</disabled></flow-definition>")


def pipeline_scm_xml(scm: str, script_path: str) -> str:
    return ("<?xml version='1.1' encoding='UTF-8'?><flow-definition><description/><properties/>"
            f'<definition class="org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition">{scm}'
            f"<scriptPath>{escape(script_path)}</scriptPath><lightweight>true</lightweight></definition>"
            "<disabled>false</disabled></flow-definition>")


def in_order(log: str, *markers: str) -> None:
    """Each marker appears in *log*, after the previous one."""
    position = -1
    for marker in markers:
        found = log.find(marker, position + 1)
        assert found > position, f"{marker!r} missing or out of order in:\n{log}"
        position = found


# A step of the Jenkinsfile builds writes the argv and environment of the Groovy JVM, as the kernel
# shows them to any process of the same user while the build runs. (`\\0`: it sits in a Groovy
# string, which would turn `\0` into a NUL character.)
JVM_DUMP = (r"for p in /proc/[0-9]*; do "
            r"if tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q ' pipeline_dsl '; then "
            r"tr '\\0' '\\n' < $p/cmdline; tr '\\0' '\\n' < $p/environ; fi; done > jvm.txt")


# -- freestyle -------------------------------------------------------------------------------------------


def test_freestyle_checks_out_binds_and_runs_its_shell_steps(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    url, head = make_repo(tmp_path / "repo", {"hello.txt": "hello\n"})
    create_folder(client, "Team")
    add_credential(client, userpass_xml("reg"), folder="Team")
    steps = [
        # set +x: under `sh -xe` the trace would print the expanded password (Jenkins masks it; the
        # harness does not, so such a leak fails the test).
        'test -f hello.txt\nset +x\nprintf %s "$REG_PASS" | sha256sum | cut -d" " -f1 > pass.sha\n'
        'printf %s "$REG_USER" > user.txt\nenv | grep -v ^REG_PASS= | sort > env.txt',
        '#!/bin/sh -e\nprintf %s "$-" > flags.txt',  # run through its own #! line: no -x
    ]
    create_job(client, "Team/app", freestyle_xml(steps, scm=git_scm_xml(url), credentials_id="reg"))

    ws = tmp_path / "agent" / "workspace" / "Team" / "app"
    result = run_build(emu, "Team/app", ws, number=5, environ=agent_env)

    assert result.status == "SUCCESS", result.log
    assert (ws / "hello.txt").read_text() == "hello\n"  # checked out into the workspace
    assert git(ws, "rev-parse", "HEAD") == head
    assert subprocess.run(["git", "symbolic-ref", "-q", "HEAD"], cwd=ws).returncode == 1  # detached
    assert (ws / "pass.sha").read_text().strip() == SECRET_SHA
    assert (ws / "user.txt").read_text() == USER
    env = dict(line.split("=", 1) for line in (ws / "env.txt").read_text().splitlines() if "=" in line)
    names = ("GIT_COMMIT", "GIT_BRANCH", "GIT_URL", "BUILD_NUMBER", "BUILD_ID", "BUILD_TAG", "JOB_NAME",
             "JOB_BASE_NAME", "WORKSPACE", "NODE_NAME", "EXECUTOR_NUMBER")
    assert {k: env[k] for k in names} == {
        "GIT_COMMIT": head, "GIT_BRANCH": "origin/main", "GIT_URL": url, "BUILD_NUMBER": "5", "BUILD_ID": "5",
        "BUILD_TAG": "jenkins-Team-app-5", "JOB_NAME": "Team/app", "JOB_BASE_NAME": "app",
        "WORKSPACE": str(ws), "NODE_NAME": "agent-1", "EXECUTOR_NUMBER": "0"}
    assert env["JENKINS_URL"] == emu.url and env["BUILD_URL"] == f"{emu.url}job/Team/job/app/5/"
    assert env["HOME"] == agent_env["HOME"]  # the agent's environment underneath
    assert result.env["GIT_COMMIT"] == head and "REG_PASS" not in result.env
    assert result.bound_variables == {"REG_USER", "REG_PASS"}
    assert "x" not in (ws / "flags.txt").read_text() and "e" in (ws / "flags.txt").read_text()
    in_order(result.log, "No credentials specified", "Cloning the remote Git repository",
             f"Checking out Revision {head} (origin/main)", "[app] $ /bin/sh -xe ", "+ test -f hello.txt",
             "[app] $ /bin/sh -e ", "Finished: SUCCESS")
    assert list((tmp_path / "agent" / "workspace" / "Team" / "app@tmp").iterdir()) == []  # scripts removed
    assert_absent(SECRET, result.log, (ws / "env.txt").read_text())


def test_freestyle_failing_step_skips_the_rest_and_archives(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    archiver = ("<hudson.tasks.ArtifactArchiver><artifacts>out/*.txt</artifacts>"
                "<allowEmptyArchive>false</allowEmptyArchive></hudson.tasks.ArtifactArchiver>")
    create_job(client, "app", freestyle_xml(["mkdir -p out\necho a > out/a.txt\necho b > out/b.log",
                                             "exit 4", "touch never"], publishers=archiver))
    result = run_build(emu, "app", tmp_path / "ws", environ=agent_env)
    assert result.status == "FAILURE"
    assert not (tmp_path / "ws" / "never").exists()
    in_order(result.log, "+ exit 4", "Build step 'Execute shell' marked build as failure",
             "Archiving artifacts", "Finished: FAILURE")
    assert result.artifacts() == ["out/a.txt"]  # publishers run after a failure too
    assert (result.artifacts_dir / "out" / "a.txt").read_text() == "a\n"


@pytest.mark.parametrize("where", ["missing", "system-scope", "other-folder"])
def test_freestyle_credential_the_job_cannot_see_fails_the_build(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path,
        where: str) -> None:
    create_folder(client, "Team")
    create_folder(client, "Other")
    if where == "system-scope":  # SYSTEM scope: stored, but invisible to builds (spec §2.6)
        add_credential(client, userpass_xml("reg", scope="SYSTEM"))
    elif where == "other-folder":
        add_credential(client, userpass_xml("reg"), folder="Other")
    create_job(client, "Team/app", freestyle_xml(["touch ran"], credentials_id="reg"))
    result = run_build(emu, "Team/app", tmp_path / "ws", environ=agent_env)
    assert result.status == "FAILURE"
    assert "ERROR: Could not find credentials entry with ID 'reg'" in result.log
    assert not (tmp_path / "ws" / "ran").exists()
    assert_absent(SECRET, result.log)


@pytest.mark.parametrize(("spec", "branch"), [
    ("*/main", "main"), ("main", "main"), ("origin/main", "main"), ("refs/heads/main", "main"),
    ("*/feature/x", "feature/x"), ("*/feat*/**", "feature/x"), ("**/main", "main"),
])
def test_branch_specs_resolve_like_the_git_plugin(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path,
        spec: str, branch: str) -> None:
    repo = tmp_path / "repo"
    url, _ = make_repo(repo, {"which": "main\n"})
    git(repo, "checkout", "-q", "-b", "feature/x")
    (repo / "which").write_text("feature\n")
    git(repo, "commit", "-q", "-am", "feature")
    heads = {"main": git(repo, "rev-parse", "main"), "feature/x": git(repo, "rev-parse", "feature/x")}
    create_job(client, "app", freestyle_xml(['printf %s "$GIT_COMMIT $GIT_BRANCH" > got'],
                                            scm=git_scm_xml(url, spec)))
    result = run_build(emu, "app", tmp_path / "ws", environ=agent_env)
    assert result.status == "SUCCESS", result.log
    assert (tmp_path / "ws" / "got").read_text() == f"{heads[branch]} origin/{branch}"
    assert git(tmp_path / "ws", "rev-parse", "HEAD") == heads[branch]


def test_unknown_branch_and_unseen_git_credential(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    url, _ = make_repo(tmp_path / "repo", {"a": "a"})
    create_job(client, "nobranch", freestyle_xml(["touch ran"], scm=git_scm_xml(url, "*/nope")))
    result = run_build(emu, "nobranch", tmp_path / "ws1", environ=agent_env)
    assert result.status == "FAILURE"
    assert "ERROR: Couldn't find any revision to build." in result.log
    assert not (tmp_path / "ws1" / "ran").exists()
    # The git plugin only warns about a credential it cannot find and fetches without it
    # (GitSCM.createClient); a local repository needs no login, so that build goes on.
    create_job(client, "nocred", freestyle_xml(["touch ran"], scm=git_scm_xml(url, credentials_id="gone")))
    result = run_build(emu, "nocred", tmp_path / "ws2", environ=agent_env)
    assert 'Warning: CredentialId "gone" could not be found.' in result.log
    assert result.status == "SUCCESS" and (tmp_path / "ws2" / "ran").exists()
    # On the controller (the built-in node) a local repository is refused (SECURITY-2478).
    result = run_build(emu, "nocred", tmp_path / "ws3", environ=agent_env, node_name="built-in")
    assert result.status == "FAILURE" and "aborted because it references a local directory" in result.log


def test_label_mismatch_is_refused_and_a_match_runs(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    create_job(client, "pinned", freestyle_xml(
        ["touch ran"], node="<assignedNode>linux &amp;&amp; docker</assignedNode><canRoam>false</canRoam>"))
    with pytest.raises(AgentMismatchError, match="linux && docker"):
        run_build(emu, "pinned", tmp_path / "ws", environ=agent_env, labels={"docker"})
    assert not (tmp_path / "ws" / "ran").exists()
    result = run_build(emu, "pinned", tmp_path / "ws", environ=agent_env, labels={"docker", "linux"})
    assert result.status == "SUCCESS" and (tmp_path / "ws" / "ran").exists()


@pytest.mark.parametrize(("expression", "labels", "expected"), [
    ("docker", {"docker"}, True), ("docker", {"linux"}, False), ("linux && docker", {"docker"}, False),
    ("linux || docker", {"docker"}, True), ("!windows", {"docker"}, True),
    ("!(a || docker)", {"docker"}, False),
    ("a -> b", {"c"}, True), ("a -> b", {"a"}, False), ("a <-> b", {"a", "b"}, True),
    ("x86-64 && docker-big", {"x86-64", "docker-big"}, True), ("agent-1", set(), True),
])
def test_label_expressions(expression: str, labels: set[str], expected: bool) -> None:
    assert label_matches(expression, frozenset(labels | {"agent-1"})) is expected


def test_disabled_concurrency_makes_builds_wait_for_each_other(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    create_job(client, "serial", freestyle_xml(["date +%s%N > start\nsleep 1\ndate +%s%N > end"]))
    results: dict[str, Any] = {}

    def build(ws: str, number: int) -> None:
        results[ws] = run_build(emu, "serial", tmp_path / ws, number=number, environ=agent_env, timeout=120)

    threads = [threading.Thread(target=build, args=(ws, n)) for n, ws in ((1, "ws"), (2, "ws@2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    assert {ws: r.status for ws, r in results.items()} == {"ws": "SUCCESS", "ws@2": "SUCCESS"}
    spans = sorted((int((tmp_path / ws / "start").read_text()), int((tmp_path / ws / "end").read_text()))
                   for ws in ("ws", "ws@2"))
    assert spans[0][1] <= spans[1][0], "the second build started before the first ended"


def test_what_jenkins_would_not_build_or_the_harness_does_not_model(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    with pytest.raises(JobNotBuildableError):
        run_build(emu, "absent", tmp_path / "ws", environ=agent_env)
    create_job(client, "off", freestyle_xml(["true"]).replace("<disabled>false", "<disabled>true"))
    with pytest.raises(JobNotBuildableError, match="disabled"):
        run_build(emu, "off", tmp_path / "ws", environ=agent_env)
    maven = freestyle_xml([]).replace("<builders>", "<builders><hudson.tasks.Maven><targets>x</targets>"
                                                    "</hudson.tasks.Maven>")
    create_job(client, "maven", maven)
    with pytest.raises(NotModelledError, match=r"hudson\.tasks\.Maven"):
        run_build(emu, "maven", tmp_path / "ws", environ=agent_env)
    create_job(client, "jdk", freestyle_xml(["true"]).replace("<triggers/>", "<triggers/><jdk>17</jdk>"))
    with pytest.raises(NotModelledError, match="jdk"):
        run_build(emu, "jdk", tmp_path / "ws", environ=agent_env)


# -- pipelines -------------------------------------------------------------------------------------------

INLINE = """
pipeline {
    agent any
    options { disableConcurrentBuilds() }
    environment { GREETING = "hello-${env.BUILD_NUMBER}" }
    stages {
        stage('First') {
            steps {
                sh 'echo "first $GREETING" > first.txt'
                script {
                    env.FROM_GROOVY = sh(script: 'printf %s groovy', returnStdout: true)
                    def status = sh(script: 'exit 7', returnStatus: true)
                    echo "status was ${status}"
                }
            }
        }
        stage('Second') {
            steps {
                withEnv(['LEVEL=outer', 'PATH+EXTRA=/opt/extra/bin']) {
                    dir('sub/dir') {
                        sh 'echo "$LEVEL $FROM_GROOVY $(pwd)" > where.txt; echo "$PATH" > path.txt'
                        writeFile file: 'note.txt', text: 'noted'
                    }
                }
                archiveArtifacts artifacts: 'sub/**/*.txt'
            }
            post { always { echo 'stage post ran' } }
        }
        stage('Breaks') {
            steps {
                sh 'exit 3'
                echo 'not after a failure'
            }
        }
        stage('Skipped') {
            steps { sh 'touch skipped' }
        }
    }
    post {
        cleanup { echo 'post: cleanup' }
        success { echo 'post: success' }
        failure { echo "post: failure, currentBuild.result=${currentBuild.result}" }
        always { sh 'touch post-always' }
        unsuccessful { echo 'post: unsuccessful' }
    }
}
"""


@needs_groovy
def test_inline_pipeline_runs_stages_and_post_like_declarative(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    create_job(client, "flow", pipeline_xml(INLINE))
    ws = tmp_path / "ws"
    result = run_build(emu, "flow", ws, number=3, environ=agent_env)

    assert result.status == "FAILURE"
    assert (ws / "first.txt").read_text() == "first hello-3\n"
    assert (ws / "sub" / "dir" / "where.txt").read_text() == f"outer groovy {ws}/sub/dir\n"
    assert (ws / "sub" / "dir" / "path.txt").read_text().startswith("/opt/extra/bin:")
    assert (ws / "sub" / "dir" / "note.txt").read_text() == "noted"
    assert result.artifacts() == ["sub/dir/note.txt", "sub/dir/path.txt", "sub/dir/where.txt"]
    assert (ws / "post-always").exists() and not (ws / "skipped").exists()
    in_order(result.log, "status was 7", "{ (Second)", "stage post ran", "{ (Breaks)", "+ exit 3",
             'Stage "Skipped" skipped due to earlier failure(s)', "{ (Declarative: Post Actions)",
             "+ touch post-always", "post: unsuccessful", "post: failure, currentBuild.result=FAILURE",
             "post: cleanup", "ERROR: script returned exit code 3", "Finished: FAILURE")
    assert "not after a failure" not in result.log and "post: success" not in result.log
    assert result.env["WORKSPACE"] == str(ws) and result.env["BUILD_NUMBER"] == "3"
    assert "Declarative: Checkout SCM" not in result.log  # an inline pipeline has no SCM


@needs_groovy
def test_pipeline_from_scm_checks_out_and_binds_without_leaking(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    jenkinsfile = """
pipeline {
    agent { label 'docker' }
    stages {
        stage('Use') {
            steps {
                sh 'test -f app.txt && echo "$GIT_COMMIT $GIT_BRANCH" > scm.txt'
                withCredentials([usernamePassword(credentialsId: 'reg', usernameVariable: 'REG_USER',
                                                  passwordVariable: 'REG_PASS')]) {
                    sh 'set +x; printf %s "$REG_PASS" | sha256sum | cut -d" " -f1 > pass.sha'
                    sh 'printf %s "$REG_USER" > user.txt'
                    sh '''JVM_DUMP'''
                }
                sh 'printf %s "${REG_PASS:-unset}" > after.txt'
            }
        }
    }
}
""".replace("JVM_DUMP", JVM_DUMP)
    url, head = make_repo(tmp_path / "repo", {"ci/Jenkinsfile": jenkinsfile, "app.txt": "app\n"})
    add_credential(client, userpass_xml("reg"))
    create_job(client, "fromscm", pipeline_scm_xml(git_scm_xml(url, "*/main"), "ci/Jenkinsfile"))
    ws = tmp_path / "ws"
    result = run_build(emu, "fromscm", ws, environ=agent_env)

    assert result.status == "SUCCESS", result.log
    assert (ws / "scm.txt").read_text() == f"{head} origin/main\n"
    assert (ws / "pass.sha").read_text().strip() == SECRET_SHA
    assert (ws / "user.txt").read_text() == USER
    assert (ws / "after.txt").read_text() == "unset"  # the binding ends with its block
    in_order(result.log, "Obtained ci/Jenkinsfile from git " + url, "{ (Declarative: Checkout SCM)",
             f"Checking out Revision {head} (origin/main)", "{ (Use)",
             "Masking supported pattern matches of $REG_PASS", "Finished: SUCCESS")
    jvm = (ws / "jvm.txt").read_text()
    assert "pipeline_dsl" in jvm.splitlines() and "PATH=/bin:/usr/bin" in jvm  # the dump found the JVM…
    assert_absent(SECRET, jvm, result.log, " ".join(result.jvm_argv))  # …and no secret in it
    assert result.env["GIT_COMMIT"] == head


@needs_groovy
@pytest.mark.parametrize(("body", "expected"), [
    ("shh 'echo typo'", "No such DSL method 'shh' found among steps"),
    ("error 'giving up'", "ERROR: giving up"),
    ("sh 'exit 3'", "ERROR: script returned exit code 3"),
    ("withCredentials([string(credentialsId: 'absent', variable: 'T')]) { sh 'true' }",
     "ERROR: Could not find credentials entry with ID 'absent'"),
    ("archiveArtifacts 'nothing/*.bin'",
     'ERROR: No artifacts found that match the file pattern "nothing/*.bin". Configuration error?'),
    ("checkout scm", "only available when using"),
    ("echo undefinedVariable", "No such property: undefinedVariable for class: WorkflowScript"),
])
def test_failing_steps_fail_the_build(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path,
        body: str, expected: str) -> None:
    script = ("pipeline { agent any\n stages { stage('S') { steps {\n" + body
              + "\n sh 'touch after' } } }\n post { always { sh 'touch post' } } }")
    create_job(client, "bad", pipeline_xml(script))
    result = run_build(emu, "bad", tmp_path / "ws", environ=agent_env)
    assert result.status == "FAILURE"
    assert expected in result.log
    assert not (tmp_path / "ws" / "after").exists() and (tmp_path / "ws" / "post").exists()


@needs_groovy
@pytest.mark.parametrize(("script", "expected"), [
    ("pipeline { agent any\n stages { stage('S') { when { branch 'main' }\n steps { echo 'x' } } } }",
     "when"),
    ("pipeline { agent any\n stages { stage('S') { steps { parallel a: { echo 'x' } } } } }", "parallel"),
    ("pipeline { agent any\n stages { stage('S') { steps { withCredentials([usernamePassword("
     "credentialsId: 'reg', usernameVariable: 'U', passwordVariable: 'P')]) { sh \"echo ${P}\" } } } } }",
     "reading the bound variable P"),
])
def test_what_the_dsl_does_not_model_stops_the_harness(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path,
        script: str, expected: str) -> None:
    add_credential(client, userpass_xml("reg"))
    create_job(client, "unmodelled", pipeline_xml(script))
    with pytest.raises(NotModelledError, match=expected) as caught:
        run_build(emu, "unmodelled", tmp_path / "ws", environ=agent_env)
    assert_absent(SECRET, str(caught.value), caught.value.log)


@needs_groovy
def test_declarative_errors_and_label_mismatch(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    create_job(client, "nosuch", pipeline_xml("pipeline { agent any\n stagez { }\n}"))
    result = run_build(emu, "nosuch", tmp_path / "ws", environ=agent_env)
    assert result.status == "FAILURE" and 'Undefined section "stagez"' in result.log
    create_job(client, "gpu", pipeline_xml(
        "pipeline { agent { label 'gpu' }\n stages { stage('S') { steps { sh 'touch ran' } } } }"))
    with pytest.raises(AgentMismatchError, match="gpu"):
        run_build(emu, "gpu", tmp_path / "ws", environ=agent_env)
    assert not (tmp_path / "ws" / "ran").exists()


@needs_groovy
def test_concurrent_pipeline_builds_keep_to_their_workspaces(
        emu: JenkinsEmulator, client: JenkinsClient, agent_env: dict[str, str], tmp_path: Path) -> None:
    create_job(client, "par", pipeline_xml(
        "pipeline { agent any\n stages { stage('S') { steps {\n"
        "sh 'echo $BUILD_NUMBER $WORKSPACE > mine.txt'\n echo \"built ${env.BUILD_NUMBER}\" } } } }"))
    results: dict[int, Any] = {}

    def build(number: int, ws: str) -> None:
        results[number] = run_build(emu, "par", tmp_path / ws, number=number, environ=agent_env, timeout=300)

    threads = [threading.Thread(target=build, args=(n, ws)) for n, ws in ((1, "ws"), (2, "ws@2"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=360)
    assert {n: r.status for n, r in results.items()} == {1: "SUCCESS", 2: "SUCCESS"}
    for number, ws in ((1, "ws"), (2, "ws@2")):
        assert (tmp_path / ws / "mine.txt").read_text() == f"{number} {tmp_path / ws}\n"
        assert f"built {number}" in results[number].log and f"built {3 - number}" not in results[number].log


# -- a job rendered by the project, pushing for real ------------------------------------------------------


@needs_groovy
@pytest.mark.slow
def test_job_created_by_jr_pushes_an_image_to_the_registry(
        emu: JenkinsEmulator, docker_client: object, docker_env: str, registry: services.Registry,
        agent_env: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`jr jenkins credential` + `jr jenkins job --no-build`, then the build on an agent whose engine
    has the image: the image must land in the registry. Asserts outcomes only, so template changes
    (stages, options, post steps) keep it valid."""
    from jenkins_registry.cli.main import main

    services.build_image(docker_client, "agent-build/app:latest", {"hello.txt": b"from an agent build\n"})
    env = {"JENKINS_URL": emu.url, "JENKINS_USER": ADMIN, "JENKINS_API_TOKEN": TOKEN,
           "DOCKER_LOGIN_PASSWORD": SECRET}
    assert main(["jenkins", "credential", "--id", "reg", "--username", USER], env) == 0
    assert main(["jenkins", "job", "--name", "push", "--folder", "Team", "--type", "pipeline",
                 "--registry", registry.host, "--image", "agent-build/app", "--credentials-id", "reg",
                 "--tag", "latest", "--tag", "b${BUILD_NUMBER}", "--no-build"], env) == 0
    out, err = capsys.readouterr()
    venv_bin = str(Path(sys.executable).parent)  # jr-push, as installed in the project's venv
    environ = {**agent_env, "PATH": f"{venv_bin}:{agent_env['PATH']}", "DOCKER_HOST": docker_env,
               "DOCKER_CONFIG": os.environ["DOCKER_CONFIG"]}

    result = run_build(emu, "Team/push", tmp_path / "ws", number=4, environ=environ)

    assert result.status == "SUCCESS", result.log
    assert {"latest", "b4"} <= set(registry.tags("agent-build/app"))
    assert_absent(SECRET, result.log, out, err, " ".join(result.jvm_argv))
    assert ET.fromstring(emu.job_xml("Team/push")).tag == "flow-definition"  # noqa: S314 - our own job
