"""Credential precedence: chosen variables, environment, keyring, prompt; sources logged, values never.

Also the keyring's username rule (`keyring_password_for`) and the fall-through past a keyring that
cannot be read: one warning naming the problem, then the next source.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from jenkins_registry.credentials import keyring_password_for, resolve_registry_credentials, resolve_secret
from jenkins_registry.errors import CredentialsError, KeyringUnavailableError, redact
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.secret_types import Secret
from tests.support.failing_keyring import LockedKeyring

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


def test_credentials_reexports_the_secret_types() -> None:
    import jenkins_registry.credentials as credentials
    import jenkins_registry.secret_types as secret_types

    assert credentials.Secret is secret_types.Secret
    assert credentials.UsernamePassword is secret_types.UsernamePassword


def test_keyring_password_only_for_the_same_user(
    caplog: pytest.LogCaptureFixture, file_keyring: KeyringStore,
) -> None:
    caplog.set_level(logging.INFO)
    assert keyring_password_for(file_keyring, "r:1", "ci-bot") is None  # nothing stored
    file_keyring.set("r:1", "someone-else", Secret(SECRET))
    assert keyring_password_for(file_keyring, "r:1", "ci-bot") is None
    assert "is for user someone-else, not ci-bot; not used" in caplog.text
    file_keyring.set("r:1", "ci-bot", Secret(SECRET))
    found = keyring_password_for(file_keyring, "r:1", "ci-bot")
    assert found is not None and found.reveal() == SECRET
    assert SECRET not in caplog.text


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_keyring_that_cannot_be_read_is_skipped_with_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    store = KeyringStore(LockedKeyring())
    # The store itself reports the failure (what `jr login` and `jr logout` rely on) ...
    with pytest.raises(CredentialsError, match=r"failed to read \(KeyringLocked\)"):
        store.get("r:1")
    # ... and resolution warns once, then tries the next source: anonymous, a prompt, the error.
    assert resolve_registry_credentials("r:1", environ={}, keyring_store=store) is None
    [warning] = warnings(caplog)
    assert "credentials for r:1: skipped the OS keyring" in warning and "KeyringLocked" in warning
    creds = resolve_registry_credentials("r:1", environ={}, keyring_store=store,
                                         prompt_username=lambda q: "typed",
                                         prompt_password=lambda q: SECRET)
    assert creds is not None and creds.source == "prompt"
    with pytest.raises(CredentialsError, match="No credentials for r:1"):
        resolve_registry_credentials("r:1", environ={}, keyring_store=store, required=True)
    caplog.clear()
    with pytest.raises(CredentialsError, match="No Jenkins API token"):
        resolve_secret(what="Jenkins API token", environ={}, env_var="JENKINS_API_TOKEN",
                       keyring_lookup=lambda: store.get_secret("jenkins:http://j", "admin"))
    assert len(warnings(caplog)) == 1
    caplog.clear()
    assert resolve_secret(what="password", environ={}, env_var="P", prompt=lambda q: SECRET,
                          keyring_lookup=lambda: keyring_password_for(store, "r:1", "u")) == Secret(SECRET)
    [warning] = warnings(caplog)
    assert "password of u for r:1: skipped the OS keyring" in warning
    assert SECRET not in caplog.text


def test_a_keyring_backend_that_cannot_be_loaded_is_skipped_with_a_warning(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "no_such_module.Keyring")
    store = KeyringStore()
    assert not store.available()
    with pytest.raises(KeyringUnavailableError, match="could not be loaded"):
        store.get("r:1")
    assert resolve_registry_credentials("r:1", environ={}, keyring_store=store) is None
    [warning] = warnings(caplog)
    assert "could not be loaded (ModuleNotFoundError)" in warning and "PYTHON_KEYRING_BACKEND" in warning
