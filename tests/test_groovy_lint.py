"""Every rendered Jenkinsfile goes through a real Groovy parser: npm-groovy-lint 15 (`--failon error`).

npm-groovy-lint starts a JVM, so all files go into one invocation, with `--noserver` (no CodeNarc
server is left listening) and nothing fetched from the network. The Groovy runtime it ships also
evaluates the escaped literals, so hostile values are checked for their value, not only parsed.
The linter is part of what the suite needs: found on PATH or where scripts/test.sh installs it
(.cache/npm, or $JR_NPM_PREFIX); when it (or java) is missing the tests fail, saying how to install
it, rather than skip: a skip would let a plain `pytest` run pass without any Groovy parsing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from jenkins_registry import escaping, render
from jenkins_registry.errors import UsageError
from jenkins_registry.job_spec import BuildOptions, ScmSpec
from tests.support.groovy_runtime import INSTALL, find_linter
from tests.test_escaping import HOSTILE, parse_xml
from tests.test_render import JENKINSFILE_CASES, JOB_CASES, ROOT, Pipeline, push

LINTER = find_linter()


@pytest.fixture
def linter() -> str:
    if LINTER is None:
        pytest.fail("npm-groovy-lint, the Groovy parser these tests need, is neither on PATH nor in "
                    f".cache/npm/bin: {INSTALL}.", pytrace=False)
    return LINTER


@pytest.fixture
def java() -> str:
    found = shutil.which("java")
    if found is None:
        pytest.fail(f"java, which runs the Groovy parser, is not on PATH: {INSTALL}.", pytrace=False)
    return found

# Values Groovy source can hold once escaped (a lone surrogate has no UTF-8 form at all).
GROOVY_HOSTILE = [value for value in HOSTILE if not any(0xD800 <= ord(c) <= 0xDFFF for c in value)]

BROKEN = "pipeline {\n    agent any\n    stages { stage('x') { steps { sh 'echo 'oops' } } }\n}\n"


def _hostile_jenkinsfile() -> str:
    lines = ["pipeline {", "    agent any", "    stages {", "        stage('Hostile') {",
             "            steps {"]
    for value in GROOVY_HOSTILE:
        lines.append(f"                sh {escaping.groovy_string(value)}")
        lines.append(f"                sh {escaping.groovy_block(value)}")
        word = escaping.shell_word(value.replace("\0", ""))
        lines.append(f"                sh {escaping.groovy_string('printf %s ' + word)}")
    lines += ["            }", "        }", "    }", "}", ""]
    return "\n".join(lines)


def _hostile_pipelines() -> dict[str, str]:
    """Rendered Jenkinsfiles carrying each hostile value the renderer accepts, wherever a value
    lands in Groovy: build arguments and labels (shell words in the triple-quoted sh blocks), the
    checkout's URL and branch, the agent label."""
    files: dict[str, str] = {}
    for number, value in enumerate(GROOVY_HOSTILE):
        case = Pipeline(
            push=push(build_options=BuildOptions(build_args=(("A", value),), labels=(("k", value),),
                                                 dockerfile=value, context=value, oci_source=value)),
            agent=value, concurrent=bool(number % 2),
            checkout=ScmSpec(url=value, branch=value, credentials_id="git-login"))
        for attempt in (case, Pipeline(push=push(runner="docker"), agent=value,
                                       checkout=ScmSpec(url=value, branch=value))):
            try:
                files[f"hostile-{number}-{len(files)}.Jenkinsfile"] = attempt.render()
            except UsageError:
                continue
    assert len(files) > len(GROOVY_HOSTILE), "most hostile values should be accepted somewhere"
    return files


def _offline() -> list[str]:
    """`unshare --net` where this user may (root on CI): the linter then provably needs no network."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    probe = subprocess.run([unshare, "--net", "true"], capture_output=True, timeout=30)
    return [unshare, "--net"] if probe.returncode == 0 else []


def test_rendered_jenkinsfiles_parse(tmp_path: Path, linter: str) -> None:
    files: dict[str, str] = {
        f"{name}.Jenkinsfile": case.render() for name, case in JENKINSFILE_CASES.items()
    }
    for name, job in JOB_CASES.items():  # the inline scripts of pipeline jobs, as Jenkins reads them
        script = parse_xml(render.render_job_xml(job)).findtext("definition/script")
        if script is not None:
            files[f"{name}.Jenkinsfile"] = script
    files.update(_hostile_pipelines())
    files["example.Jenkinsfile"] = (ROOT / "Jenkinsfile.example").read_text(encoding="utf-8")
    files["hostile.Jenkinsfile"] = _hostile_jenkinsfile()
    files["control-broken.Jenkinsfile"] = BROKEN  # proves the parser really runs
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    done = subprocess.run(
        [*_offline(), linter, "--noserver", "--failon", "error", "--output", "json",
         "--loglevel", "error", *sorted(files)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
        env={**os.environ, "HOME": str(tmp_path)},
    )
    start = done.stdout.find("{")
    assert start >= 0, (done.returncode, done.stdout[-2000:], done.stderr[-2000:])
    report = json.loads(done.stdout[start:])
    errors = {
        Path(path).name: [e for e in found["errors"] if e["severity"] == "error"]
        for path, found in report["files"].items()
    }
    assert set(errors) == set(files), "not every file was linted"
    assert [e["rule"] for e in errors.pop("control-broken.Jenkinsfile")] == ["NglParseError"]
    assert errors == {name: [] for name in errors}, json.dumps(errors, indent=1, ensure_ascii=False)
    assert done.returncode == 1  # --failon error: only the deliberately broken control fails


def _groovy_jar(linter: str) -> Path:
    package = Path(os.path.realpath(linter)).parent.parent  # …/npm-groovy-lint/lib/index.js
    jars = sorted(package.glob("lib/java/groovy/lib/groovy-[0-9]*.jar"))
    assert jars, f"no Groovy runtime found under {package}; has npm-groovy-lint's layout changed?"
    return jars[-1]


def test_groovy_literals_evaluate_to_the_value(tmp_path: Path, linter: str, java: str) -> None:
    """The Groovy runtime reads each escaped literal back as exactly the original value."""
    literals = []
    for value in GROOVY_HOSTILE:
        literals += [escaping.groovy_string(value), escaping.groovy_block(value)]
    script = tmp_path / "values.groovy"
    script.write_text(
        "def values = [\n" + ",\n".join(literals) + "\n]\n"
        "values.each { v -> println(v.getBytes('UTF-8').encodeHex().toString()) }\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [java, "-cp", str(_groovy_jar(linter)), "groovy.ui.GroovyMain", str(script)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HOME": str(tmp_path)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = [bytes.fromhex(line).decode("utf-8") for line in done.stdout.splitlines()]
    expected = [value for value in GROOVY_HOSTILE for _ in range(2)]
    assert printed == expected
