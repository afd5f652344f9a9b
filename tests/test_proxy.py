"""Forward proxies (issue 10, item 5): HTTP_PROXY, HTTPS_PROXY and NO_PROXY as the engine reads them.

The rules of `proxy_env` as tables; then whole commands (`jr-push --from-archive`, `jr login`,
`jr doctor`) against the real registry behind `tests/support/forward_proxy.py`, under a name
only the proxy resolves (`registry.proxy-only`), so a push that lands went through the proxy.
The proxy records every header it saw: the registry's password may reach it only in the
`Authorization` header of plain-HTTP requests, never in a CONNECT; the proxy's own password
shows nowhere in what the commands print or log.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import logging
import os
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.main import main as jr
from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import ExitCode, UsageError
from jenkins_registry.proxy_env import DIRECT, ProxySettings, ProxyURL, UnusableProxy, parse_proxy_url
from tests.support import forward_proxy, services
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD
PROXY_USER = "jenkins-agent"
PROXY_SECRET = "Pr0xy-Pa55-d41c77"
ONLY_THE_PROXY_KNOWS = "registry.proxy-only"
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_inherited_proxies(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test sets the proxy variables it means; none come from the machine running the tests."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


# -- the rules, as tables -------------------------------------------------------------------------

ANY_PROXY = "http://127.0.0.1:3128"

NO_PROXY_TABLE = [
    # NO_PROXY, scheme, host, port, proxied?
    ("", "https", "registry.example", 443, True),
    ("registry.example", "https", "registry.example", 443, False),  # the host itself
    ("registry.example", "https", "a.registry.example", 443, False),  # and its subdomains
    ("registry.example", "https", "xregistry.example", 443, True),  # not a suffix of a label
    ("REGISTRY.Example", "https", "registry.EXAMPLE", 443, False),  # case-insensitive
    (".example", "https", "registry.example", 443, False),  # leading dot: subdomains
    (".example", "https", "example", 443, True),  # … only
    ("*.example", "https", "registry.example", 443, False),
    ("*.example", "https", "example", 443, True),
    ("registry.example:5000", "https", "registry.example", 5000, False),  # host:port
    ("registry.example:5000", "https", "registry.example", 5001, True),
    ("registry.example:443", "https", "registry.example", 443, False),  # the default port counts
    ("registry.example:80", "http", "registry.example", 80, False),
    ("10.1.2.3", "https", "10.1.2.3", 5000, False),  # an IP address, any port
    ("10.1.2.3:5000", "https", "10.1.2.3", 5001, True),
    ("10.0.0.0/8", "https", "10.200.0.9", 443, False),  # CIDR
    ("10.0.0.0/8", "https", "11.0.0.1", 443, True),
    ("10.0.0.0/8", "https", "ten.example", 443, True),  # a name is not resolved for a range
    ("fd00::/8", "https", "fd12::5", 443, False),  # IPv6 CIDR
    ("fd00::/8", "https", "fe80::1", 443, True),
    ("fd00::1", "https", "[fd00::1]", 5000, False),  # IPv6 address, brackets or not
    ("[fd00::1]:5000", "https", "fd00::1", 5000, False),
    ("[fd00::1]:5000", "https", "fd00::1", 5001, True),
    (" a.example , registry.example ", "https", "registry.example", 443, False),  # spaces
    ("a.example,,:5000,10.0.0.0/99", "https", "registry.example", 443, True),  # unreadable: ignored
    ("*", "https", "registry.example", 443, False),  # everything
    ("a.example,*", "http", "registry.example", 80, False),
    ("", "https", "localhost", 5000, False),  # this machine: never proxied (Go's rule)
    ("", "https", "127.0.0.1", 5000, False),
    ("", "https", "127.9.9.9", 5000, False),
    ("", "https", "::1", 5000, False),
    ("", "http", "[::1]", 5000, False),
    ("", "https", "localhost.example", 5000, True),  # only the name localhost itself
]


@pytest.mark.parametrize(("no_proxy", "scheme", "host", "port", "proxied"), NO_PROXY_TABLE)
def test_no_proxy_matching(no_proxy: str, scheme: str, host: str, port: int, proxied: bool) -> None:
    settings = ProxySettings.from_environ({"HTTP_PROXY": ANY_PROXY, "HTTPS_PROXY": ANY_PROXY,
                                           "NO_PROXY": no_proxy})
    chosen = settings.proxy_for(scheme, host, port)
    assert (chosen is not None) == proxied
    if chosen is not None:
        assert chosen.address == "127.0.0.1:3128"


VARIABLE_TABLE = [
    # environment, scheme, the variable whose proxy is used (None: direct)
    ({"HTTPS_PROXY": "http://up:1", "https_proxy": "http://low:1"}, "https", "HTTPS_PROXY"),
    ({"https_proxy": "http://low:1"}, "https", "https_proxy"),
    ({"HTTPS_PROXY": "", "https_proxy": "http://low:1"}, "https", "https_proxy"),  # empty is unset
    ({"HTTP_PROXY": "http://up:1", "http_proxy": "http://low:1"}, "http", "HTTP_PROXY"),
    ({"http_proxy": "http://low:1"}, "http", "http_proxy"),
    ({"HTTP_PROXY": "http://up:1"}, "https", None),  # each scheme has its own variable
    ({"HTTPS_PROXY": "http://up:1"}, "http", None),
    ({"HTTPS_PROXY": "http://up:1", "NO_PROXY": "registry.example", "no_proxy": "*"}, "https",
     None),  # NO_PROXY wins over no_proxy…
    ({"HTTPS_PROXY": "http://up:1", "NO_PROXY": "other.example", "no_proxy": "*"}, "https",
     "HTTPS_PROXY"),  # …and is the only list read when set
    ({"HTTPS_PROXY": "http://up:1", "no_proxy": "registry.example"}, "https", None),
]


@pytest.mark.parametrize(("environ", "scheme", "variable"), VARIABLE_TABLE)
def test_which_variable_applies(environ: dict[str, str], scheme: str, variable: str | None) -> None:
    chosen = ProxySettings.from_environ(environ).proxy_for(scheme, "registry.example", 443)
    assert (chosen.variable if chosen is not None else None) == variable


@pytest.mark.parametrize(("value", "host", "port"), [
    ("http://proxy.corp:3128", "proxy.corp", 3128),
    ("HTTP://Proxy.Corp:3128/ignored/path", "proxy.corp", 3128),
    ("proxy.corp:3128", "proxy.corp", 3128),  # no scheme: http://
    ("proxy.corp", "proxy.corp", 80),  # no port: 80, as Go
    ("127.0.0.1:3128", "127.0.0.1", 3128),
    ("http://[fd00::3]:3128", "fd00::3", 3128),
])
def test_proxy_urls(value: str, host: str, port: int) -> None:
    proxy = parse_proxy_url(value, "HTTPS_PROXY")
    assert isinstance(proxy, ProxyURL)
    assert (proxy.host, proxy.port, proxy.authorization) == (host, port, None)


def test_proxy_credentials_are_decoded_and_never_shown() -> None:
    secret = "p@ss:w/rd%"
    value = f"http://dom%5Cuser:{'p%40ss%3Aw%2Frd%25'}@proxy.corp:3128"
    proxy = parse_proxy_url(value, "HTTPS_PROXY")
    assert isinstance(proxy, ProxyURL) and proxy.authorization is not None
    assert proxy.authorization.reveal() == "Basic " + base64.b64encode(
        f"dom\\user:{secret}".encode()).decode()
    settings = ProxySettings.from_environ({"HTTPS_PROXY": value})
    shown = [repr(proxy), str(proxy), proxy.address, repr(settings), f"{settings}"]
    assert_absent(secret, *shown)
    assert_absent(proxy.authorization.reveal(), *shown)
    assert "with credentials" in repr(proxy) and str(proxy) == "proxy.corp:3128 (HTTPS_PROXY)"


@pytest.mark.parametrize(("value", "words"), [
    (f"https://u:{PROXY_SECRET}@proxy.corp:3128", ["https:// proxy", "only http://"]),
    (f"socks5://u:{PROXY_SECRET}@proxy.corp:1080", ["socks5:// proxy", "only http://"]),
    (f"http://u:{PROXY_SECRET}@proxy.corp:notaport", ["not a usable proxy URL", "http://****@proxy"]),
    (f"http://u:{PROXY_SECRET}#x@proxy.corp:3128", ["not a usable proxy URL"]),  # '#' not encoded
    ("http://:3128", ["not a usable proxy URL"]),
    ("http://proxy.corp:0", ["not a usable proxy URL"]),
])
def test_unusable_proxy_urls_are_usage_errors(value: str, words: list[str]) -> None:
    settings = ProxySettings.from_environ({"https_proxy": value, "NO_PROXY": "direct.example"})
    assert settings.proxy_for("https", "direct.example", 443) is None  # not needed: no error
    assert settings.proxy_for("http", "registry.example", 80) is None  # HTTP_PROXY is not set
    with pytest.raises(UsageError) as info:
        settings.proxy_for("https", "registry.example", 443)
    assert info.value.exit_code == ExitCode.USAGE
    assert "https_proxy" in info.value.message and "https_proxy" in (info.value.hint or "")
    for word in words:
        assert word in info.value.message
    assert_absent(PROXY_SECRET, info.value.message, info.value.hint, repr(info.value), repr(settings))
    assert isinstance(settings.https, UnusableProxy)


def test_no_settings_no_proxy() -> None:
    assert DIRECT.proxy_for("https", "registry.example", 443) is None
    assert ProxySettings.from_environ({"NO_PROXY": "*"}).proxy_for("http", "a.example", 80) is None


# -- whole commands through the proxy ----------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A docker-save archive of a small image, made by the real engine."""
    services.build_image(docker_client, "team/proxied:1.0", {"proxied.txt": b"through the proxy\n"})
    path = tmp_path_factory.mktemp("proxy-archive") / "proxied.tar"
    api = docker_client.api
    response = api._get(api._url("/images/get"), params={"names": ["team/proxied:1.0"]}, stream=True)
    api._raise_for_status(response)
    with open(path, "wb") as handle:
        for chunk in response.iter_content(1 << 20):
            handle.write(chunk)
    return path


@pytest.fixture(scope="module")
def tls_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[services.Registry, Path]]:
    """The registry over HTTPS with htpasswd auth, its certificate for `registry.proxy-only` only."""
    directory = tmp_path_factory.mktemp("proxy-tls")
    cert, key = forward_proxy.name_certificate(directory, ONLY_THE_PROXY_KNOWS)
    htpasswd = directory / "htpasswd"
    htpasswd.write_text(services._htpasswd_line(services.REGISTRY_USER, SECRET) + "\n")
    extra = (f"  tls:\n    certificate: {cert}\n    key: {key}\n"
             f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {htpasswd}\n")
    with services.registry(auth="custom", extra_config=extra) as reg:
        yield reg, cert


def _tls_tags(reg: services.Registry, repository: str) -> list[str]:
    """The tags, asked of the TLS registry directly (its certificate names only the proxy's name)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host, port = reg.host.rsplit(":", 1)
    connection = http.client.HTTPSConnection(host, int(port), context=context, timeout=10)
    basic = base64.b64encode(f"{services.REGISTRY_USER}:{SECRET}".encode()).decode()
    try:
        connection.request("GET", f"/v2/{repository}/tags/list", headers={"Authorization": f"Basic {basic}"})
        response = connection.getresponse()
        body = response.read()
    finally:
        connection.close()
    return sorted(json.loads(body).get("tags") or []) if response.status == 200 else []


def _tags(registry: services.Registry, repository: str) -> list[str]:
    """The tags, asked of the registry directly: its urllib helper would honour the test's proxy
    variables."""
    with pytest.MonkeyPatch.context() as patch:
        for name in PROXY_VARIABLES:
            patch.delenv(name, raising=False)
        return registry.tags(repository)


def _registry_port(reg: services.Registry) -> str:
    return reg.host.rsplit(":", 1)[1]


def _basic(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


def _assert_registry_password_only_in_plain_authorization(proxy: forward_proxy.ForwardProxy) -> None:
    """The registry's password (and its Basic value) in no header the proxy saw except the
    `Authorization` of a plain-HTTP request; never in a CONNECT, never in a request line."""
    basic = _basic(services.REGISTRY_USER, SECRET)
    for seen in proxy.requests():
        assert_absent(SECRET, seen.target)
        assert basic not in seen.target
        for name, value in seen.headers:
            allowed = seen.method != "CONNECT" and name.lower() == "authorization"
            if not allowed:
                assert_absent(SECRET, value)
                assert basic not in value, f"{seen.method} {name}"


def _push(argv: list[str], env: dict[str, str], capsys: pytest.CaptureFixture[str],
          caplog: pytest.LogCaptureFixture) -> tuple[int, str, str]:
    caplog.set_level(logging.DEBUG)
    code = jr_push(argv, env)
    out, err = capsys.readouterr()
    assert_absent(PROXY_SECRET, out, err, caplog.text)
    assert_absent(SECRET, out, err, caplog.text)
    assert "Traceback" not in err
    return code, out, err


def _credentials_env(**extra: str) -> dict[str, str]:
    return {"DOCKER_LOGIN_USERNAME": services.REGISTRY_USER, "DOCKER_LOGIN_PASSWORD": SECRET,
            "DOCKER_HOST": "unix:///nonexistent/docker.sock", **extra}


def test_push_over_plain_http_through_the_proxy(
    archive: Path, registry: services.Registry, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """HTTP_PROXY (and HTTPS_PROXY, as agents usually set both): --insecure tries HTTPS first,
    through a tunnel, finds plain HTTP on the port, and pushes in absolute-form requests."""
    with forward_proxy.forward_proxy({ONLY_THE_PROXY_KNOWS: "127.0.0.1"},
                                     credentials=(PROXY_USER, PROXY_SECRET)) as proxy:
        url = proxy.url(PROXY_USER, PROXY_SECRET)
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("https_proxy", url)
        target = f"{ONLY_THE_PROXY_KNOWS}:{_registry_port(registry)}"
        code, out, err = _push(["--from-archive", str(archive), "--registry", target,
                                "--name", "proxy/plain", "--tag", "1.0", "--insecure"],
                               _credentials_env(), capsys, caplog)
        assert code == 0, err
        assert out.startswith(f"{target}/proxy/plain:1.0@sha256:")
        assert _tags(registry, "proxy/plain") == ["1.0"]
        plain = [s for s in proxy.requests() if s.method != "CONNECT"]
        assert plain and all(s.target.startswith(f"http://{target}/v2/") for s in plain)
        assert {s.method for s in plain} >= {"GET", "HEAD", "POST", "PUT"}
        assert all(s.header("Proxy-Authorization") == f"Basic {_basic(PROXY_USER, PROXY_SECRET)}"
                   for s in proxy.requests())
        assert any(s.header("Authorization") for s in plain)  # the registry's own credentials
        assert [s.target for s in proxy.requests("CONNECT")] == [target]  # the HTTPS attempt
        _assert_registry_password_only_in_plain_authorization(proxy)


def test_push_over_https_through_a_tunnel(
    archive: Path, tls_registry: tuple[services.Registry, Path], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """HTTPS_PROXY: every request goes through CONNECT (the proxy credentials there alone), TLS
    verified for the registry's name with REQUESTS_CA_BUNDLE; the proxy sees no request in clear."""
    reg, cert = tls_registry
    with forward_proxy.forward_proxy({ONLY_THE_PROXY_KNOWS: "127.0.0.1"},
                                     credentials=(PROXY_USER, PROXY_SECRET)) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url(PROXY_USER, PROXY_SECRET))
        monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # not used: no plain HTTP here
        target = f"{ONLY_THE_PROXY_KNOWS}:{_registry_port(reg)}"
        code, out, err = _push(["--from-archive", str(archive), "--registry", target,
                                "--name", "proxy/tls", "--tag", "1.0", "--tag", "latest"],
                               _credentials_env(REQUESTS_CA_BUNDLE=str(cert)), capsys, caplog)
        assert code == 0, err
        assert out.startswith(f"{target}/proxy/tls:1.0@sha256:")
        assert _tls_tags(reg, "proxy/tls") == ["1.0", "latest"]
        seen = proxy.requests()
        assert seen and all(s.method == "CONNECT" and s.target == target for s in seen)
        assert all(s.header("Proxy-Authorization") == f"Basic {_basic(PROXY_USER, PROXY_SECRET)}"
                   for s in seen)
        _assert_registry_password_only_in_plain_authorization(proxy)


def test_no_proxy_sends_the_push_direct(
    archive: Path, registry: services.Registry, monkeypatch: pytest.MonkeyPatch, remote: str,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    with forward_proxy.forward_proxy({remote: "127.0.0.1"}) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url())
        monkeypatch.setenv("HTTPS_PROXY", proxy.url())
        monkeypatch.setenv("no_proxy", f"other.example,.test:{_registry_port(registry)}")
        target = f"{remote}:{_registry_port(registry)}"
        code, _, err = _push(["--from-archive", str(archive), "--registry", target,
                              "--name", "proxy/direct", "--tag", "1.0", "--insecure"],
                             _credentials_env(), capsys, caplog)
        assert code == 0, err
        assert _tags(registry, "proxy/direct") == ["1.0"] and proxy.requests() == []


@pytest.mark.parametrize("password", [None, "wrong-one"])
def test_the_proxy_refuses_the_credentials(
    password: str | None, archive: Path, registry: services.Registry,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """407 (CONNECT for HTTPS, the request itself for plain HTTP): exit 4 at once, naming the
    proxy and the variable, and saying what to put there."""
    with forward_proxy.forward_proxy({ONLY_THE_PROXY_KNOWS: "127.0.0.1"},
                                     credentials=(PROXY_USER, PROXY_SECRET)) as proxy:
        url = proxy.url(PROXY_USER, password) if password else proxy.url()
        for variable, extra in (("HTTPS_PROXY", []), ("HTTP_PROXY", ["--insecure"])):
            for name in PROXY_VARIABLES:
                monkeypatch.delenv(name, raising=False)
            monkeypatch.setenv(variable, url)
            code, _, err = _push(["--from-archive", str(archive), "--registry",
                                  f"{ONLY_THE_PROXY_KNOWS}:{_registry_port(registry)}",
                                  "--name", "proxy/refused", *extra], _credentials_env(), capsys, caplog)
            assert code == ExitCode.AUTH, err
            assert f"proxy 127.0.0.1:{proxy.port} ({variable})" in err
            assert ("holds none" in err) == (password is None)
            assert ("rejected the credentials" in err) == (password is not None)
            assert f"{variable}=http://USER:PASSWORD@127.0.0.1:{proxy.port}" in err or password
            if password:
                assert_absent(password, err)
        statuses = [s.status for s in proxy.requests()]
        assert statuses and set(statuses) == {407}
        assert len(statuses) <= 3  # no retry of a refusal (HTTPS: one CONNECT; HTTP: its ping)
        _assert_registry_password_only_in_plain_authorization(proxy)
    assert _tags(registry, "proxy/refused") == []


def test_an_unreachable_proxy_is_named(
    archive: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = services.free_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://{PROXY_USER}:{PROXY_SECRET}@127.0.0.1:{port}")
    code, _, err = _push(["--from-archive", str(archive), "--registry", f"{ONLY_THE_PROXY_KNOWS}:5000",
                          "--name", "proxy/unreachable"], _credentials_env(), capsys, caplog)
    assert code == ExitCode.UNREACHABLE, err
    assert f"Could not reach the proxy 127.0.0.1:{port} (HTTPS_PROXY)" in err
    assert f"{ONLY_THE_PROXY_KNOWS}:5000" in err and "connection refused" in err
    assert "NO_PROXY" in err


def test_an_unsupported_proxy_scheme_is_a_usage_error(
    archive: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", f"socks5://{PROXY_USER}:{PROXY_SECRET}@127.0.0.1:1080")
    code, _, err = _push(["--from-archive", str(archive), "--registry", f"{ONLY_THE_PROXY_KNOWS}:5000",
                          "--name", "proxy/socks"], _credentials_env(), capsys, caplog)
    assert code == ExitCode.USAGE, err
    assert "HTTPS_PROXY names a socks5:// proxy" in err and "only http://" in err


def test_login_goes_through_the_proxy(
    registry: services.Registry, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    import keyring.core

    monkeypatch.setattr(keyring.core, "_keyring_backend", None)
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setattr("sys.stdin", io.StringIO(SECRET))
    caplog.set_level(logging.DEBUG)
    with forward_proxy.forward_proxy({ONLY_THE_PROXY_KNOWS: "127.0.0.1"},
                                     credentials=(PROXY_USER, PROXY_SECRET)) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url(PROXY_USER, PROXY_SECRET))
        target = f"{ONLY_THE_PROXY_KNOWS}:{_registry_port(registry)}"
        code = jr(["login", "--registry", target, "--username", services.REGISTRY_USER,
                   "--password-stdin", "--insecure"], dict(os.environ))
        out, err = capsys.readouterr()
        assert code == 0, err
        assert_absent(PROXY_SECRET, out, err, caplog.text)
        assert_absent(SECRET, out, err, caplog.text)
        seen = proxy.requests()
        assert seen and all(s.target == f"http://{target}/v2/" for s in seen)
        assert any(s.header("Authorization") for s in seen)  # the password was checked there
        _assert_registry_password_only_in_plain_authorization(proxy)


def test_doctor_asks_through_the_proxy(
    registry: services.Registry, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
) -> None:
    """Behind a proxy, `jr doctor` leaves the name to the proxy, checks TCP to the proxy, and asks
    the registry through it: a name only the proxy resolves passes every check."""
    caplog.set_level(logging.DEBUG)
    with forward_proxy.forward_proxy({ONLY_THE_PROXY_KNOWS: "127.0.0.1"},
                                     credentials=(PROXY_USER, PROXY_SECRET)) as proxy:
        url = proxy.url(PROXY_USER, PROXY_SECRET)
        monkeypatch.setenv("HTTP_PROXY", url)
        monkeypatch.setenv("HTTPS_PROXY", url)
        target = f"{ONLY_THE_PROXY_KNOWS}:{_registry_port(registry)}"
        env = {**os.environ, **_credentials_env()}
        code = jr(["doctor", "--registry", target, "--insecure"], env)
        out, err = capsys.readouterr()
        assert code == 0, out  # the engine's check only warns: no engine here
        assert_absent(PROXY_SECRET, out, err, caplog.text)
        assert_absent(SECRET, out, err, caplog.text)
        lines = {line.split("]", 1)[1].split(":", 1)[0].strip(): line for line in out.splitlines()
                 if line.startswith("[")}
        assert lines["name resolution"].startswith("[ ok ]") and "through the proxy" in out, out
        assert "the proxy 127.0.0.1:" in lines["TCP connection"], out
        credentials = next(line for line in out.splitlines() if "credentials" in line)
        assert credentials.startswith("[ ok ]"), out
        assert [s.target for s in proxy.requests("CONNECT")][:1] == [target]  # the HTTPS probe
        plain = [s.target for s in proxy.requests() if s.method != "CONNECT"]
        assert f"http://{target}/v2/" in plain
        _assert_registry_password_only_in_plain_authorization(proxy)


def test_doctor_names_a_proxy_that_does_not_listen(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    port = services.free_port()
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{port}")
    code = jr(["doctor", "--registry", f"{ONLY_THE_PROXY_KNOWS}:5000"], dict(os.environ))
    out, _ = capsys.readouterr()
    assert code == ExitCode.CHECK_FAILED, out
    tcp = next(line for line in out.splitlines() if "TCP connection" in line)
    assert tcp.startswith("[FAIL]") and f"the proxy 127.0.0.1:{port} (HTTPS_PROXY)" in tcp, out
    assert "NO_PROXY" in out


def test_doctor_refuses_an_unusable_proxy_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "socks5://user:hidden-proxy-pw@127.0.0.1:1080")
    code = jr(["doctor", "--registry", f"{ONLY_THE_PROXY_KNOWS}:5000"], dict(os.environ))
    out, err = capsys.readouterr()
    assert code == ExitCode.CHECK_FAILED, out
    assert "HTTPS_PROXY" in out and "hidden-proxy-pw" not in out + err


def test_a_proxy_that_refuses_the_tunnel(
    archive: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """CONNECT answered with something other than 200 or 407 (here 502: the proxy cannot
    resolve the name): the registry is unreachable through it, exit 7, naming the proxy."""
    with forward_proxy.forward_proxy({}) as proxy:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url())
        code, _, err = _push(["--from-archive", str(archive), "--registry", "unknown.proxy-only:5000",
                              "--name", "proxy/refused-tunnel"], _credentials_env(), capsys, caplog)
        assert code == ExitCode.UNREACHABLE, err
        assert f"The proxy 127.0.0.1:{proxy.port} (HTTPS_PROXY) did not open a connection to " \
            "unknown.proxy-only:5000 (HTTP 502)" in err
        assert [s.status for s in proxy.requests()] == [502]  # the ping is not retried
