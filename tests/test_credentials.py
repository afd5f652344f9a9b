"""Credential precedence: chosen variables, environment, keyring, prompt; sources logged, values never."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jenkins_registry.credentials import Secret, resolve_registry_credentials, resolve_secret
from jenkins_registry.errors import CredentialsError, KeyringUnavailableError, redact
from jenkins_registry.keyring_store import KeyringStore

SECRET = "Cr3d-Kn0wn-Secret-42"


@pytest.fixture
def file_keyring(isolated_home: Path, monkeypatch: pytest.MonkeyPatch) -> KeyringStore:
    from keyrings.alt.file import PlaintextKeyring

    backend = PlaintextKeyring()
    backend.file_path = str(isolated_home / "keyring.cfg")
    return KeyringStore(backend)


def test_environment_first(caplog: pytest.LogCaptureFixture, file_keyring: KeyringStore) -> None:
    caplog.set_level(logging.INFO)
    file_keyring.set("r:1", "kr-user", Secret("other"))
    creds = resolve_registry_credentials(
        "r:1", environ={"DOCKER_LOGIN_USERNAME": "u", "DOCKER_LOGIN_PASSWORD": SECRET},
        keyring_store=file_keyring)
    assert creds is not None and creds.username == "u" and creds.password.reveal() == SECRET
    assert "environment" in caplog.text and SECRET not in caplog.text and SECRET not in repr(creds)


def test_chosen_variables_beat_defaults() -> None:
    creds = resolve_registry_credentials(
        "r:1", environ={"U": "a", "P": SECRET, "DOCKER_LOGIN_USERNAME": "b", "DOCKER_LOGIN_PASSWORD": "c"},
        username_env="U", password_env="P")
    assert creds is not None and creds.username == "a"


def test_chosen_variables_missing_is_an_error() -> None:
    with pytest.raises(CredentialsError, match="REG_USER"):
        resolve_registry_credentials("r:1", environ={}, username_env="REG_USER")


def test_keyring_then_anonymous(file_keyring: KeyringStore) -> None:
    assert resolve_registry_credentials("r:1", environ={}, keyring_store=file_keyring) is None
    file_keyring.set("r:1", "kr-user", Secret(SECRET))
    creds = resolve_registry_credentials("r:1", environ={}, keyring_store=file_keyring)
    assert creds is not None and (creds.username, creds.source) == ("kr-user", "keyring")
    assert file_keyring.delete("r:1") and not file_keyring.delete("r:1")


def test_prompt_only_when_offered() -> None:
    creds = resolve_registry_credentials("r:1", environ={}, prompt_username=lambda q: "typed",
                                         prompt_password=lambda q: SECRET)
    assert creds is not None and creds.source == "prompt"
    with pytest.raises(CredentialsError, match="No credentials"):
        resolve_registry_credentials("r:1", environ={}, required=True)


def test_failing_backend_is_skipped_for_lookups_and_explained_for_writes() -> None:
    # The autouse fixture selects keyring.backends.fail.Keyring, as on a headless agent.
    store = KeyringStore()
    assert not store.available() and store.get("r:1") is None
    with pytest.raises(KeyringUnavailableError) as info:
        store.set("r:1", "u", Secret(SECRET))
    assert "PYTHON_KEYRING_BACKEND" in info.value.hint and SECRET not in str(info.value)


def test_resolve_secret_order() -> None:
    assert resolve_secret(what="token", environ={"T": SECRET}, env_var="T").reveal() == SECRET
    assert resolve_secret(what="token", environ={}, env_var="T",
                          keyring_lookup=lambda: Secret("k")).reveal() == "k"
    with pytest.raises(CredentialsError, match="No Jenkins API token") as info:
        resolve_secret(what="Jenkins API token", environ={}, env_var="JENKINS_API_TOKEN")
    assert "JENKINS_API_TOKEN" in info.value.hint


def test_redact_hides_plain_and_encoded_forms() -> None:
    import base64
    import urllib.parse

    text = f"a {SECRET} b {urllib.parse.quote(SECRET + '/')} c {base64.b64encode(SECRET.encode()).decode()}"
    assert SECRET not in redact(text, [SECRET, None, ""])
