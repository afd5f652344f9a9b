"""A pipeline build (`<flow-definition>`, spec §3b) as the agent harness runs it.

The Jenkinsfile runs in one JVM per build on the Groovy runtime npm-groovy-lint ships, under the DSL
of pipeline_dsl.groovy. The JVM asks this module, one JSON object a line over its stdin/stdout, to do
what touches the agent (sh, checkout, bindings, files, artifacts) and reports the result. The JVM gets
no secret: its argv holds paths only, its environment is minimal, and bound credentials are added
here to the environment of each `sh` process.

`sh` runs like durable-task's BourneShellScript: the script in `<cwd>@tmp/durable-XXXXXXXX/script.sh`,
`sh -xe script.sh` unless it starts with `#!` (then executed as is), output into the log (stdout
returned instead with returnStdout), the environment the build's plus withEnv/withCredentials layers.

Shared libraries: `set_global_libraries(emulator, {"name": GlobalLibrary(url)})` is the controller's
"Global Pipeline Libraries" configuration (what JCasC's `globalLibraries` sets). A Jenkinsfile's
`@Library('name[@version]') _` then has the library's git repository checked out at that version
(default `default_version`) into the build's `libs/` directory, and its `vars/*.groovy` become global
steps. Only `vars/` is modelled (`src/` refuses with NotModelledError). `sh_steps(emulator)` lists
every `sh` step the controller's pipelines ran: the script text and the environment it got.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import shutil
import stat
import subprocess
import tempfile
import threading
import weakref
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tests.support.agent_build import (
    DISABLE_CONCURRENT_PROPERTY,
    Bound,
    Build,
    HarnessError,
    NotModelledError,
    StepError,
    children_check,
    job_properties,
    new_control_dir,
    override_env,
    removed_after,
    text_of,
)
from tests.support.agent_git import GitSource, checkout, parse_git_scm, read_file
from tests.support.groovy_runtime import find_linter
from tests.support.jenkins_emulator import JenkinsEmulator

DSL = Path(__file__).with_name("pipeline_dsl.groovy")
FLOW_ELEMENTS = ("actions", "description", "keepDependencies", "properties", "definition", "triggers",
                 "disabled", "quietPeriod", "authToken", "displayName", "resumeBlocked")
INLINE = "org.jenkinsci.plugins.workflow.cps.CpsFlowDefinition"
FROM_SCM = "org.jenkinsci.plugins.workflow.cps.CpsScmFlowDefinition"
# A short-lived JVM: the client compiler only and a small serial heap start fastest.
JVM_OPTIONS = ("-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Xss4m", "-Dfile.encoding=UTF-8")


def groovy_classpath() -> str | None:
    """The Groovy runtime (groovy and groovy-json jars) inside npm-groovy-lint, or None."""
    linter = find_linter()
    if linter is None:
        return None
    lib = Path(os.path.realpath(linter)).parent.parent / "lib" / "java" / "groovy" / "lib"
    groovy = sorted(lib.glob("groovy-[0-9]*.jar"))
    groovy_json = sorted(lib.glob("groovy-json-[0-9]*.jar"))
    if not groovy or not groovy_json:
        return None
    return os.pathsep.join([str(groovy[-1]), str(groovy_json[-1])])


_COMPILE_LOCK = threading.Lock()


# -- the controller's shared libraries, and what its sh steps received ---------------------------------


@dataclass(frozen=True, kw_only=True)
class GlobalLibrary:
    """A global (trusted) library retrieved from git ("Modern SCM"), as JCasC's `globalLibraries`
    declares it: `@Library('NAME')` loads *default_version*, `@Library('NAME@REF')` another ref."""

    url: str
    default_version: str = "main"
    allow_version_override: bool = True


@dataclass(frozen=True)
class ShStep:
    """One `sh` step as the agent ran it: the script text, its directory and its whole environment
    (bound credentials included: compare, never print)."""

    script: str
    cwd: str
    env: Mapping[str, str] = field(repr=False)
    job: str
    number: int


@dataclass
class _Controller:
    libraries: dict[str, GlobalLibrary] = field(default_factory=dict)
    sh_steps: list[ShStep] = field(default_factory=list)


_CONTROLLERS: weakref.WeakKeyDictionary[JenkinsEmulator, _Controller] = weakref.WeakKeyDictionary()
_CONTROLLERS_LOCK = threading.Lock()


def _controller(jenkins: JenkinsEmulator) -> _Controller:
    with _CONTROLLERS_LOCK:
        return _CONTROLLERS.setdefault(jenkins, _Controller())


def set_global_libraries(jenkins: JenkinsEmulator, libraries: Mapping[str, GlobalLibrary]) -> None:
    """The controller's Global Pipeline Libraries (replacing any set before)."""
    controller = _controller(jenkins)
    controller.libraries = dict(libraries)


def sh_steps(jenkins: JenkinsEmulator) -> list[ShStep]:
    """Every sh step the pipelines of *jenkins* have run so far, in order."""
    with _CONTROLLERS_LOCK:
        return list(_CONTROLLERS.get(jenkins, _Controller()).sh_steps)


def compiled_dsl(java: str, classpath: str) -> Path:
    """pipeline_dsl.groovy compiled once (cached by content under the temporary directory): a build
    then starts its JVM on classes instead of compiling the DSL again (about a second saved)."""
    digest = hashlib.sha256(DSL.read_bytes() + classpath.encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"jr-agent-dsl-{os.getuid()}-{digest}"
    with _COMPILE_LOCK:
        if (target / "pipeline_dsl.class").is_file():
            return target
        staging = Path(tempfile.mkdtemp(prefix=target.name + "-", dir=target.parent))
        compiler = "org.codehaus.groovy.tools.FileSystemCompiler"
        done = subprocess.run([java, *JVM_OPTIONS, "-cp", classpath, compiler, "-d", str(staging), str(DSL)],
                              capture_output=True, text=True, timeout=300, check=False)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            raise HarnessError(f"{DSL.name} does not compile:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        try:
            staging.rename(target)
        except OSError:  # another process compiled it meanwhile
            shutil.rmtree(staging, ignore_errors=True)
        return target


def _definition(root: ET.Element) -> tuple[str | None, GitSource | None, str]:
    """(inline script, SCM source, script path) of the flow definition."""
    definition = root.find("definition")
    if definition is None:
        raise NotModelledError("a pipeline job without <definition>")
    kind = definition.get("class")
    if kind == INLINE:
        children_check(definition, ("script", "sandbox"), "CpsFlowDefinition")
        if text_of(definition, "sandbox") != "true":
            raise NotModelledError("a pipeline outside the sandbox (script approval)")
        return definition.findtext("script") or "", None, ""
    if kind == FROM_SCM:
        children_check(definition, ("scm", "scriptPath", "lightweight"), "CpsScmFlowDefinition")
        scm = definition.find("scm")
        if scm is None:
            raise NotModelledError("CpsScmFlowDefinition without <scm>")
        return None, parse_git_scm(scm), text_of(definition, "scriptPath") or "Jenkinsfile"
    raise NotModelledError(f"the flow definition {kind!r}")


def run_pipeline(build: Build, root: ET.Element) -> str:
    """Run the pipeline *root* (a parsed config.xml); returns the build's result."""
    children_check(root, FLOW_ELEMENTS, "a pipeline job")
    if DISABLE_CONCURRENT_PROPERTY in job_properties(root):
        build.hold_job_lock()
    script, source, script_path = _definition(root)
    classpath = groovy_classpath()
    java = shutil.which("java")
    if classpath is None or java is None:
        raise HarnessError("Pipelines need java and npm-groovy-lint's Groovy runtime on PATH "
                           "(scripts/test.sh installs it into .cache/npm).")
    if source is not None:
        try:
            script = read_file(build, source, script_path)
        except StepError as exc:
            build.say(f"ERROR: {exc}")
            return "FAILURE"
    assert script is not None
    with tempfile.TemporaryDirectory(prefix="jr-groovy-") as home:
        argv = (java, *JVM_OPTIONS, "-cp", os.pathsep.join([classpath, str(compiled_dsl(java, classpath))]),
                "pipeline_dsl")
        build.jvm_argv = argv
        session = _Session(build, source)
        return session.run(argv, {"PATH": os.defpath, "HOME": home, "LC_ALL": "C.UTF-8"}, {
            "script": script, "env": build.base_env(), "hasScm": source is not None, "number": build.number,
            "jobName": build.job, "buildUrl": f"{build.job_url}{build.number}/"})


class _Session:
    """One JVM and the requests it makes."""

    def __init__(self, build: Build, source: GitSource | None) -> None:
        self.build = build
        self.source = source
        self.bindings: list[Bound] = []
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []

    def run(self, argv: tuple[str, ...], jvm_env: Mapping[str, str], init: Mapping[str, Any]) -> str:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=dict(jvm_env), text=True, encoding="utf-8", start_new_session=True)
        assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
        readers = [threading.Thread(target=self._pump, args=(proc.stdout, self.lines), daemon=True),
                   threading.Thread(target=self._drain, args=(proc.stderr,), daemon=True)]
        for reader in readers:
            reader.start()
        try:
            self._send(proc.stdin, init)
            for request in self._requests():
                reply = self._handle(request)
                if reply is not None:
                    self._send(proc.stdin, reply)
                if request["op"] == "finish":
                    proc.wait(timeout=30)
                    return str(request["result"])
            raise HarnessError("The Groovy JVM ended without a result:\n" + "".join(self.stderr)[-4000:],
                               self.build.log_text())
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                stream.close()
            for reader in readers:
                reader.join(timeout=10)

    @staticmethod
    def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    def _drain(self, stream: IO[str]) -> None:
        for line in stream:
            if len(self.stderr) < 1000:
                self.stderr.append(line)

    @staticmethod
    def _send(stdin: IO[str], message: Mapping[str, Any]) -> None:
        stdin.write(json.dumps(message) + "\n")
        stdin.flush()

    def _requests(self) -> Iterator[dict[str, Any]]:
        while True:
            try:
                line = self.lines.get(timeout=self.build.remaining())
            except queue.Empty:
                raise self.build.timed_out() from None
            if line is None:
                return
            yield json.loads(line)

    # -- requests ---------------------------------------------------------------------------------
    def _handle(self, request: dict[str, Any]) -> dict[str, Any] | None:
        op = request["op"]
        if op == "log":
            self.build.say(request["text"])
            return None
        if op == "not_modelled":
            raise NotModelledError(str(request["what"]), self.build.log_text())
        if op == "finish":
            return {}
        try:
            handler = getattr(self, f"_op_{op}", None)
            if handler is None:
                raise HarnessError(f"The Groovy side asked for an unknown operation {op!r}.")
            reply: dict[str, Any] = handler(request)
            return reply
        except StepError as exc:
            return {"error": str(exc)}

    def _op_options(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("disableConcurrentBuilds"):
            self.build.hold_job_lock()
        if request.get("timeoutSeconds"):
            self.build.limit_to(float(request["timeoutSeconds"]))
        return {}

    def _op_node(self, request: dict[str, Any]) -> dict[str, Any]:
        self.build.require_label(request.get("label"))
        self.build.workspace.mkdir(parents=True, exist_ok=True)
        self.build.say(f"Running on {self.build.node_name} in {self.build.workspace}")
        env = self.build.node_env()
        self.build.result_env = {**self.build.base_env(), **env}
        return {"workspace": str(self.build.workspace), "env": env}

    def _op_bind(self, request: dict[str, Any]) -> dict[str, Any]:
        bound = self.build.bind(request["bindings"])
        self.bindings.append(bound)
        if bound.secret:  # BindingStep: names only
            self.build.say("Masking supported pattern matches of "
                           + " or ".join(f"${name}" for name in bound.secret))
        return {"handle": len(self.bindings) - 1, "variables": bound.names}

    def _env(self, layers: list[dict[str, Any]]) -> dict[str, str]:
        env = self.build.base_env()
        for layer in layers:
            if "env" in layer:
                for key, value in layer["env"].items():
                    override_env(env, key, value)
            else:
                bound = self.bindings[int(layer["bind"])]
                env.update(bound.public)
                env.update(bound.secret)
        return env

    def _op_sh(self, request: dict[str, Any]) -> dict[str, Any]:
        cwd = Path(request["cwd"])
        cwd.mkdir(parents=True, exist_ok=True)
        script_text: str = request["script"]
        with removed_after(new_control_dir(cwd)) as control:
            script = control / "script.sh"
            script.write_text(script_text, encoding="utf-8")
            if script_text.startswith("#!"):
                script.chmod(script.stat().st_mode | stat.S_IXUSR)
                argv = [str(script)]
            else:
                argv = ["sh", "-xe", str(script)]
            env = {**self._env(request["layers"]), "JENKINS_SERVER_COOKIE": f"durable-{control.name[8:]}"}
            with _CONTROLLERS_LOCK:
                _CONTROLLERS.setdefault(self.build.jenkins, _Controller()).sh_steps.append(
                    ShStep(script_text, str(cwd), dict(env), self.build.job, self.build.number))
            status, stdout = self.build.run_process(argv, cwd=cwd, env=env,
                                                    capture_stdout=bool(request.get("returnStdout")))
        return {"status": status, "stdout": stdout}

    def _op_checkout(self, request: dict[str, Any]) -> dict[str, Any]:
        kind = request["kind"]
        if kind == "scm":
            assert self.source is not None  # the DSL only offers `scm` to a pipeline from SCM
            source = self.source
        else:
            source = GitSource(url=request["url"], credentials_id=request.get("credentialsId"),
                               branches=tuple(request["branches"]) or ("*/master",),
                               local_branch=request.get("localBranch"))
            if len(source.branches) > 1:
                raise NotModelledError("several branch specs", self.build.log_text())
        env = checkout(self.build, source, Path(request["cwd"]))
        if kind == "scm":
            self.build.result_env = {**self.build.result_env, **env}
        return {"env": env}

    def _op_archive(self, request: dict[str, Any]) -> dict[str, Any]:
        self.build.archive(Path(request["cwd"]), request["artifacts"], excludes=request.get("excludes"),
                           allow_empty=bool(request.get("allowEmpty")),
                           case_sensitive=bool(request.get("caseSensitive", True)),
                           default_excludes=bool(request.get("defaultExcludes", True)))
        return {}

    def _op_deleteDir(self, request: dict[str, Any]) -> dict[str, Any]:
        shutil.rmtree(request["cwd"], ignore_errors=True)
        return {}

    @staticmethod
    def _path(request: dict[str, Any]) -> Path:
        return Path(str(request["cwd"])) / str(request["file"])

    def _op_writeFile(self, request: dict[str, Any]) -> dict[str, Any]:
        path = self._path(request)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(request["text"], encoding="utf-8")
        return {}

    def _op_readFile(self, request: dict[str, Any]) -> dict[str, Any]:
        path = self._path(request)
        if not path.is_file():
            raise StepError(f"java.nio.file.NoSuchFileException: {path}")
        return {"text": path.read_text(encoding="utf-8")}

    def _op_fileExists(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"exists": self._path(request).exists()}

    def _op_library(self, request: dict[str, Any]) -> dict[str, Any]:
        """pipeline-groovy-lib's LibraryAdder: the library from the controller's configuration,
        checked out into the build's `libs/` directory; its vars/*.groovy sources."""
        spec = str(request["spec"])
        name, at, version = spec.partition("@")
        library = _controller(self.build.jenkins).libraries.get(name)
        if library is None:
            raise StepError(f"Could not find any definition of libraries [{spec}]")
        if at and not library.allow_version_override:
            raise StepError(f"Version override not permitted for library {name}")
        version = version or library.default_version
        self.build.say(f"Loading library {name}@{version}")
        target = self.build.artifacts_dir.parent / "libs" / hashlib.sha256(name.encode()).hexdigest()
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        self._git(None, "clone", "-q", "--no-checkout", "--", library.url, str(target))
        self.build.say(f"Attempting to resolve {version} from remote references...")
        for ref in (f"refs/remotes/origin/{version}", f"refs/tags/{version}", version):
            done = self._git(target, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
            if done.returncode == 0:
                commit = done.stdout.strip()
                break
        else:
            raise StepError(f"No version {version} found for library {name}")
        self._git(target, "checkout", "-q", "--detach", commit)
        self.build.say(f"Checking out Revision {commit} ({version})")
        if (target / "src").exists():
            raise NotModelledError(f"the src/ classes of library {name}", self.build.log_text())
        vars_dir = target / "vars"
        if not vars_dir.is_dir():
            raise StepError(f"Library {name} expected to contain at least one of src or vars directories")
        return {"vars": {path.stem: path.read_text(encoding="utf-8")
                         for path in sorted(vars_dir.glob("*.groovy"))}}

    def _git(self, cwd: Path | None, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=120,
                              env={**self.build.environ, "GIT_TERMINAL_PROMPT": "0"}, check=False)
        if check and done.returncode != 0:
            raise StepError(f"git {args[0]} of a library failed: {done.stderr.strip()[-500:]}")
        return done
