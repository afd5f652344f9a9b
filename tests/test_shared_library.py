"""The shared library (`jr render shared-library`) and the Jenkinsfile that uses it
(`jr render jenkinsfile --shared-library`): golden files, the CLI's writing rules, npm-groovy-lint,
and the registryPush step evaluated on real Groovy under the pipeline DSL of tests/support: end to
end against the real dockerd and registry, and with hostile values that must be refused by the step
or reach the shell only through the environment, unchanged.

Regenerate the golden files after an intended template change with
    JR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_shared_library.py -k golden
and review the diff.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, given, settings
from hypothesis import strategies as st

from jenkins_registry import escaping, reference, render
from jenkins_registry.cli.main import main
from jenkins_registry.errors import ConflictError, ExitCode, JrError, UsageError
from jenkins_registry.job_spec import BuildOptions, PushSpec
from jenkins_registry.render_library import (
    LIBRARY_FILES,
    LibraryDefaults,
    render_library_jenkinsfile,
    render_shared_library,
    write_library,
)
from tests.support import services
from tests.support.agent_build import run_build
from tests.support.agent_pipeline import GlobalLibrary, ShStep, set_global_libraries, sh_steps
from tests.support.jenkins_emulator import JenkinsEmulator
from tests.support.secret_checks import assert_absent, assert_absent_in_tree
from tests.test_agent_build import (
    ADMIN,
    TOKEN,
    add_credential,
    create_job,
    git_scm_xml,
    groovy_runtime,  # noqa: F401 - the fixture needs_groovy uses
    make_repo,
    needs_groovy,
    pipeline_scm_xml,
    pipeline_xml,
    userpass_xml,
)
from tests.test_escaping import HOSTILE
from tests.test_groovy_lint import _offline, linter  # noqa: F401 - the linter fixture
from tests.test_render import REGISTRY, TAGS
from tests.test_render_steps import valid_registry, valid_tag

GOLDEN = Path(__file__).resolve().parent / "golden" / "library"
SECRET = services.REGISTRY_PASSWORD
LIBRARY = "jenkins-registry"
CREDENTIAL = "docker-registry-login"

LIBRARY_CASES = {
    "configured": LibraryDefaults(registry=REGISTRY, credentials_id=CREDENTIAL),
    "bare-docker": LibraryDefaults(runner="docker"),
}


def library_push(**changes: Any) -> PushSpec:
    fields: dict[str, Any] = {"registry": REGISTRY, "image": "jenkins-test", "tags": TAGS}
    fields.update(changes)
    return PushSpec(**fields)


JENKINSFILE_CASES = {
    "jenkinsfile-example.groovy": lambda: render_library_jenkinsfile(library_push(), CREDENTIAL, LIBRARY),
    "jenkinsfile-options.groovy": lambda: render_library_jenkinsfile(
        library_push(runner="docker", tags=("latest", "b-${BUILD_NUMBER}", "${GIT_COMMIT}", "${lower}"),
                     build_options=BuildOptions(
                         dockerfile="docker/Dockerfile it's", context="src dir",
                         build_args=(("VERSION", "1.${BUILD_NUMBER}"), ("NOTE", "it's \"q\" \\ `id` ü")))),
        CREDENTIAL, f"{LIBRARY}@v1", agent="linux && docker", concurrent=False),
    "jenkinsfile-tag-from-git.groovy": lambda: render_library_jenkinsfile(
        library_push(tags=(), tag_from="git"), CREDENTIAL, LIBRARY),
}


# The bare library's step differs from the configured one's only in its three defaults (pinned by
# test_bare_library_differs_only_in_its_defaults), so only its README is a golden file.
BARE_ONLY = ("bare-docker/README.md",)


def golden_files() -> dict[str, str]:
    files = {f"{case}/{path}": text for case, defaults in LIBRARY_CASES.items()
             for path, text in render_shared_library(defaults).items()
             if case == "configured" or f"{case}/{path}" in BARE_ONLY}
    files.update({name: make() for name, make in JENKINSFILE_CASES.items()})
    return files


# ---------------------------------------------------------------------------------------------
# Golden files and the writing rules


@pytest.mark.parametrize("name", sorted(golden_files()))
def test_golden(name: str) -> None:
    rendered = golden_files()[name]
    path = GOLDEN / name
    if os.environ.get("JR_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(rendered, encoding="utf-8", newline="")
    assert path.exists(), f"{path} is missing: run with JR_UPDATE_GOLDEN=1 and review it"
    assert rendered == path.read_bytes().decode("utf-8"), (
        f"{name} differs from its golden file; if intended, regenerate with JR_UPDATE_GOLDEN=1")


def test_bare_library_differs_only_in_its_defaults() -> None:
    configured = render_shared_library(LIBRARY_CASES["configured"])
    bare = render_shared_library(LIBRARY_CASES["bare-docker"])
    assert bare["vars/registryPush.txt"] == configured["vars/registryPush.txt"]
    changed = [(mine, theirs) for mine, theirs in zip(bare["vars/registryPush.groovy"].splitlines(),
                                                        configured["vars/registryPush.groovy"].splitlines(),
                                                        strict=True) if mine != theirs]
    assert changed == [
        ("@Field static final String DEFAULT_REGISTRY = null",
         f"@Field static final String DEFAULT_REGISTRY = '{REGISTRY}'"),
        ("@Field static final String DEFAULT_CREDENTIALS_ID = null",
         f"@Field static final String DEFAULT_CREDENTIALS_ID = '{CREDENTIAL}'"),
        ("@Field static final String DEFAULT_RUNNER = 'docker'",
         "@Field static final String DEFAULT_RUNNER = 'jr'"),
    ]


def test_no_stale_golden_files() -> None:
    assert {p.relative_to(GOLDEN).as_posix() for p in GOLDEN.rglob("*") if p.is_file()} == set(golden_files())


def test_help_text_is_the_shipped_file_and_the_defaults_are_groovy_literals() -> None:
    files = render_shared_library(LibraryDefaults(registry="[::1]:5000", credentials_id="a.b-c_d"))
    assert set(files) == set(LIBRARY_FILES)
    groovy = files["vars/registryPush.groovy"]
    assert "DEFAULT_REGISTRY = '[::1]:5000'" in groovy and "DEFAULT_CREDENTIALS_ID = 'a.b-c_d'" in groovy
    assert "DEFAULT_RUNNER = 'jr'" in groovy
    bare = render_shared_library(LibraryDefaults())["vars/registryPush.groovy"]
    assert "DEFAULT_REGISTRY = null" in bare and "DEFAULT_CREDENTIALS_ID = null" in bare


@pytest.mark.parametrize(("defaults", "expected"), [
    (LibraryDefaults(registry="https://10.0.0.1:8082"), "scheme"),
    (LibraryDefaults(registry="host:99999"), "out of range"),
    (LibraryDefaults(registry="a\nb"), "control character"),
    (LibraryDefaults(credentials_id="it's"), "characters Jenkins does not accept"),
    (LibraryDefaults(runner="podman"), "Unknown runner"),  # type: ignore[arg-type]
])
def test_bad_defaults_are_refused(defaults: LibraryDefaults, expected: str) -> None:
    with pytest.raises(UsageError, match=expected) as caught:
        render_shared_library(defaults)
    assert caught.value.exit_code == ExitCode.USAGE


def run_jr(*argv: str) -> int:
    return main(list(argv), {})


def test_cli_writes_the_library_and_refuses_to_overwrite_other_content(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lib"
    assert run_jr("render", "shared-library", "--output", str(out), "--registry", REGISTRY,
                  "--credentials-id", CREDENTIAL) == 0
    expected = render_shared_library(LIBRARY_CASES["configured"])
    assert {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()} == expected
    # The same content again: nothing to do.
    assert run_jr("render", "shared-library", "-o", str(out), "--registry", REGISTRY,
                  "--credentials-id", CREDENTIAL) == 0
    # Other defaults would change the step: refused, and not one file is touched.
    (out / "README.md").write_text("my notes\n")
    assert run_jr("render", "shared-library", "-o", str(out), "--runner", "docker") == ExitCode.CONFLICT
    assert (out / "README.md").read_text() == "my notes\n"
    assert (out / "vars" / "registryPush.groovy").read_text() == expected["vars/registryPush.groovy"]
    assert "--force" in capsys.readouterr().err
    assert run_jr("render", "shared-library", "-o", str(out), "--runner", "docker", "--force") == 0
    assert {p.relative_to(out).as_posix(): p.read_text() for p in out.rglob("*") if p.is_file()} == \
        render_shared_library(LibraryDefaults(runner="docker"))


def test_cli_refuses_bad_values_before_writing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lib"
    assert run_jr("render", "shared-library", "-o", str(out), "--registry", "http://x/y") == ExitCode.USAGE
    assert not out.exists()
    (tmp_path / "file").write_text("x")
    assert run_jr("render", "shared-library", "-o", str(tmp_path / "file")) == ExitCode.USAGE
    assert "not a directory" in capsys.readouterr().err


def test_write_library_checks_every_file_first(tmp_path: Path) -> None:
    files = {"vars/a.groovy": "a\n", "vars/b.txt": "b\n"}
    (tmp_path / "vars").mkdir()
    (tmp_path / "vars" / "b.txt").write_text("other\n")
    with pytest.raises(ConflictError, match=r"vars/b\.txt"):
        write_library(files, tmp_path)
    assert not (tmp_path / "vars" / "a.groovy").exists()
    result = write_library(files, tmp_path, force=True)
    assert result.written == (tmp_path / "vars" / "a.groovy", tmp_path / "vars" / "b.txt")
    assert write_library(files, tmp_path).written == ()


def test_cli_renders_the_jenkinsfile_for_the_library(tmp_path: Path) -> None:
    target = tmp_path / "Jenkinsfile"
    assert run_jr("render", "jenkinsfile", "--registry", REGISTRY, "--repository", "jenkins-test",
                  "--credentials-id", CREDENTIAL, "--tag", "latest", "--tag", "${BUILD_NUMBER}",
                  "--shared-library", LIBRARY, "--output", str(target)) == 0
    assert target.read_text() == JENKINSFILE_CASES["jenkinsfile-example.groovy"]()


@pytest.mark.parametrize(("extra", "expected"), [
    (["--no-build"], "no --no-build"),
    (["--label", "a=b"], "--label"),
    (["--pull"], "--pull"),
    (["--oci-source", "https://git.example/x.git"], "--oci-source"),
    (["--tag", "${DOCKER_LOGIN_PASSWORD}"], "credential variable"),
    (["--build-arg", "X=$HOME"], "not a ${NAME} reference"),
    (["--tag-from", "git", "--runner", "docker"], "--tag-from git needs --runner jr"),
    (["--image", "local/app"], "--image"),
])
def test_options_the_step_does_not_take_are_refused(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], expected: str) -> None:
    target = tmp_path / "Jenkinsfile"
    assert run_jr("render", "jenkinsfile", "--registry", REGISTRY, "--repository", "jenkins-test",
                  "--credentials-id", CREDENTIAL, "--shared-library", LIBRARY, "-o", str(target),
                  *extra) == ExitCode.USAGE
    assert expected in capsys.readouterr().err
    assert not target.exists()


@pytest.mark.parametrize("library", ["", " lib", "lib\n"])
def test_bad_library_names_are_refused(library: str) -> None:
    with pytest.raises(UsageError):
        render_library_jenkinsfile(library_push(), CREDENTIAL, library)


# ---------------------------------------------------------------------------------------------
# npm-groovy-lint


def lint(directory: Path, command: str, names: list[str]) -> dict[str, list[dict[str, Any]]]:
    done = subprocess.run(
        [*_offline(), command, "--noserver", "--failon", "error", "--output", "json", "--loglevel",
         "warning", *names], cwd=directory, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HOME": str(directory)})
    start = done.stdout.find("{")
    assert start >= 0, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    report = json.loads(done.stdout[start:])
    found = {str(Path(path).relative_to(directory)): [e for e in result["errors"]
                                                      if e["severity"] in ("error", "warning")]
             for path, result in report["files"].items()}
    assert set(found) == set(names), "not every file was linted"
    return found


def test_library_and_jenkinsfiles_pass_npm_groovy_lint(tmp_path: Path, linter: str) -> None:  # noqa: F811
    files = {name: text for name, text in golden_files().items() if name.endswith(".groovy")}
    hostile = [value for value in HOSTILE if "\0" not in value and not escaping.is_control(value[:1] or "a")]
    files["hostile.groovy"] = render_library_jenkinsfile(
        library_push(build_options=BuildOptions(build_args=tuple(
            (f"A{n}", value) for n, value in enumerate(hostile)
            if not any(escaping.is_control(c) for c in value) and "$" not in value))), CREDENTIAL, "it's@x")
    files["broken.groovy"] = ("@Library('x') _\npipeline { agent any\n"
                              " stages { stage('x') { steps { sh 'a'b' } } } }\n")
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    found = lint(tmp_path, linter, sorted(files))
    assert [e["rule"] for e in found.pop("broken.groovy") if e["severity"] == "error"] == ["NglParseError"]
    errors = {name: [e for e in issues if e["severity"] == "error"] for name, issues in found.items()}
    assert errors == {name: [] for name in found}, json.dumps(errors, indent=1, ensure_ascii=False)
    # The library itself is clean of warnings too; a Jenkinsfile's script block nests deep enough
    # for CodeNarc's NestedBlockDepth warning, nothing else.
    for name, issues in found.items():
        allowed = set() if "/vars/" in f"/{name}" else {"NestedBlockDepth", "LineLength"}
        assert {e["rule"] for e in issues} <= allowed, (name, issues)


# ---------------------------------------------------------------------------------------------
# The step on real Groovy: shared parts


def commit_library(root: Path, defaults: LibraryDefaults) -> str:
    """The rendered library as the root of a git repository on `main`; its file:// URL."""
    write_library(render_shared_library(defaults), root)
    url, _ = make_repo(root.with_name(root.name + "-repo"), {
        path.relative_to(root).as_posix(): path.read_text() for path in root.rglob("*") if path.is_file()})
    return url


def library_scripts(groovy: str) -> dict[str, str]:
    """The fixed sh scripts of the rendered step (`@Field static final String X_SCRIPT = '''…'''`),
    read back as Groovy reads the literals."""
    from tests.test_escaping import groovy_value

    found = dict(re.findall(r"static final String (\w+_SCRIPT) = ('''.*?''')\n", groovy, re.DOTALL))
    assert set(found) == {"BUILD_SCRIPT", "JR_PUSH_SCRIPT", "DOCKER_PUSH_SCRIPT", "CLEANUP_SCRIPT"}
    return {name: groovy_value(literal) for name, literal in found.items()}


@pytest.fixture
def emu() -> Iterator[JenkinsEmulator]:
    with JenkinsEmulator(users={ADMIN: ("admin-pw", {TOKEN})}) as emulator:
        yield emulator


def client_of(emulator: JenkinsEmulator) -> Any:
    from jenkins_registry.jenkins_client import JenkinsSettings, connect
    from jenkins_registry.secret_types import Secret

    return connect(JenkinsSettings(url=emulator.url, user=ADMIN, token=Secret(TOKEN), timeout=10))


def engine_tags(docker_host: str, repository: str) -> list[str]:
    done = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}"],
                          env={**os.environ, "DOCKER_HOST": docker_host}, capture_output=True,
                          text=True, timeout=60, check=True)
    return sorted(ref for ref in done.stdout.split() if ref.rsplit(":", 1)[0].endswith(repository))


# ---------------------------------------------------------------------------------------------
# End to end: the rendered Jenkinsfile from SCM, the library from git, the real engine and registry


@needs_groovy
@pytest.mark.slow
@pytest.mark.parametrize("runner", ["jr", "docker"])
def test_library_step_builds_pushes_and_cleans_up_for_real(
        emu: JenkinsEmulator, docker_env: str, registry: services.Registry, tmp_path: Path,
        runner: str) -> None:
    image = f"library-e2e/{runner}"
    library_url = commit_library(tmp_path / "library", LibraryDefaults(credentials_id="reg"))
    set_global_libraries(emu, {LIBRARY: GlobalLibrary(url=library_url)})
    jenkinsfile = render_library_jenkinsfile(
        library_push(registry=registry.host, image=image, runner=runner,
                     tags=("latest", "${BUILD_NUMBER}", "b-${BUILD_NUMBER}"),
                     build_options=BuildOptions(dockerfile="docker/Dockerfile",
                                                build_args=(("GREETING", "hi ${BUILD_NUMBER} `id` 'q'"),))),
        "reg", LIBRARY)
    dockerfile = "FROM scratch\nARG GREETING\nLABEL greeting=$GREETING\nCOPY hello.txt /hello.txt\n"
    app_url, _ = make_repo(tmp_path / "app", {"Jenkinsfile": jenkinsfile, "docker/Dockerfile": dockerfile,
                                              "hello.txt": f"hello from {runner}\n"})
    client = client_of(emu)
    add_credential(client, userpass_xml("reg"))
    create_job(client, "app", pipeline_scm_xml(git_scm_xml(app_url), "Jenkinsfile"))
    venv_bin = str(Path(sys.executable).parent)  # jr-push, as installed in the project's venv
    environ = {"PATH": f"{venv_bin}:{os.environ['PATH']}", "HOME": os.environ["HOME"], "LC_ALL": "C.UTF-8",
               "DOCKER_HOST": docker_env, "DOCKER_CONFIG": os.environ["DOCKER_CONFIG"]}

    result = run_build(emu, "app", tmp_path / "ws", number=7, environ=environ)

    assert result.status == "SUCCESS", result.log
    assert f"Loading library {LIBRARY}@main" in result.log
    assert {"latest", "7", "b-7"} <= set(registry.tags(image))
    digest = registry.manifest_digest(image, "latest")
    assert digest is not None and digest == registry.manifest_digest(image, "b-7")
    assert result.artifacts() == ["image.digest"]
    assert (result.artifacts_dir / "image.digest").read_text() == digest + "\n"
    # Nothing this build tagged is left on the engine: neither its own local name nor HOST:PORT tags.
    assert engine_tags(docker_env, image) == []
    steps = [step for step in sh_steps(emu) if step.job == "app"]
    scripts = library_scripts(render_shared_library(LibraryDefaults(credentials_id="reg"))
                              ["vars/registryPush.groovy"])
    push_script = scripts["JR_PUSH_SCRIPT" if runner == "jr" else "DOCKER_PUSH_SCRIPT"]
    assert [step.script for step in steps] == [scripts["BUILD_SCRIPT"], push_script,
                                               scripts["CLEANUP_SCRIPT"]]
    # The login is bound for the push alone, and reaches it as the credential's value.
    assert ["DOCKER_LOGIN_PASSWORD" in step.env for step in steps] == [False, True, False]
    assert steps[1].env["DOCKER_LOGIN_PASSWORD"] == SECRET
    assert steps[0].env["JR_BUILD_ARGS"] == "GREETING=hi 7 `id` 'q'"
    assert_absent(SECRET, result.log, " ".join(result.jvm_argv), *(step.script for step in steps))
    assert_absent_in_tree(SECRET, [tmp_path / "ws", tmp_path / "library", result.artifacts_dir])


@needs_groovy
def test_unknown_library_and_version_fail_the_build(emu: JenkinsEmulator, tmp_path: Path) -> None:
    library_url = commit_library(tmp_path / "library", LibraryDefaults())
    set_global_libraries(emu, {LIBRARY: GlobalLibrary(url=library_url)})
    client = client_of(emu)
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ["HOME"]}
    for number, (name, expected) in enumerate([
            ("other", "Could not find any definition of libraries [other]"),
            (f"{LIBRARY}@nope", f"No version nope found for library {LIBRARY}")], start=1):
        create_job(client, f"job{number}", pipeline_xml(
            f"@Library('{name}') _\npipeline {{ agent any\n"
            " stages { stage('S') { steps { sh 'touch ran' } } } }"))
        result = run_build(emu, f"job{number}", tmp_path / f"ws{number}", environ=environ)
        assert result.status == "FAILURE" and expected in result.log
        assert not (tmp_path / f"ws{number}" / "ran").exists()


# ---------------------------------------------------------------------------------------------
# Hostile values, many in one Groovy run, against stand-in tools that record what they receive

STAND_IN = '''#!{python}
"""A stand-in for {tool}: records its argv (and a digest of any secret it gets), then succeeds."""
import hashlib, json, os, sys
record = {{"tool": "{tool}", "argv": sys.argv[1:], "case": os.environ.get("JR_CASE")}}
if "{tool}" == "docker" and sys.argv[1:2] == ["login"]:
    record["stdin_sha"] = hashlib.sha256(sys.stdin.buffer.read()).hexdigest()
if "{tool}" == "jr-push":
    record["password_sha"] = hashlib.sha256(os.environ["DOCKER_LOGIN_PASSWORD"].encode()).hexdigest()
    digest_file = sys.argv[sys.argv.index("--digest-file") + 1]
    with open(digest_file, "w") as out:
        out.write("sha256:" + "ab" * 32 + "\\n")
with open(os.environ["JR_TOOL_LOG"], "a") as log:
    log.write(json.dumps(record) + "\\n")
'''

KEYS = ("image", "registry", "credentialsId", "tags", "tagFrom", "dockerfile", "context", "buildArgs",
        "runner")
# Text Groovy source can hold (no lone surrogates), with the characters that matter to each target.
groovy_text = st.one_of(
    st.sampled_from([value for value in HOSTILE if not any(0xD800 <= ord(c) <= 0xDFFF for c in value)]
                    + ["${DOCKER_LOGIN_PASSWORD}", "$(cat /etc/passwd)", "a\\", "x\u2029y", "🐳"]),
    st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=20),
    st.text(alphabet=st.sampled_from("'\"\\$`{}()<>&;|*?~#!\n\r\t =-u0aA中"), max_size=20),
)
# Repository paths, valid or nearly (a first component with '.' before a '/' reads as a registry).
image_name = st.from_regex(r"[a-z0-9]{1,6}(?:(?:[._]|__|-+)[a-z0-9]{1,6}){0,2}(?:/[a-z0-9]{1,6}){0,2}",
                           fullmatch=True)
variable_name = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True)
# Text the step must accept and hand over unchanged: quotes, $(…), `…`, ${…}, backslashes, unicode.
# (Built by mapping, not filtering: one rejected draw among a run's many cases wastes the run.)
shell_text = groovy_text.map(lambda value: "".join(c for c in value if not escaping.is_control(c)))
path_text = shell_text.map(lambda value: "x" + value)
build_args = st.one_of(
    st.dictionaries(variable_name, shell_text, max_size=3),
    st.lists(st.tuples(variable_name, shell_text).map("=".join), max_size=3))
# A call the step must accept, its values as hostile as the shell allows...
_valid_case = st.fixed_dictionaries(
    {"image": image_name.map(lambda name: name.replace(".", "-") if "/" in name else name),
     "runner": st.sampled_from(["jr", "docker"])},
    optional={"registry": valid_registry, "credentialsId": st.just("reg"),
              "tags": st.lists(valid_tag, min_size=1, max_size=3), "tagFrom": st.just("git"),
              "dockerfile": path_text, "context": path_text, "buildArgs": build_args})
# ...and what may spoil one argument: hostile text anywhere, a wrong type or shape, an unknown key.
_spoilers: dict[str, st.SearchStrategy[Any]] = {
    "image": groovy_text, "runner": st.one_of(groovy_text, st.just(None)),
    "registry": st.one_of(groovy_text, st.sampled_from(
        ["[fe80::1:2]:5000", "[1::2::3]", "[::]", "a:0", "[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7::]",
         "[1.2.3.4]"])),
    # An id Jenkins would not accept (a valid id of a missing credential fails in withCredentials,
    # after the build: that is Jenkins' own check, not the step's).
    "credentialsId": groovy_text.filter(lambda value: not _ok(escaping.validate_credential_id, value)),
    "tags": st.one_of(st.lists(st.one_of(valid_tag, groovy_text), max_size=3), groovy_text),
    "dockerfile": groovy_text, "context": groovy_text,
    "tagFrom": st.one_of(groovy_text, st.just(""), st.just(["git"])),
    "buildArgs": st.one_of(st.dictionaries(groovy_text, groovy_text, min_size=1, max_size=2),
                           st.lists(groovy_text, min_size=1, max_size=2), groovy_text),
    "pushIt": st.booleans(),
}
case_strategy = st.one_of(_valid_case, st.tuples(_valid_case, st.sampled_from(sorted(_spoilers))).flatmap(
    lambda pair: _spoilers[pair[1]].map(lambda value: {**pair[0], pair[1]: value})))


def groovy_literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return escaping.groovy_string(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(groovy_literal(item) for item in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "[:]"
        return "[" + ", ".join(f"({groovy_literal(k)}): {groovy_literal(v)}" for k, v in value.items()) + "]"
    raise AssertionError(value)


def _ok(check: Any, *args: Any) -> bool:
    try:
        check(*args)
    except JrError:
        return False
    return True


def _text_ok(value: object) -> bool:
    return isinstance(value, str) and not any(escaping.is_control(c) for c in value)


def _path_ok(value: object) -> bool:
    return _text_ok(value) and value != "" and not str(value).startswith("-")


def expected_settings(case: Mapping[str, Any]) -> dict[str, Any] | None:
    """What registryPush must do with *case*, by jenkins-registry's own rules (reference.py,
    escaping.py): None when it must refuse, else the values the shell must receive."""
    if set(case) - set(KEYS):
        return None
    image, registry = case["image"], case.get("registry", REGISTRY)
    tag_from, runner = case.get("tagFrom"), case.get("runner", "jr")
    tags = case.get("tags", [] if tag_from is not None else ["latest"])
    if tag_from is not None and (tag_from != "git" or runner != "jr"):
        return None
    if not (_ok(render.validate_image, image) and _ok(render.validate_registry, registry)
            and _ok(escaping.validate_credential_id, case.get("credentialsId", "reg"))
            and runner in ("jr", "docker") and isinstance(tags, list) and (tags or tag_from)
            and all(_text_ok(tag) and _ok(reference.parse_tag, tag) for tag in tags)
            and ("dockerfile" not in case or _path_ok(case["dockerfile"]))
            and _path_ok(case.get("context", "."))):
        return None
    raw = case.get("buildArgs", [])
    if not isinstance(raw, dict | list):  # a string, even an empty one, is neither form
        return None
    pairs = list(raw.items()) if isinstance(raw, dict) else [
        tuple(entry.split("=", 1)) if "=" in entry else None for entry in raw]
    for pair in pairs:
        if pair is None or not all(_text_ok(part) for part in pair) \
                or not escaping.VARIABLE_NAME.fullmatch(pair[0]):
            return None
    return {"image": image, "registry": registry, "tags": list(dict.fromkeys(tags)), "runner": runner,
            "tag_from": tag_from,
            "dockerfile": case.get("dockerfile"), "context": case.get("context", "."),
            "build_args": [f"{name}={value}" for name, value in pairs]}


def cases_jenkinsfile(cases: list[dict[str, Any]]) -> str:
    """One pipeline calling registryPush once per case; each outcome echoed as one JSON line."""
    calls = []
    for number, case in enumerate(cases):
        calls.append(f"""
                    withEnv(['JR_CASE={number}']) {{
                        try {{
                            String digest = registryPush({groovy_literal(case)})
                            echo('JR-OUTCOME ' + groovy.json.JsonOutput.toJson([case: {number},
                                                                                digest: digest]))
                        }} catch (StepFailure e) {{
                            echo('JR-OUTCOME ' + groovy.json.JsonOutput.toJson([case: {number},
                                                                                refused: e.message]))
                        }}
                    }}""")
    return (f"@Library('{LIBRARY}') _\npipeline {{\n    agent any\n    stages {{\n        stage('Cases') {{\n"
            "            steps {\n                script {" + "".join(calls)
            + "\n                }\n            }\n        }\n    }\n}\n")


@pytest.fixture(scope="module")
def library_for_cases(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, str]]:
    root = tmp_path_factory.mktemp("cases") / "library"
    defaults = LibraryDefaults(registry=REGISTRY, credentials_id="reg")
    url = commit_library(root, defaults)
    return url, library_scripts(render_shared_library(defaults)["vars/registryPush.groovy"])


def local_name(image: str, build_tag: str) -> str:
    safe = re.sub(rb"[^A-Za-z0-9_.-]", b"_", build_tag.encode())[-119:].decode()
    return f"{image}:jr-build-{safe}"


def expected_tool_calls(want: Mapping[str, Any], digest_file: str, local: str) -> list[list[str]]:
    build = ["build", "--tag", local]
    if want["dockerfile"] is not None:
        build += ["--file", want["dockerfile"]]
    for entry in want["build_args"]:
        build += ["--build-arg", entry]
    calls = [["docker", *build, want["context"]]]
    target = f"{want['registry']}/{want['image']}"
    if want["runner"] == "jr":
        push = ["--image", local, "--name", want["image"], "--registry", want["registry"],
                "--digest-file", digest_file]
        for tag in want["tags"]:
            push += ["--tag", tag]
        if want["tag_from"] is not None:
            push += ["--tag-from", want["tag_from"]]
        calls.append(["jr-push", *push])
    else:
        calls.append(["docker", "login", "--username", services.REGISTRY_USER, "--password-stdin",
                      want["registry"]])
        for tag in want["tags"]:
            calls += [["docker", "tag", local, f"{target}:{tag}"], ["docker", "push", f"{target}:{tag}"]]
        calls += [["docker", "image", "inspect", "--format",
                   "{{range .RepoDigests}}{{println .}}{{end}}", local],
                  ["docker", "logout", want["registry"]]]
    calls.append(["docker", "image", "rm", "--no-prune", local])
    if want["runner"] == "docker":
        calls += [["docker", "image", "rm", "--no-prune", f"{target}:{tag}"] for tag in want["tags"]]
    return calls


@needs_groovy
# Each example is one Groovy run of many cases; a failure names its case, so no slow shrinking.
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck),
          phases=[Phase.explicit, Phase.reuse, Phase.generate])
@given(st.lists(case_strategy, min_size=12, max_size=20))
def test_hostile_arguments_are_refused_or_reach_the_shell_unchanged(
        library_for_cases: tuple[str, dict[str, str]], cases: list[dict[str, Any]]) -> None:
    library_url, scripts = library_for_cases
    with tempfile.TemporaryDirectory() as tmp, \
            JenkinsEmulator(users={ADMIN: ("admin-pw", {TOKEN})}) as emulator:
        root = Path(tmp)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        for tool in ("docker", "jr-push"):
            (bin_dir / tool).write_text(STAND_IN.format(python=sys.executable, tool=tool))
            (bin_dir / tool).chmod(0o755)
        set_global_libraries(emulator, {LIBRARY: GlobalLibrary(url=library_url)})
        client = client_of(emulator)
        add_credential(client, userpass_xml("reg"))
        create_job(client, "cases", pipeline_xml(cases_jenkinsfile(cases)))
        tool_log = root / "tools.jsonl"
        environ = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": os.environ["HOME"],
                   "JR_TOOL_LOG": str(tool_log)}

        result = run_build(emulator, "cases", root / "ws", number=3, environ=environ)

        assert result.status == "SUCCESS", result.log[-3000:]
        outcomes = [json.loads(line.split("JR-OUTCOME ", 1)[1]) for line in result.log.splitlines()
                    if line.startswith("JR-OUTCOME ")]
        assert [outcome["case"] for outcome in outcomes] == list(range(len(cases)))
        steps = sh_steps(emulator)
        tools = [json.loads(line) for line in tool_log.read_text().splitlines()] if tool_log.exists() else []
        secret_sha = hashlib.sha256(SECRET.encode()).hexdigest()
        local = local_name("", result.env["BUILD_TAG"])
        for case, outcome in zip(cases, outcomes, strict=True):
            want = expected_settings(case)
            mine = [step for step in steps if step.env.get("JR_CASE") == str(outcome["case"])]
            calls = [call for call in tools if call["case"] == str(outcome["case"])]
            event("refused" if want is None else f"accepted, runner {want['runner']}")
            if want is None:
                assert "refused" in outcome, (case, outcome)
                assert outcome["refused"].startswith("registryPush: ")
                assert mine == [] and calls == [], case  # refused before any sh
                continue
            assert "refused" not in outcome, (case, outcome)
            push = scripts["JR_PUSH_SCRIPT" if want["runner"] == "jr" else "DOCKER_PUSH_SCRIPT"]
            assert [step.script for step in mine] == [scripts["BUILD_SCRIPT"], push,
                                                      scripts["CLEANUP_SCRIPT"]]
            check_environment(mine, want)
            digest_file = mine[0].env["JR_DIGEST_FILE"]
            assert [call["tool"] + "\0" + "\0".join(call["argv"]) for call in calls] == [
                "\0".join(argv) for argv in expected_tool_calls(want, digest_file, want["image"] + local)]
            assert all(call.get("password_sha", secret_sha) == secret_sha
                       and call.get("stdin_sha", secret_sha) == secret_sha for call in calls)
            assert outcome["digest"] == ("sha256:" + "ab" * 32 if want["runner"] == "jr" else None)
        assert_absent(SECRET, result.log, *(step.script for step in steps), tool_log.read_text()
                      if tool_log.exists() else "")


def check_environment(mine: list[ShStep], want: Mapping[str, Any]) -> None:
    """The values reached the shell through the environment, exactly; the login only for the push."""
    expected = {"JR_IMAGE": want["image"], "JR_REGISTRY": want["registry"],
                "JR_TAGS": "\n".join(want["tags"]) or None, "JR_TAG_FROM": want["tag_from"],
                "JR_DOCKERFILE": want["dockerfile"], "JR_CONTEXT": want["context"],
                "JR_BUILD_ARGS": "\n".join(want["build_args"]) or None, "JR_RUNNER": want["runner"]}
    for step in mine:
        assert {name: step.env.get(name) for name in expected} == expected
    assert ["DOCKER_LOGIN_PASSWORD" in step.env for step in mine] == [False, True, False]


def test_expected_settings_follow_the_python_rules() -> None:
    """The oracle itself, on a few known cases (so the property test cannot pass vacuously)."""
    assert expected_settings({"image": "app"}) is not None
    assert expected_settings({"image": "app", "tags": ["a", "a", "b"]})["tags"] == ["a", "b"]  # type: ignore[index]
    for bad in ({"image": "App"}, {"image": "app", "tags": []}, {"image": "app", "tags": ["-x"]},
                {"image": "app", "buildArgs": ["X"]}, {"image": "app", "buildArgs": {"1X": "v"}},
                {"image": "app", "buildArgs": {"X": "a\nb"}}, {"image": "app", "dockerfile": "-f"},
                {"image": "app", "registry": "[1::2::3]"}, {"image": "app", "runner": "podman"},
                {"image": "app", "pushIt": True}, {"image": "app", "registry": "a:0"},
                {"image": "app", "tagFrom": "svn"}, {"image": "app", "tagFrom": "git", "runner": "docker"}):
        assert expected_settings(bad) is None, bad
    assert expected_settings({"image": "app", "buildArgs": {"X": "$(id) `x` '\" ${Y}"}}) is not None
    assert expected_settings({"image": "app", "tagFrom": "git"})["tags"] == []  # type: ignore[index]
    assert expected_settings({"image": "app", "buildArgs": ""}) is None


def test_package_data_ships_every_library_template() -> None:
    """setup.cfg's package_data patterns cover each file under templates/library (the wheel test
    checks the installed copy of the top-level templates)."""
    import configparser
    from fnmatch import fnmatch

    config = configparser.ConfigParser()
    config.read(Path(__file__).resolve().parent.parent / "setup.cfg")
    patterns = [p.strip() for p in config["options.package_data"]["jenkins_registry.templates"].split(",")]
    templates = Path(__file__).resolve().parent.parent / "templates"
    shipped = [p.relative_to(templates).as_posix() for p in (templates / "library").rglob("*") if p.is_file()]
    assert shipped and all(any(fnmatch(name, pattern) and name.count("/") == pattern.count("/")
                               for pattern in patterns) for name in shipped), (shipped, patterns)
    assert set(LIBRARY_FILES.values()) | {"library/Jenkinsfile.j2"} == set(shipped)
