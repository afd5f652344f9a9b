"""`jr doctor`: the checks between "docker push" and a private registry, in the order they break.

Each check returns a typed verdict with a one-line summary and, when something is wrong, the fix.
The first probes speak the raw protocol (sockets, `GET /v2/` over HTTPS and over HTTP) because
their job is to say *which* layer fails; the credentials and push-permission checks then go
through `RegistryClient` (`SchemePolicy.login()`, pinned to the scheme found), exactly as `jr login`
and a push do: plain HTTP is probed without credentials, and gets them only on loopback or with
`--insecure`. Nothing here prints.
Facts: registry-notes.md §2 (insecure-registries), §3.1 (ping and auth), §3.2 (uploads), §4 (Nexus).
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from jenkins_registry import daemon_config
from jenkins_registry.checklist import CheckResult, Status, failures
from jenkins_registry.credentials import (
    DEFAULT_PASSWORD_ENV,
    DEFAULT_USERNAME_ENV,
    resolve_registry_credentials,
)
from jenkins_registry.errors import (
    AuthenticationError,
    CredentialsError,
    ImageNotFoundError,
    JrError,
    PermissionDeniedError,
    redact,
)
from jenkins_registry.http_transport import HttpTransport, Response, Timeout, TlsError, TransportError
from jenkins_registry.keyring_store import KeyringStore
from jenkins_registry.optional_packages import is_installed
from jenkins_registry.proxy_env import ProxySettings, ProxyURL
from jenkins_registry.reference import (
    looks_like_image_id,
    parse_path,
    parse_reference,
    parse_registry,
    split_host_port,
)
from jenkins_registry.registry_auth import challenge_of, is_unauthorized
from jenkins_registry.registry_client import RegistryClient
from jenkins_registry.registry_session import (
    CHECK_RETRY,
    CHECK_TIMEOUT,
    Scheme,
    SchemePolicy,
    is_untrusted_certificate,
)
from jenkins_registry.secret_types import UsernamePassword

if TYPE_CHECKING:
    from jenkins_registry.docker_engine import DockerEngine

log = logging.getLogger(__name__)

NEXUS_BASIC_REALM = "Sonatype Nexus Repository Manager"
PROBE_REPOSITORY = "jenkins-registry/doctor-probe"
CONNECT_TIMEOUT = 3.0


@dataclass(frozen=True, kw_only=True)
class Report:
    registry: str
    results: tuple[CheckResult, ...]

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return failures(self.results)

    @property
    def ok(self) -> bool:
        return not self.failures


EngineFactory = Callable[[], "DockerEngine"]


@dataclass
class _State:
    """What earlier checks learnt, for the later ones."""

    registry: str
    host: str
    ports: tuple[int, ...]
    addresses: list[str] = field(default_factory=list)
    reachable: bool = False
    scheme: Scheme | None = None  # the scheme the registry API answers on
    first: Response | None = None
    anonymous: bool = False
    creds: UsernamePassword | None = None
    creds_ok: bool = False
    client: RegistryClient | None = None
    engine: DockerEngine | None = None
    engine_error: str | None = None
    engine_tried: bool = False
    insecure: bool = False  # --insecure: credentials may go over plain HTTP to this registry
    proxy: ProxyURL | None = None  # the forward proxy the registry is reached through, if any

    def policy(self) -> SchemePolicy:
        """`jr login`'s rules, pinned to the scheme checks 3-4 found."""
        assert self.scheme is not None
        return SchemePolicy.login(self.registry, insecure=self.insecure).pinned(self.scheme)


def _host_and_ports(registry: str) -> tuple[str, tuple[int, ...]]:
    host, port = split_host_port(registry)
    return host, ((port,) if port else (443, 80))


def _skip(name: str, why: str) -> CheckResult:
    return CheckResult(name=name, status=Status.SKIP, summary=why)


def find_proxy(state: _State, proxies: ProxySettings) -> CheckResult | None:
    """The proxy the registry's HTTPS (else HTTP) requests go through; a failure when the
    variable that applies cannot be used. With a proxy, the name is the proxy's to resolve and
    the TCP check is of the proxy (a name only the proxy knows is normal behind one)."""
    try:
        for scheme in ("https", "http"):
            state.proxy = proxies.proxy_for(scheme, state.host, state.ports[0])
            if state.proxy is not None:
                return None
    except JrError as exc:
        return CheckResult(name="proxy", status=Status.FAIL, summary=exc.message, fix=exc.hint)
    return None


# 1. name resolution --------------------------------------------------------------------------
def check_resolution(state: _State) -> CheckResult:
    name = "name resolution"
    if state.proxy is not None:
        state.addresses = [state.proxy.host]
        return CheckResult(name=name, status=Status.OK,
                           summary=f"through the proxy {state.proxy}: {state.host} is the proxy's "
                           "to resolve")
    try:
        ipaddress.ip_address(state.host)
    except ValueError:
        pass
    else:
        state.addresses = [state.host]
        return CheckResult(name=name, status=Status.OK, summary=f"{state.host} is an IP address")
    try:
        infos = socket.getaddrinfo(state.host, state.ports[0], proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"{state.host} does not resolve ({type(exc).__name__})",
            fix=f"Check the spelling and DNS, or add '<IP> {state.host}' to /etc/hosts on every "
            "Jenkins agent and Docker host; or use the registry's IP address.",
        )
    state.addresses = sorted({str(info[4][0]) for info in infos})
    return CheckResult(name=name, status=Status.OK,
                       summary=f"{state.host} resolves to {', '.join(state.addresses)}")


# 2. TCP -----------------------------------------------------------------------------------------
def _firewall_fix(host: str, port: int, *, timed_out: bool) -> str:
    """A refused connection means nothing listens; only a timeout (dropped packets, what a
    firewall does) earns the firewall commands."""
    listens = (f"Check that the registry runs and listens on port {port} (Nexus: the docker "
               f"repository's HTTP connector, set with `jr nexus setup --http-port {port}`)")
    if not timed_out:
        return f"Nothing accepted the connection: {listens[0].lower()}{listens[1:]}."
    return (
        f"{listens}, and open the port on {host}'s "
        f"firewall: `sudo firewall-cmd --zone=public --add-port={port}/tcp --permanent && "
        f"sudo firewall-cmd --reload` (ufw: `sudo ufw allow {port}/tcp`)."
    )


def check_tcp(state: _State) -> CheckResult:
    name = "TCP connection"
    if not state.addresses:
        return _skip(name, "the name does not resolve")
    if state.proxy is not None:
        return _check_proxy_tcp(state, name)
    problems = []
    timed_out = False
    for port in state.ports:
        for address in state.addresses:
            try:
                with socket.create_connection((address, port), timeout=CONNECT_TIMEOUT):
                    pass
            except ConnectionRefusedError:
                problems.append(f"{address} port {port}: connection refused")
                continue
            except TimeoutError:
                timed_out = True
                problems.append(f"{address} port {port}: no answer within {CONNECT_TIMEOUT:g} s "
                                "(a firewall dropping packets?)")
                continue
            except OSError as exc:
                problems.append(f"{address} port {port}: {exc.strerror or type(exc).__name__}")
                continue
            state.reachable = True
            return CheckResult(name=name, status=Status.OK,
                               summary=f"{address} port {port} accepts connections")
    return CheckResult(name=name, status=Status.FAIL, summary="; ".join(problems),
                       fix=_firewall_fix(state.host, state.ports[0], timed_out=timed_out))


def _check_proxy_tcp(state: _State, name: str) -> CheckResult:
    proxy = state.proxy
    assert proxy is not None
    try:
        with socket.create_connection((proxy.host, proxy.port), timeout=CONNECT_TIMEOUT):
            pass
    except OSError as exc:
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"the proxy {proxy} does not accept connections "
            f"({exc.strerror or type(exc).__name__})",
            fix=f"Check {proxy.variable}, or list {state.host} in NO_PROXY to reach it directly.")
    state.reachable = True
    return CheckResult(name=name, status=Status.OK,
                       summary=f"the proxy {proxy} accepts connections (the registry is asked "
                       "through it below)")


# 3-4. HTTPS and HTTP /v2/ --------------------------------------------------------------------
def _is_registry_answer(response: Response) -> bool:
    return response.status_code == 200 or is_unauthorized(response)


def check_protocols(state: _State, transport: HttpTransport) -> list[CheckResult]:
    https_name, http_name = "HTTPS /v2/", "HTTP /v2/"
    if not state.reachable:
        return [_skip(https_name, "no TCP connection"), _skip(http_name, "no TCP connection")]
    answers: dict[str, Response | None] = {}
    notes: dict[str, str] = {}
    for scheme in ("https", "http"):
        try:
            answers[scheme] = transport.request("GET", f"{scheme}://{state.registry}/v2/",
                                                timeout=CHECK_TIMEOUT)
        except TlsError as exc:
            answers[scheme] = None
            notes[scheme] = ("an HTTPS certificate this machine does not trust"
                             if is_untrusted_certificate(exc) else "no TLS on this port")
        except Timeout:
            answers[scheme] = None
            notes[scheme] = "no answer in time"
        except TransportError as exc:
            answers[scheme] = None
            notes[scheme] = f"no answer ({type(exc).__name__})"
    https, http = answers["https"], answers["http"]
    results = []
    if https is not None and _is_registry_answer(https):
        state.scheme, state.first = "https", https
        results.append(CheckResult(name=https_name, status=Status.OK,
                                   summary=f"speaks HTTPS (HTTP {https.status_code})"))
    elif notes.get("https", "").startswith("an HTTPS certificate"):
        results.append(CheckResult(
            name=https_name, status=Status.FAIL, summary=f"speaks HTTPS with {notes['https']}",
            fix=f"Install the registry's CA certificate as /etc/docker/certs.d/{state.registry}/"
            "ca.crt on every Docker host (and in the system trust store for this tool).",
        ))
    else:
        seen = f"HTTP {https.status_code}" if https is not None else notes.get("https", "")
        results.append(CheckResult(name=https_name, status=Status.INFO,
                                   summary=f"no registry over HTTPS ({seen})"))
    if http is not None and _is_registry_answer(http):
        if state.scheme is None:
            state.scheme, state.first = "http", http
            summary = (f"speaks plain HTTP (HTTP {http.status_code}): Docker must treat it as an "
                       "insecure registry")
        else:
            summary = f"also answers over plain HTTP (HTTP {http.status_code}); HTTPS is used"
        results.append(CheckResult(name=http_name, status=Status.OK, summary=summary))
    else:
        seen = f"HTTP {http.status_code}" if http is not None else notes.get("http", "")
        if state.scheme is None and not any(r.status is Status.FAIL for r in results):
            results.append(CheckResult(
                name=http_name, status=Status.FAIL,
                summary=f"no registry API at /v2/ over HTTPS or HTTP ({seen})",
                fix="Point --registry at the registry's own port: for Nexus the docker hosted "
                "repository's HTTP connector (e.g. 8082, `jr nexus setup --http-port 8082`), not "
                "the web UI port 8081 and not /repository/NAME.",
            ))
        else:
            results.append(CheckResult(name=http_name, status=Status.INFO,
                                       summary=f"no registry over plain HTTP ({seen})"))
    return results


# 5. the engine's insecure-registries ----------------------------------------------------------
def _engine(state: _State, factory: EngineFactory | None) -> Any:
    if not state.engine_tried:
        state.engine_tried = True
        if factory is None:
            state.engine_error = "no engine given"
        else:
            try:
                state.engine = factory()
            except JrError as exc:  # the engine facade turns every SDK failure into one
                state.engine_error = exc.message
    return state.engine


def check_engine_insecure(state: _State, factory: EngineFactory | None) -> CheckResult:
    name = "engine allows HTTP"
    if state.scheme is None:
        return _skip(name, "no registry API found")
    if state.scheme == "https":
        return CheckResult(name=name, status=Status.SKIP,
                           summary="not needed: the registry speaks HTTPS")
    engine = _engine(state, factory)
    if engine is None:
        return CheckResult(
            name=name, status=Status.WARN,
            summary=f"could not ask the Docker engine: {state.engine_error}",
            fix="Set DOCKER_HOST to the engine that will push (e.g. unix:///var/run/docker.sock) "
            "and run `jr doctor` again.",
        )
    try:
        info = engine.info()
    except JrError as exc:
        return CheckResult(name=name, status=Status.WARN, summary=f"the engine's info failed: {exc.message}")
    reason = daemon_config.insecure_reason(info, state.registry)
    if reason:
        return CheckResult(name=name, status=Status.OK,
                           summary=f"the engine treats {state.registry} as insecure ({reason})")
    return CheckResult(
        name=name, status=Status.FAIL,
        summary=f"the engine does not list {state.registry} under insecure-registries; a push "
        "fails with 'http: server gave HTTP response to HTTPS client'",
        fix=f'Add "insecure-registries": ["{state.registry}"] to /etc/docker/daemon.json on every '
        f"Docker host and reload: `sudo jr docker insecure-registry add {state.registry} --reload`.",
    )


# 6. auth scheme ---------------------------------------------------------------------------------
def check_auth_scheme(state: _State) -> CheckResult:
    name = "auth scheme"
    if state.first is None:
        return _skip(name, "no registry API found")
    if state.first.status_code == 200:
        state.anonymous = True
        return CheckResult(name=name, status=Status.INFO,
                           summary="none: /v2/ answers without credentials")
    challenge = challenge_of(state.first)
    if challenge is None:
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"/v2/ answered HTTP {state.first.status_code} without a WWW-Authenticate "
            "challenge", fix="Check the registry's (or a reverse proxy's) authentication setup.",
        )
    realm = challenge.realm or ""
    if challenge.scheme == "bearer":
        service = challenge.service or ""
        return CheckResult(name=name, status=Status.OK,
                           summary=f"Bearer (token realm {realm}, service {service!r})")
    if challenge.scheme == "basic" and realm == NEXUS_BASIC_REALM:
        return CheckResult(
            name=name, status=Status.WARN,
            summary=f'Basic (realm "{realm}"): Nexus answers Basic when the repository has '
            "forceBasicAuth true or the Docker Bearer Token Realm (DockerToken) is not active; "
            "login and push work, anonymous pull does not",
            fix="Activate the DockerToken realm and set forceBasicAuth false: `jr nexus setup "
            "--url http://NEXUS:8081 --repository NAME --http-port PORT`.",
        )
    if challenge.scheme == "basic":
        return CheckResult(name=name, status=Status.OK, summary=f'Basic (realm "{realm}")')
    return CheckResult(
        name=name, status=Status.FAIL,
        summary=f"{challenge.scheme!r}: Docker supports only Basic and Bearer",
        fix="Configure the registry (or its reverse proxy) for Basic or token authentication.",
    )


# 7. credentials -------------------------------------------------------------------------------
def _client(state: _State, transport: HttpTransport) -> RegistryClient:
    """The client for checks 7 and 8: `jr login`'s rules, pinned to the scheme checks 3-4 found."""
    if state.client is None:
        assert state.scheme is not None
        client = RegistryClient(state.registry, credentials=state.creds, policy=state.policy(),
                                transport=transport, timeout=CHECK_TIMEOUT, retry=CHECK_RETRY)
        client.ping()
        state.client = client
    return state.client


def check_credentials(state: _State, transport: HttpTransport, environ: Mapping[str, str],
                      store: KeyringStore) -> CheckResult:
    name = "credentials"
    if state.scheme is None:
        return _skip(name, "no registry API found")
    try:
        creds = resolve_registry_credentials(state.registry, environ=environ, keyring_store=store,
                                             anonymous_note="checking anonymous access")
    except JrError as exc:
        return CheckResult(name=name, status=Status.FAIL, summary=exc.message, fix=exc.hint)
    state.creds = creds
    if creds is None:
        if state.anonymous:
            state.creds_ok = True
            return CheckResult(name=name, status=Status.OK,
                               summary="none found, and the registry needs none")
        keyring_note = ""
        if not is_installed("keyring"):
            keyring_note = (" (this single-file jr-push holds no keyring: jr-push reads "
                            f"{DEFAULT_USERNAME_ENV}/{DEFAULT_PASSWORD_ENV})")
        elif not store.available():
            keyring_note = (" (no usable OS keyring here: set PYTHON_KEYRING_BACKEND, e.g. "
                            "keyrings.alt.file.PlaintextKeyring, to use `jr login`)")
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"none found in {DEFAULT_USERNAME_ENV}/{DEFAULT_PASSWORD_ENV} or the OS "
            "keyring" + keyring_note,
            fix=f"Bind the Jenkins credential to {DEFAULT_USERNAME_ENV}/{DEFAULT_PASSWORD_ENV}, or "
            f"run `jr login --registry {state.registry} --username USER --password-stdin`.",
        )
    if not state.anonymous and not state.policy().allows_credentials(
            f"{state.scheme}://{state.registry}/v2/", state.registry):
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"user {creds.username!r} from {creds.source}: not checked, because "
            f"{state.registry} speaks plain HTTP and is not this machine: the password would "
            "cross the network in clear text",
            fix="Serve the registry over HTTPS. If plain HTTP on this network is intended, opt in "
            "for this registry: `jr doctor --insecure` and `jr login --insecure` (and `jr-push "
            "--insecure` for --from-archive/--from-oci; the engine's insecure-registries for "
            "--image).",
        )
    try:
        challenge = _client(state, transport).check_login()
    except JrError as exc:
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"user {creds.username!r} from {creds.source}: {exc.message}", fix=exc.hint,
        )
    except TransportError as exc:  # a TLS failure after the probes
        return CheckResult(name=name, status=Status.FAIL,
                           summary=f"checking user {creds.username!r} failed ({type(exc).__name__})")
    state.creds_ok = True
    how = {"basic": "Basic", "bearer": "token fetched"}.get(challenge.scheme if challenge else "",
                                                             "not needed")
    return CheckResult(name=name, status=Status.OK,
                       summary=f"user {creds.username!r} from {creds.source} accepted ({how})")


# 8. push permission ----------------------------------------------------------------------------
def check_push(state: _State, transport: HttpTransport, repository: str) -> CheckResult:
    name = "push permission"
    if state.scheme is None:
        return _skip(name, "no registry API found")
    if not state.creds_ok:
        return _skip(name, "the credentials are missing or rejected")
    who = f"user {state.creds.username!r}" if state.creds else "anonymous access"
    try:
        probe = _client(state, transport).probe_upload(repository)
    except JrError as exc:
        return CheckResult(name=name, status=Status.FAIL, summary=exc.message, fix=exc.hint)
    except TransportError as exc:
        return CheckResult(name=name, status=Status.FAIL,
                           summary=f"opening an upload failed ({type(exc).__name__})")
    if probe.error is None:
        note = ("opened and cancelled a blob upload" if probe.cancelled else
                "opened a blob upload; cancelling it failed (the registry expires it)")
        return CheckResult(name=name, status=Status.OK,
                           summary=f"{who} may push to {repository}: {note}")
    if isinstance(probe.error, (AuthenticationError, CredentialsError, PermissionDeniedError)):
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"{who} may not push to {repository} (HTTP {probe.status})",
            fix="Give the account push rights on the repository (Nexus: a role with "
            "nx-repository-view-docker-<repo>-add and -edit; Harbor: push on the project). Push "
            "to a Nexus *hosted* repository's port; a group port refuses pushes.",
        )
    return CheckResult(
        name=name, status=Status.FAIL,
        summary=f"opening a blob upload in {repository} answered HTTP {probe.status}",
        fix="Check the repository name and the registry's log.",
    )


# 9. local image ---------------------------------------------------------------------------------
def check_image(state: _State, image: str, factory: EngineFactory | None) -> CheckResult:
    name = "local image"
    engine = _engine(state, factory)
    if engine is None:
        return CheckResult(
            name=name, status=Status.WARN,
            summary=f"could not look for {image}: {state.engine_error}",
            fix="Set DOCKER_HOST to the engine that builds the image and run `jr doctor` again.",
        )
    try:
        found = engine.find_image(image)
    except ImageNotFoundError:
        return CheckResult(
            name=name, status=Status.FAIL, summary=f"{image} does not exist in the Docker engine",
            fix=f"Build or load it first (`docker build -t {image} .`), or check `docker images`.",
        )
    except JrError as exc:
        return CheckResult(name=name, status=Status.WARN,
                           summary=f"could not look for {image}: {exc.message}")
    short = found.id.removeprefix("sha256:")[:12]
    return CheckResult(name=name, status=Status.OK, summary=f"{image} exists locally ({short})")


# All --------------------------------------------------------------------------------------------
def probe_repository(registry: str, image: str | None, repository: str | None = None) -> str:
    """The repository whose push permission is checked: --repository, else the --image's path,
    else a probe name."""
    if repository is not None:
        return parse_path(repository)
    if image is None or looks_like_image_id(image):
        return PROBE_REPOSITORY
    return parse_reference(image).path


def diagnose(
    registry: str,
    *,
    ca_bundle: str | None = None,
    environ: Mapping[str, str],
    keyring_store: KeyringStore,
    engine: EngineFactory | None = None,
    image: str | None = None,
    repository: str | None = None,
    insecure: bool = False,
) -> Report:
    """Run every check in order; later checks are skipped when an earlier one makes them moot.

    Verified HTTPS trusts the default store plus *ca_bundle* (the CLI passes REQUESTS_CA_BUNDLE).
    Plain HTTP is probed without credentials; the credentials go there only on loopback or with
    *insecure* (`--insecure`).
    """
    registry = parse_registry(registry)
    repository = probe_repository(registry, image, repository)
    host, ports = _host_and_ports(registry)
    state = _State(registry=registry, host=host, ports=ports, insecure=insecure)
    proxies = ProxySettings.from_environ(environ)
    proxy_problem = find_proxy(state, proxies)
    if proxy_problem is not None:
        return Report(registry=registry, results=(proxy_problem,))
    results = [check_resolution(state), check_tcp(state)]
    with HttpTransport(ca_bundle=ca_bundle, proxies=proxies) as transport:
        results += check_protocols(state, transport)
        results.append(check_engine_insecure(state, engine))
        results.append(check_auth_scheme(state))
        results.append(check_credentials(state, transport, environ, keyring_store))
        results.append(check_push(state, transport, repository))
        if state.client is not None:
            state.client.close()
    if image is not None:
        results.append(check_image(state, image, engine))
    secrets = [state.creds.password.reveal()] if state.creds else []
    if secrets:  # a last guard: no verdict may carry the password, whatever a server echoed
        results = [
            CheckResult(name=r.name, status=r.status, summary=redact(r.summary, secrets),
                        fix=redact(r.fix, secrets) if r.fix else None)
            for r in results
        ]
    for result in results:
        log.debug("doctor %s: %s %s", result.name, result.status, result.summary)
    return Report(registry=registry, results=tuple(results))
