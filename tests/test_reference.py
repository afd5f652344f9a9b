"""Docker's reference grammar, checked before any network work."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jenkins_registry.errors import InvalidReferenceError, UsageError
from jenkins_registry.push_target import plan_push
from jenkins_registry.reference import (
    in_engine_implicit_insecure_range,
    is_loopback,
    looks_like_image_id,
    parse_path,
    parse_reference,
    parse_registry,
    parse_tag,
    split_host_port,
)


@pytest.mark.parametrize("text, registry, path, tag, digest", [
    ("jenkins-test", None, "jenkins-test", None, None),
    ("jenkins-test:1.0", None, "jenkins-test", "1.0", None),
    ("10.211.55.6:8082/jenkins-test", "10.211.55.6:8082", "jenkins-test", None, None),
    ("10.211.55.6:8082/local/jenkins:v2", "10.211.55.6:8082", "local/jenkins", "v2", None),
    ("localhost/app", "localhost", "app", None, None),
    ("registry.example.com/team/app", "registry.example.com", "team/app", None, None),
    ("team/app", None, "team/app", None, None),
    ("a__b/c-d.e", None, "a__b/c-d.e", None, None),
    ("harbor.local/jenkins/app@sha256:" + "0" * 64, "harbor.local", "jenkins/app", None,
     "sha256:" + "0" * 64),
    ("Host:5000/app:T", "Host:5000", "app", "T", None),
])
def test_parse_reference(text: str, registry: str | None, path: str, tag: str | None,
                         digest: str | None) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.path, ref.tag, ref.digest) == (registry, path, tag, digest)
    assert str(ref) == text


@pytest.mark.parametrize("text", [
    "Jenkins-Test", "app/", "/app", "a//b", "app:", "app:-x", "app@sha256:xyz", "a b", "app\n",
    "a_-b", "-app", "app:" + "t" * 129, "x" * 256, "",
])
def test_invalid_references(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_reference(text)


@pytest.mark.parametrize("text", ["http://x:1", "host:0", "host:65536", "ho st", "host/path", "-host"])
def test_invalid_registries(text: str) -> None:
    with pytest.raises(InvalidReferenceError):
        parse_registry(text)


def test_uppercase_path_gets_a_lowercase_hint() -> None:
    with pytest.raises(InvalidReferenceError) as info:
        parse_path("Local/Jenkins")
    assert "'local/jenkins'" in info.value.hint


@given(st.from_regex(r"\A[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z"))
def test_every_grammar_tag_is_accepted(tag: str) -> None:
    assert parse_tag(tag) == tag


@given(st.text(min_size=1, max_size=40))
def test_parse_reference_only_raises_our_error(text: str) -> None:
    with contextlib.suppress(InvalidReferenceError):
        parse_reference(text)


def test_image_ids() -> None:
    assert looks_like_image_id("46d1a3ebf53b") and looks_like_image_id("sha256:" + "a" * 64)
    assert not looks_like_image_id("jenkins-test") and not looks_like_image_id("46d1a3")


def test_plan_defaults() -> None:
    plan = plan_push("10.211.55.6:8082/local/jenkins:v1", registry="127.0.0.1:5000", repository=None, tags=[])
    assert (plan.repository, plan.tags) == ("local/jenkins", ("v1",))
    assert plan.name == "127.0.0.1:5000/local/jenkins"
    plan = plan_push("jenkins-test", registry="r:1", repository=None, tags=["a", "b", "a"])
    assert plan.tags == ("a", "b")
    with pytest.raises(UsageError):
        plan_push("46d1a3ebf53b", registry="r:1", repository=None, tags=[])
    assert plan_push("46d1a3ebf53b", registry="r:1", repository="local/x", tags=[]).tags == ("latest",)


# -- registry addresses ----------------------------------------------------------------------------


@pytest.mark.parametrize("registry, host, port", [
    ("10.211.55.6:8082", "10.211.55.6", 8082), ("registry.example", "registry.example", None),
    ("[::1]:5000", "::1", 5000), ("[::1]", "::1", None), ("::1", "::1", None),
    ("localhost:5000", "localhost", 5000),
])
def test_split_host_port(registry: str, host: str, port: int | None) -> None:
    assert split_host_port(registry) == (host, port)


def test_registry_port_range_uses_the_same_parser() -> None:
    assert parse_registry("[::1]:65535") == "[::1]:65535"
    for text in ("host:0", "host:65536", "[::1]:99999"):
        with pytest.raises(InvalidReferenceError, match="out of range"):
            parse_registry(text)


@pytest.mark.parametrize("registry, loopback, engine_insecure", [
    ("127.0.0.1", True, True), ("127.255.0.1", True, True), ("127.0.0.1:5000", True, True),
    ("::1", True, False), ("[::1]:5000", True, False),  # ::1/128 is not insecure to Docker 20.10
    ("localhost", True, False), ("LOCALHOST:5000", True, False),  # the engine would resolve it
    ("10.0.0.1", False, False), ("128.0.0.1", False, False), ("localhost.example", False, False),
    ("localhost.localdomain:5000", False, False), ("[2001:db8::1]:443", False, False),
    ("registry.example", False, False),
])
def test_loopback_and_the_engine_implicit_insecure_range(registry: str, loopback: bool,
                                                         engine_insecure: bool) -> None:
    assert is_loopback(registry) is loopback
    assert in_engine_implicit_insecure_range(registry) is engine_insecure
