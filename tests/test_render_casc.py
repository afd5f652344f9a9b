"""`jr render casc`: JCasC YAML for the registry credential and the shared library.

Golden files; the output read back by a parser (JSON for each scalar, whose escapes are a subset
of YAML's; PyYAML for the whole file when it is installed); hostile values round-trip exactly,
with JCasC's `^${` escape taken into account; no secret; refusals exit 2 and write nothing.

Regenerate the golden files after an intended template change with
    JR_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_render_casc.py -k golden
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jenkins_registry import escaping, render
from jenkins_registry.errors import UnsafeValueError, UsageError
from tests.support.services import REGISTRY_PASSWORD
from tests.test_escaping import PROPERTY, hostile_text
from tests.test_render_cli import Result, Run, assert_clean_error
from tests.test_render_cli import jr as jr  # the fixture

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
LIBRARY_URL = "https://git.example/ci/jenkins-registry-library.git"
CREDENTIAL = {"credentials_id": "docker-registry-login", "username": "jenkins"}
LIBRARY = {"library_name": "jenkins-registry", "library_url": LIBRARY_URL,
           "library_credentials_id": "git-read"}
CASES: dict[str, dict[str, Any]] = {
    "casc.yaml": CREDENTIAL,
    "casc-library.yaml": {**CREDENTIAL, "description": "Nexus docker-hosted push account",
                          "password_variable": "NEXUS_PUSH_PASSWORD", **LIBRARY},
}
CREDENTIAL_KEYS = ["scope", "id", "username", "password", "description"]


def jcasc_resolve(value: str) -> str:
    """What JCasC makes of a literal with no `${VAR}` left in it: `^${` is an escaped `${`."""
    assert not re.search(r"(?<!\^)\$\{", value), value
    return value.replace("^${", "${")


def scalar(line: str, key: str) -> str:
    """The value of `key: "…"` on one rendered line, read by a JSON parser (JSON ⊂ YAML here)."""
    indent, colon, rest = line.partition(f"{key}: ")
    assert colon and not indent.strip(" -"), line
    value = json.loads(rest)
    assert isinstance(value, str)
    return value


def parse_yaml(text: str) -> Any:
    """The whole document through PyYAML; skips the caller when PyYAML is not installed."""
    yaml = pytest.importorskip("yaml")
    documents = list(yaml.safe_load_all(text))
    assert len(documents) == 1
    return documents[0]


def expected_structure(credentials_id: str, username: str, description: str | None = None,
                       password_variable: str = render.DEFAULT_PASSWORD_VARIABLE,
                       library_name: str | None = None, library_url: str = "",
                       library_version: str = "main",
                       library_credentials_id: str | None = None) -> dict[str, Any]:
    credential = {"scope": "GLOBAL", "id": credentials_id, "username": username.replace("${", "^${"),
                  "password": f"${{{password_variable}}}"}
    if description is not None:
        credential["description"] = description.replace("${", "^${")
    tree: dict[str, Any] = {"credentials": {"system": {"domainCredentials": [
        {"credentials": [{"usernamePassword": credential}]}]}}}
    if library_name is not None:
        git = {"remote": library_url}
        if library_credentials_id is not None:
            git["credentialsId"] = library_credentials_id
        tree["unclassified"] = {"globalLibraries": {"libraries": [{
            "name": library_name, "defaultVersion": library_version, "implicit": False,
            "retriever": {"modernSCM": {"scm": {"git": git}}}}]}}
    return tree


# ---------------------------------------------------------------------------------------------
# Golden files and structure


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden(name: str) -> None:
    rendered = render.render_casc(**CASES[name])
    path = GOLDEN_DIR / name
    if os.environ.get("JR_UPDATE_GOLDEN") == "1":
        path.write_text(rendered, encoding="utf-8", newline="")
    assert rendered == path.read_bytes().decode("utf-8"), (
        f"{name} differs from its golden file; if intended, regenerate with JR_UPDATE_GOLDEN=1")


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_scalar_is_a_quoted_string(name: str) -> None:
    """Only scope and implicit are bare; every other value is a double-quoted scalar."""
    for line in render.render_casc(**CASES[name]).splitlines():
        key, colon, rest = line.strip(" -").partition(": ")
        if colon and key not in ("scope", "implicit"):
            assert rest.startswith('"') and rest.endswith('"'), line
            scalar(line, key)


@pytest.mark.parametrize("name", sorted(CASES))
def test_parses_to_exactly_the_expected_structure(name: str) -> None:
    assert parse_yaml(render.render_casc(**CASES[name])) == expected_structure(**CASES[name])


def test_password_is_a_variable_reference_and_defaults() -> None:
    text = render.render_casc(**CREDENTIAL)
    assert '              password: "${DOCKER_LOGIN_PASSWORD}"\n' in text
    assert "unclassified" not in text and "description" not in text
    with_version = render.render_casc(**CREDENTIAL, **LIBRARY, library_version="v1.2")
    assert 'defaultVersion: "v1.2"' in with_version


# ---------------------------------------------------------------------------------------------
# Escaping


@pytest.mark.parametrize(("value", "expected"), [
    ('a"b\\c', '"a\\"b\\\\c"'),
    ("line\nnext\ttab\r", '"line\\nnext\\ttab\\r"'),
    ("nel\x85 ls\u2028 del\x7f bom\ufeff nul\x00", '"nel\\u0085 ls\\u2028 del\\u007f bom\\ufeff nul\\u0000"'),
    ("中文 🐳 #: - &a *b !t", '"中文 🐳 #: - &a *b !t"'),
])
def test_yaml_string_known_values(value: str, expected: str) -> None:
    assert escaping.yaml_string(value) == expected
    assert json.loads(expected) == value


def test_casc_string_escapes_variable_references() -> None:
    assert escaping.casc_string("${X} ^${Y} $Z") == '"^${X} ^^${Y} $Z"'
    assert jcasc_resolve(json.loads(escaping.casc_string("^${Y}"))) == "^${Y}"


@pytest.mark.parametrize("value", ["\ud800", "a\udfffb"])
def test_lone_surrogates_are_refused(value: str) -> None:
    with pytest.raises(UnsafeValueError, match="description"):
        render.render_casc(**CREDENTIAL, description=value)


@settings(PROPERTY)
@given(hostile_text, st.text(alphabet=st.characters(exclude_categories=["Cc", "Cs", "Zl", "Zp"]),
                             min_size=1, max_size=30))
@example('x"\n  password: "${SECRET}"\n---\nother: 1', "u${DOCKER_LOGIN_PASSWORD}")
@example("\\\"\\", "^${X}")
def test_hostile_values_round_trip(description: str, username: str) -> None:
    text = render.render_casc(**CREDENTIAL | {"username": username}, description=description,
                              **LIBRARY)
    lines = text.splitlines()
    assert len(lines) == 22 and not any(line.startswith("---") for line in lines)
    assert scalar(lines[7], "username") == username.replace("${", "^${")
    assert jcasc_resolve(scalar(lines[7], "username")) == username
    assert jcasc_resolve(scalar(lines[9], "description")) == description
    try:
        import yaml  # noqa: F401
    except ImportError:
        return
    assert parse_yaml(text) == expected_structure(**CREDENTIAL | {"username": username},
                                                  description=description, **LIBRARY)


# ---------------------------------------------------------------------------------------------
# Refusals


@pytest.mark.parametrize(("options", "error"), [
    ({"credentials_id": "bad id"}, UnsafeValueError),
    ({"username": ""}, UsageError),
    ({"username": "a\nb"}, UnsafeValueError),
    ({"password_variable": "A-B"}, UnsafeValueError),
    ({"password_variable": "${X}"}, UnsafeValueError),
    ({"library_url": LIBRARY_URL}, UsageError),
    ({"library_name": "lib"}, UsageError),
    ({**LIBRARY, "library_url": "https://user:pw@git.example/x.git"}, UnsafeValueError),
    ({**LIBRARY, "library_credentials_id": "a/b"}, UnsafeValueError),
    ({**LIBRARY, "library_version": ""}, UsageError),
])
def test_refused(options: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        render.render_casc(**CREDENTIAL | options)


# ---------------------------------------------------------------------------------------------
# CLI


CASC = ["render", "casc", "--credentials-id", "docker-registry-login", "--username", "jenkins"]
LIBRARY_ARGS = ["--shared-library", "jenkins-registry", "--library-url", LIBRARY_URL,
                "--library-credentials-id", "git-read"]


def test_cli_writes_the_golden_file_and_no_secret(jr: Run, tmp_path: Path) -> None:
    result: Result = jr(*CASC)
    assert result.code == 0 and result.err == ""
    assert result.out == (GOLDEN_DIR / "casc.yaml").read_text(encoding="utf-8")
    result.assert_no_secret()  # DOCKER_LOGIN_PASSWORD holds the known secret in this environment
    output = tmp_path / "casc.yaml"
    result = jr(*CASC, "--description", "Nexus docker-hosted push account",
                "--password-variable", "NEXUS_PUSH_PASSWORD", *LIBRARY_ARGS, "--output", str(output))
    assert result.code == 0 and result.out == ""
    assert output.read_text(encoding="utf-8") == (GOLDEN_DIR / "casc-library.yaml").read_text(
        encoding="utf-8")
    assert REGISTRY_PASSWORD not in output.read_text(encoding="utf-8")
    result.assert_no_secret()


@pytest.mark.parametrize(("argv", "fragment"), [
    (["--credentials-id", "bad id", "--username", "u"], "credentials id"),
    ([*CASC[2:], "--password-variable", "1X"], "password variable"),
    ([*CASC[2:], "--library-url", LIBRARY_URL], "--shared-library"),
    ([*CASC[2:], "--shared-library", "lib"], "--library-url"),
    ([*CASC[2:], "--shared-library", "lib", "--library-url", f"https://u:{REGISTRY_PASSWORD}@h/x"],
     "password"),
    ([*CASC[2:], "--description", "bad \ud800"], "surrogate"),
])
def test_cli_refuses_and_writes_nothing(jr: Run, tmp_path: Path, argv: list[str],
                                        fragment: str) -> None:
    output = tmp_path / "casc.yaml"
    result = jr("render", "casc", *argv, "--output", str(output))
    assert_clean_error(result, fragment)
    assert not output.exists()
