"""Run a job stored in the Jenkins emulator the way a Jenkins agent would: a build you can assert on.

    result = run_build(emulator, "Team/app", tmp_path / "ws", number=1,
                       environ={"PATH": …, "HOME": …, "DOCKER_HOST": …})
    assert result.status == "SUCCESS", result.log

The job's config.xml is read from the emulator; the credentials from its stores. Everything the build
does happens for real on this machine: git, /bin/sh, the processes the steps start, the files they
write. A pipeline's Jenkinsfile is evaluated on real Groovy (the runtime npm-groovy-lint ships) with
the declarative DSL of tests/support/pipeline_dsl.groovy; bound secrets never enter that JVM (neither
argv nor environment): the harness adds them to the environment of each shell step only.
Facts followed: /work/shared/jenkins-api.md §3b, §3c, §4, §7a and the plugin sources cited in the
modules (git, credentials-binding, durable-task, pipeline-model-definition).

Modelled:
* Build environment (§7a): BUILD_NUMBER, BUILD_ID, BUILD_DISPLAY_NAME, BUILD_TAG, JOB_NAME,
  JOB_BASE_NAME, JOB_URL, BUILD_URL, JENKINS_URL, WORKSPACE, WORKSPACE_TMP, NODE_NAME, NODE_LABELS,
  EXECUTOR_NUMBER over the agent's environment; GIT_COMMIT, GIT_BRANCH, GIT_URL after a checkout.
* Labels: `<assignedNode>` (with `<canRoam>false</canRoam>`) and `agent { label }` are label
  expressions (`&&`, `||`, `!`, `->`, `<->`, parentheses) over the agent's labels and its name; no
  match raises AgentMismatchError (Jenkins would leave the build waiting in the queue).
* Credentials: the job's folder stores, nearest first, then the system store; GLOBAL scope only
  (CredentialStore.visible_to_builds); username/password and secret text; a missing or mistyped
  credential fails the build with the credentials-binding plugin's message.
* GitSCM (one remote): clone/fetch of +refs/heads/*, branch specs resolved like the git plugin's
  DefaultBuildChooser, a detached checkout (a local branch for the `git` step); a credentialsId that
  no visible store holds only logs the git plugin's warning, as GitSCM.createClient does.
* Freestyle: SecretBuildWrapper (UsernamePasswordMultiBinding, StringBinding,
  UsernamePasswordBinding), hudson.tasks.Shell (a file in WORKSPACE@tmp run as `/bin/sh -xe FILE`, or
  through its `#!` line), ArtifactArchiver; a failing step fails the build and skips the later ones.
* Pipeline: see agent_pipeline.py and pipeline_dsl.groovy (declarative stages, post, steps).
* Builds of one job that Jenkins would not run concurrently (freestyle without concurrentBuild,
  pipeline with disableConcurrentBuilds) wait for each other; others may run in parallel threads.

Not modelled (run_build raises NotModelledError rather than guess): build parameters, other SCMs,
git extensions or several remotes, other builders, wrappers and publishers, custom workspaces,
parallel/matrix/when/input/tools, post conditions that compare with earlier builds (changed, fixed,
regression), a stage agent inside a pipeline agent, reading a bound secret from Groovy. Not modelled
and not refused: the script security sandbox's restrictions and CPS (the Groovy runs unrestricted);
node-to-node differences (one agent, one workspace per build); credential domains other than the
global one; masking (the log is left unmasked on purpose: tests assert that no secret reaches it);
git logins (repositories are local: a credential is checked for visibility, never used);
`options { timeout }` shortens the harness's limit, which raises BuildTimeoutError when reached
(Jenkins would abort the build and run `post { aborted }`).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.support.jenkins_emulator import (
    CREDENTIAL_TYPES,
    FOLDER_CLASS,
    FREESTYLE_CLASS,
    PIPELINE_CLASS,
    STRING_CREDENTIALS_CLASS,
    USERNAME_PASSWORD_CLASS,
    JenkinsEmulator,
)

RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")  # hudson.model.Result, worst last
DEFAULT_LABELS = frozenset({"docker"})


# -------------------------------------------------------------------------------------------------
# Public API


class HarnessError(Exception):
    """The harness cannot give a faithful result for this build (not a build result). `log` holds the
    build log up to that point."""

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(message)
        self.log = log


class NotModelledError(HarnessError):
    """The job uses a Jenkins feature the harness does not model; extend the harness or change the job."""


class AgentMismatchError(HarnessError):
    """The job's label expression does not match this agent: Jenkins would leave it in the queue."""


class JobNotBuildableError(HarnessError):
    """No such job, a folder, or a disabled job: Jenkins would not start a build."""


class BuildTimeoutError(HarnessError):
    """The build ran past the harness's time limit; its processes were killed."""


@dataclass(frozen=True, kw_only=True)
class BuildResult:
    """What a finished build left: its result, its console log (unmasked), where it ran and archived."""

    status: str  # SUCCESS, UNSTABLE, FAILURE, NOT_BUILT or ABORTED
    log: str
    workspace: Path
    artifacts_dir: Path  # like $JENKINS_HOME/jobs/…/builds/N/archive
    env: Mapping[str, str]  # the build environment the steps saw, without bound credentials
    bound_variables: frozenset[str]  # names of the credential variables some step received
    jvm_argv: tuple[str, ...] = ()  # the Groovy JVM's command line (pipelines)

    def artifacts(self) -> list[str]:
        """Archived files, as paths relative to the archive (sorted)."""
        if not self.artifacts_dir.is_dir():
            return []
        return sorted(p.relative_to(self.artifacts_dir).as_posix()
                      for p in self.artifacts_dir.rglob("*") if p.is_file())


def run_build(jenkins: JenkinsEmulator, job: str, workspace: Path, *, number: int = 1,
              environ: Mapping[str, str], labels: Iterable[str] = DEFAULT_LABELS,
              node_name: str = "agent-1", executor_number: int = 0, artifacts_dir: Path | None = None,
              timeout: float = 600.0) -> BuildResult:
    """Run build *number* of *job* ("folder/sub/job") in *workspace* on an agent named *node_name*
    with *labels* whose processes get *environ* (PATH, HOME, DOCKER_HOST, …) under the build's own
    variables. Thread-safe: concurrent builds need distinct workspaces (Jenkins uses `ws`, `ws@2`).

    Returns the BuildResult (a failing build is a result, not an exception). Raises HarnessError
    subclasses when Jenkins would not run the build (JobNotBuildableError, AgentMismatchError), when
    the job needs something not modelled (NotModelledError), or after *timeout* seconds
    (BuildTimeoutError).
    """
    item = jenkins.item(job)
    if item is None or item.class_name == FOLDER_CLASS:
        raise JobNotBuildableError(f"There is no job {job!r} in the emulator (folders cannot be built).")
    root = ET.fromstring(jenkins.job_xml(job))  # noqa: S314 - what the tests stored
    if (root.findtext("disabled") or "false").strip() == "true":
        raise JobNotBuildableError(f"Job {job} is disabled; Jenkins does not build disabled jobs.")
    build = Build(jenkins=jenkins, job=job, job_url=jenkins.url + item.url, workspace=Path(workspace),
                  number=number, environ=dict(environ), labels=frozenset(labels), node_name=node_name,
                  executor_number=executor_number, timeout=timeout,
                  artifacts_dir=artifacts_dir or Path(workspace).parent / "jenkins-home" / "jobs"
                  / job.replace("/", "/jobs/") / "builds" / str(number) / "archive")
    try:
        if item.class_name == FREESTYLE_CLASS:
            from tests.support.agent_freestyle import run_freestyle
            status = run_freestyle(build, root)
        elif item.class_name == PIPELINE_CLASS:
            from tests.support.agent_pipeline import run_pipeline
            status = run_pipeline(build, root)
        else:
            raise NotModelledError(f"Builds of {item.class_name} are not modelled.")
    except HarnessError as exc:
        exc.log = exc.log or build.log_text()
        raise
    finally:
        build.release()
    if status not in RESULTS:
        raise HarnessError(f"The build ended with an unknown result {status!r}.", build.log_text())
    build.say(f"Finished: {status}")
    return BuildResult(status=status, log=build.log_text(), workspace=build.workspace,
                       artifacts_dir=build.artifacts_dir, env=dict(build.result_env),
                       bound_variables=frozenset(build.bound_variables), jvm_argv=build.jvm_argv)


# -------------------------------------------------------------------------------------------------
# What the build modules share


class StepError(Exception):
    """A step failed the way Jenkins' AbortException does: the log shows `ERROR: <message>`."""


@dataclass(frozen=True)
class Credential:
    """A credential as a build sees it (copied out of the emulator's store)."""

    id: str
    class_name: str
    username: str = ""
    username_secret: bool = False
    secret: str = field(default="", repr=False)  # the password, or the secret text

    @property
    def type_name(self) -> str:
        return CREDENTIAL_TYPES.get(self.class_name, (self.class_name, ()))[0]


# The types the bindings ask for (MultiBinding.type()); Jenkins names them by class in its message.
USERNAME_PASSWORD_TYPE = "com.cloudbees.plugins.credentials.common.StandardUsernamePasswordCredentials"
STRING_TYPE = "org.jenkinsci.plugins.plaincredentials.StringCredentials"


@dataclass
class Bound:
    """Variables one binding step adds: public values (a non-secret username) and secret ones."""

    public: dict[str, str] = field(default_factory=dict)
    secret: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def names(self) -> list[str]:
        return [*self.public, *self.secret]


_JOB_LOCKS: dict[tuple[int, str], threading.Lock] = {}
_JOB_LOCKS_GUARD = threading.Lock()


class Build:
    """One build's context: its log, environment, credentials, processes and deadline."""

    def __init__(self, *, jenkins: JenkinsEmulator, job: str, job_url: str, workspace: Path, number: int,
                 environ: dict[str, str], labels: frozenset[str], node_name: str, executor_number: int,
                 timeout: float, artifacts_dir: Path) -> None:
        self.jenkins = jenkins
        self.job = job
        self.job_url = job_url
        self.workspace = workspace
        self.number = number
        self.environ = environ
        self.labels = labels | {node_name}  # a node's name is one of its labels
        self.node_name = node_name
        self.executor_number = executor_number
        self.artifacts_dir = artifacts_dir
        self.deadline = time.monotonic() + timeout
        self.result_env: dict[str, str] = {}
        self.bound_variables: set[str] = set()
        self.jvm_argv: tuple[str, ...] = ()
        self._log: list[str] = []
        self._held: threading.Lock | None = None

    # -- log --------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        self._log.append(text if text.endswith("\n") else text + "\n")

    def log_text(self) -> str:
        return "".join(self._log)

    # -- time -------------------------------------------------------------------------------------
    def remaining(self) -> float:
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise self.timed_out()
        return left

    def timed_out(self) -> BuildTimeoutError:
        return BuildTimeoutError(f"Build #{self.number} of {self.job} ran past its time limit.",
                                 self.log_text())

    def limit_to(self, seconds: float) -> None:
        """`options { timeout(…) }`: the job's own limit shortens the harness's. Reaching it raises
        BuildTimeoutError (Jenkins would abort the build and still run `post { aborted }`)."""
        self.deadline = min(self.deadline, time.monotonic() + seconds)

    # -- concurrency ------------------------------------------------------------------------------
    def hold_job_lock(self) -> None:
        """Wait until no other build of this job runs (a job that disables concurrent builds)."""
        if self._held is not None:
            return
        with _JOB_LOCKS_GUARD:
            lock = _JOB_LOCKS.setdefault((id(self.jenkins.state), self.job), threading.Lock())
        if not lock.acquire(timeout=max(self.remaining(), 0.01)):
            raise self.timed_out()
        self._held = lock

    def release(self) -> None:
        if self._held is not None:
            self._held.release()
            self._held = None

    # -- environment ------------------------------------------------------------------------------
    def base_env(self) -> dict[str, str]:
        """The agent's environment under the variables of every build (§7a)."""
        env = dict(self.environ)
        env.update({
            "BUILD_NUMBER": str(self.number), "BUILD_ID": str(self.number),
            "BUILD_DISPLAY_NAME": f"#{self.number}",
            "BUILD_TAG": f"jenkins-{self.job.replace('/', '-')}-{self.number}",
            "JOB_NAME": self.job, "JOB_BASE_NAME": self.job.rsplit("/", 1)[-1],
            "JOB_URL": self.job_url, "BUILD_URL": f"{self.job_url}{self.number}/",
            "JENKINS_URL": self.jenkins.url,
        })
        return env

    def node_env(self) -> dict[str, str]:
        """What running on the node adds (the node step, or a freestyle build's executor)."""
        return {"WORKSPACE": str(self.workspace), "WORKSPACE_TMP": tmp_dir(self.workspace).as_posix(),
                "NODE_NAME": self.node_name, "NODE_LABELS": " ".join(sorted(self.labels)),
                "EXECUTOR_NUMBER": str(self.executor_number)}

    def require_label(self, expression: str | None) -> None:
        if expression is None or label_matches(expression, self.labels):
            return
        raise AgentMismatchError(
            f"Job {self.job} needs a node matching the label expression {expression!r}; this agent "
            f"({self.node_name}) has labels {sorted(self.labels)}. Jenkins would leave the build waiting "
            "in the queue ('There are no nodes with the label …').", self.log_text())

    # -- credentials ------------------------------------------------------------------------------
    def find_credential(self, credential_id: str) -> Credential | None:
        """CredentialsProvider.findCredentialById for this job: folder stores from the nearest folder
        up, then the system store; only GLOBAL-scoped credentials are visible to builds."""
        parts = self.job.split("/")
        with self.jenkins.state.lock:
            stores = []
            for depth in range(len(parts) - 1, 0, -1):
                folder = self.jenkins.item("/".join(parts[:depth]))
                if folder is not None and folder.store is not None:
                    stores.append(folder.store)
            stores.append(self.jenkins.store())
            for store in stores:
                if store.visible_to_builds(credential_id):
                    found = store.domains["_"][credential_id]
                    username_secret = found.field("usernameSecret")
                    return Credential(
                        id=credential_id, class_name=found.class_name, username=found.field("username") or "",
                        # A missing usernameSecret reads as true (spec §3a, JENKINS-67132).
                        username_secret=username_secret is None or username_secret.strip() == "true",
                        secret=(found.field("password") if found.class_name == USERNAME_PASSWORD_CLASS
                                else found.field("secret")) or "")
        return None

    def credential_of_type(self, credential_id: str, class_name: str, expected: str) -> Credential:
        """MultiBinding.getCredentials: StepError with the plugin's message when absent or mistyped."""
        cred = self.find_credential(credential_id)
        if cred is None:
            raise StepError(f"Could not find credentials entry with ID '{credential_id}'")
        if cred.class_name != class_name:
            raise StepError(f"Credentials '{credential_id}' is of type '{cred.type_name}' where "
                            f"'{expected}' was expected")
        return cred

    def bind(self, bindings: Iterable[Mapping[str, str | None]]) -> Bound:
        """Resolve credential bindings ({kind, credentialsId, …variable names}) into variables."""
        bound = Bound()
        for spec in bindings:
            kind, cid = spec.get("kind"), spec.get("credentialsId") or ""
            if kind == "usernamePassword":
                cred = self.credential_of_type(cid, USERNAME_PASSWORD_CLASS, USERNAME_PASSWORD_TYPE)
                user_var, pass_var = _var(spec, "usernameVariable"), _var(spec, "passwordVariable")
                (bound.secret if cred.username_secret else bound.public)[user_var] = cred.username
                bound.secret[pass_var] = cred.secret
            elif kind == "string":
                cred = self.credential_of_type(cid, STRING_CREDENTIALS_CLASS, STRING_TYPE)
                bound.secret[_var(spec, "variable")] = cred.secret
            elif kind == "usernameColonPassword":
                cred = self.credential_of_type(cid, USERNAME_PASSWORD_CLASS, USERNAME_PASSWORD_TYPE)
                bound.secret[_var(spec, "variable")] = f"{cred.username}:{cred.secret}"
            elif kind == "environment":  # declarative `NAME = credentials('id')`
                name = _var(spec, "variable")
                found = self.find_credential(cid)
                if found is None:
                    raise StepError(f"Could not find credentials entry with ID '{cid}'")
                if found.class_name == USERNAME_PASSWORD_CLASS:  # UsernamePasswordHandler (spec §4)
                    bound.secret[name] = f"{found.username}:{found.secret}"
                    (bound.secret if found.username_secret else bound.public)[f"{name}_USR"] = found.username
                    bound.secret[f"{name}_PSW"] = found.secret
                elif found.class_name == STRING_CREDENTIALS_CLASS:
                    bound.secret[name] = found.secret
                else:
                    raise NotModelledError(f"credentials() of type {found.type_name}")
            else:
                raise NotModelledError(f"the credential binding {kind!r}")
        self.bound_variables.update(bound.names)
        return bound

    # -- processes --------------------------------------------------------------------------------
    def run_process(self, argv: list[str], *, cwd: Path, env: Mapping[str, str],
                    capture_stdout: bool = False) -> tuple[int, str]:
        """Run one step's process: its output goes to the log (stdout returned instead when
        captured); killed with its process group when the build's time is up."""
        with subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                              stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE if capture_stdout else subprocess.STDOUT,
                              start_new_session=True) as proc:
            try:
                out, err = proc.communicate(timeout=self.remaining())
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate(timeout=30)
                raise self.timed_out() from None
        if capture_stdout:
            if err:
                self.say(err.decode("utf-8", "replace"))
            return proc.returncode, out.decode("utf-8", "replace")
        if out:
            self.say(out.decode("utf-8", "replace"))
        return proc.returncode, ""

    # -- artifacts --------------------------------------------------------------------------------
    def archive(self, base: Path, artifacts: str, *, excludes: str | None = None, allow_empty: bool = False,
                case_sensitive: bool = True, default_excludes: bool = True) -> list[str]:
        """ArtifactArchiver: copy the files under *base* matching the Ant patterns into the archive."""
        self.say("Archiving artifacts")
        includes = [_ant_regex(p, case_sensitive) for p in _ant_patterns(artifacts)]
        skip = [_ant_regex(p, case_sensitive) for p in _ant_patterns(excludes or "")]
        if default_excludes:
            skip += [_ant_regex(p, True) for p in ANT_DEFAULT_EXCLUDES]
        found: list[str] = []
        if base.is_dir():
            for dirpath, _dirs, files in os.walk(base):
                for name in files:
                    rel = (Path(dirpath) / name).relative_to(base).as_posix()
                    if any(r.match(rel) for r in includes) and not any(r.match(rel) for r in skip):
                        found.append(rel)
        if not found:
            if allow_empty:
                self.say(_no_match(artifacts))
                return []
            raise StepError(_no_match(artifacts))
        for rel in sorted(found):
            target = self.artifacts_dir / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(base / rel, target)
        return sorted(found)


def _no_match(pattern: str) -> str:
    """ArtifactArchiver.NoMatchFound."""
    return f'No artifacts found that match the file pattern "{pattern}". Configuration error?'


def _var(spec: Mapping[str, str | None], key: str) -> str:
    value = spec.get(key)
    if not value:
        raise StepError(f"The binding needs {key}.")
    return value


def tmp_dir(path: Path) -> Path:
    """WorkspaceList.tempDir: the `@tmp` sibling of a workspace (or of a `dir` inside it)."""
    return path.parent / f"{path.name}@tmp"


def override_env(env: dict[str, str], key: str, value: str) -> None:
    """EnvVars.override as withEnv applies it: `PATH+X=dir` prepends; an empty value unsets."""
    name, plus, _ = key.partition("+")
    if plus:
        env[name] = f"{value}{os.pathsep}{env[name]}" if env.get(name) else value
    elif value:
        env[key] = value
    else:
        env.pop(key, None)


def new_control_dir(cwd: Path) -> Path:
    """durable-task's control directory: `<cwd>@tmp/durable-XXXXXXXX`."""
    path = tmp_dir(cwd) / f"durable-{secrets.token_hex(4)}"
    path.mkdir(parents=True)
    return path


def new_freestyle_script(workspace: Path, text: str) -> Path:
    """CommandInterpreter.createScriptFile: `WORKSPACE@tmp/jenkinsNNN.sh`."""
    directory = tmp_dir(workspace)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="jenkins", suffix=".sh", dir=directory)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text.replace("\r\n", "\n"))
    return Path(name)


@contextlib.contextmanager
def removed_after(path: Path) -> Iterator[Path]:
    try:
        yield path
    finally:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


# -------------------------------------------------------------------------------------------------
# Label expressions (hudson.model.labels: `a && b`, `a || b`, `!a`, `a -> b`, `a <-> b`, parentheses)

_LABEL_TOKEN = re.compile(r"\s*(<->|->|&&|\|\||!|\(|\)|[^\s&|!()<>\"-]+(?:-(?!>)[^\s&|!()<>\"-]*)*)")


def label_matches(expression: str, labels: frozenset[str]) -> bool:
    """Whether a node with *labels* satisfies the label *expression*."""
    tokens: list[str] = []
    pos, text = 0, expression.strip()
    while pos < len(text):
        m = _LABEL_TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise NotModelledError(f"the label expression {expression!r}")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not tokens:
        return True  # an empty expression: any node
    value, rest = _iff(tokens, labels)
    if rest:
        raise NotModelledError(f"the label expression {expression!r}")
    return value


def _iff(t: list[str], labels: frozenset[str]) -> tuple[bool, list[str]]:
    left, t = _implies(t, labels)
    while t[:1] == ["<->"]:
        right, t = _implies(t[1:], labels)
        left = left == right
    return left, t


def _implies(t: list[str], labels: frozenset[str]) -> tuple[bool, list[str]]:
    left, t = _or(t, labels)
    while t[:1] == ["->"]:
        right, t = _or(t[1:], labels)
        left = (not left) or right
    return left, t


def _or(t: list[str], labels: frozenset[str]) -> tuple[bool, list[str]]:
    left, t = _and(t, labels)
    while t[:1] == ["||"]:
        right, t = _and(t[1:], labels)
        left = left or right
    return left, t


def _and(t: list[str], labels: frozenset[str]) -> tuple[bool, list[str]]:
    left, t = _not(t, labels)
    while t[:1] == ["&&"]:
        right, t = _not(t[1:], labels)
        left = left and right
    return left, t


def _not(t: list[str], labels: frozenset[str]) -> tuple[bool, list[str]]:
    if not t:
        raise NotModelledError("an incomplete label expression")
    if t[0] == "!":
        value, rest = _not(t[1:], labels)
        return not value, rest
    if t[0] == "(":
        value, rest = _iff(t[1:], labels)
        if rest[:1] != [")"]:
            raise NotModelledError("a label expression with unbalanced parentheses")
        return value, rest[1:]
    if t[0] in ("&&", "||", "->", "<->", ")"):
        raise NotModelledError(f"a label expression with {t[0]!r} where a label belongs")
    return t[0] in labels, t[1:]


# -------------------------------------------------------------------------------------------------
# Ant patterns (ArtifactArchiver's includes and excludes)

# Ant 1.10 DirectoryScanner.getDefaultExcludes(), on unless defaultExcludes is false.
ANT_DEFAULT_EXCLUDES = (
    "**/*~", "**/#*#", "**/.#*", "**/%*%", "**/._*", "**/CVS", "**/CVS/**", "**/.cvsignore", "**/SCCS",
    "**/SCCS/**", "**/vssver.scc", "**/.svn", "**/.svn/**", "**/.DS_Store", "**/.git", "**/.git/**",
    "**/.gitattributes", "**/.gitignore", "**/.gitmodules", "**/.hg", "**/.hg/**", "**/.hgignore",
    "**/.hgsub", "**/.hgsubstate", "**/.hgtags", "**/.bzr", "**/.bzr/**", "**/.bzrignore",
)


def _ant_patterns(text: str) -> list[str]:
    return [p for p in re.split(r"[,\s]+", text.strip()) if p]


def _ant_regex(pattern: str, case_sensitive: bool) -> re.Pattern[str]:
    pattern = pattern.replace("\\", "/").lstrip("/")
    if pattern.endswith("/"):
        pattern += "**"  # Ant: a trailing slash means everything below
    parts = pattern.split("/")
    rx = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            rx += ".*" if last else "(?:[^/]*/)*"
            continue
        rx += "".join("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c) for c in part)
        rx += "" if last else "/"
    return re.compile(rx + r"\Z", 0 if case_sensitive else re.IGNORECASE)


# -------------------------------------------------------------------------------------------------
# config.xml reading


def children_check(element: ET.Element, allowed: Iterable[str], where: str) -> None:
    """Refuse a child element the harness does not know (rather than skip what it might mean)."""
    known = set(allowed)
    for child in element:
        if child.tag not in known:
            raise NotModelledError(f"<{child.tag}> in {where}")


# Job properties that change nothing about how one build runs.
INERT_PROPERTIES = frozenset({
    "jenkins.model.BuildDiscarderProperty",
    "org.jenkinsci.plugins.workflow.job.properties.DurabilityHintJobProperty",
    "org.jenkinsci.plugins.workflow.job.properties.PipelineTriggersJobProperty",
})
DISABLE_CONCURRENT_PROPERTY = ("org.jenkinsci.plugins.workflow.job.properties."
                               "DisableConcurrentBuildsJobProperty")


def job_properties(root: ET.Element) -> set[str]:
    """The job's `<properties>` by class; refuses those that would change the build (parameters…)."""
    found: set[str] = set()
    properties = root.find("properties")
    for prop in [] if properties is None else list(properties):
        if prop.tag not in INERT_PROPERTIES and prop.tag != DISABLE_CONCURRENT_PROPERTY:
            raise NotModelledError(f"the job property {prop.tag}")
        if prop.tag == DISABLE_CONCURRENT_PROPERTY and text_of(prop, "abortPrevious") == "true":
            raise NotModelledError("disableConcurrentBuilds(abortPrevious: true)")
        found.add(prop.tag)
    return found


def text_of(element: ET.Element | None, tag: str, default: str | None = None) -> str | None:
    if element is None:
        return default
    value = element.findtext(tag)
    return default if value is None else value.strip()
