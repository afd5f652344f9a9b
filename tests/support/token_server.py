"""A small Docker token server for tests: the distribution registry's `auth: token` flow.

Per registry-notes.md section 6: `GET /token?service=…&scope=repository:<name>:<actions>` with
Basic credentials answers `{"token", "access_token", "expires_in", "issued_at"}`, where the token is
an RS256 JWT whose header carries the signing certificate (`x5c`) and whose claims grant the
intersection of the requested and the allowed actions. The registry trusts the self-signed
certificate through `rootcertbundle`. Runs on 127.0.0.1 in a thread; the log records accounts and
scopes, never passwords or tokens.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import http.server
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from tests.support import services

SERVICE = "jr-test-registry"
ISSUER = "jr-test-token-issuer"
READER_USER = "reader"
READER_PASSWORD = "Reader-Pa55-4b2d"

# user -> (password, function(repository, requested actions) -> granted actions)
Grant = Callable[[str, list[str]], list[str]]


def _all(_repository: str, actions: list[str]) -> list[str]:
    return actions


def _pull_only(_repository: str, actions: list[str]) -> list[str]:
    return [a for a in actions if a == "pull"]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _key_and_cert() -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "jr-test-token-signer")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return key, cert


@dataclass
class TokenServer:
    """A running token server; tune `expires_in` and `bad_tokens` between requests."""

    port: int
    cert_path: Path
    users: Mapping[str, tuple[str, Grant]]
    key: rsa.RSAPrivateKey = field(repr=False)
    cert: x509.Certificate = field(repr=False)
    stray_key: rsa.RSAPrivateKey = field(repr=False)
    stray_cert: x509.Certificate = field(repr=False)
    expires_in: int = 300
    bad_tokens: int = 0  # the next N tokens are signed by a certificate the registry does not trust
    allow_anonymous: bool = False
    token_fields: tuple[str, ...] = ("token", "access_token")  # which names carry the JWT
    failures: int = 0  # the next N requests are answered 503 (to test retries)
    log: list[tuple[str, tuple[str, ...], int]] = field(default_factory=list)  # (account, scopes, status)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self.port}/token"

    def registry_config(self) -> str:
        """The `auth:` YAML for services.registry(auth="custom", extra_config=…)."""
        return (
            "auth:\n  token:\n"
            f"    realm: {self.realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n"
            f"    rootcertbundle: {self.cert_path}\n"
        )

    def token_requests(self) -> int:
        with self.lock:
            return len(self.log)

    def issue(self, account: str, scopes: list[str], grant: Grant) -> str:
        access = []
        for scope in scopes:
            parts = scope.split(":")
            if len(parts) < 3 or parts[0] != "repository":
                continue
            name, actions = ":".join(parts[1:-1]), parts[-1].split(",")
            granted = grant(name, actions)
            if granted:
                access.append({"type": "repository", "name": name, "actions": granted})
        with self.lock:
            bad = self.bad_tokens > 0
            if bad:
                self.bad_tokens -= 1
        key, cert = (self.stray_key, self.stray_cert) if bad else (self.key, self.cert)
        now = int(time.time())
        header = {"typ": "JWT", "alg": "RS256",
                  "x5c": [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]}
        claims = {"iss": ISSUER, "sub": account, "aud": SERVICE, "exp": now + self.expires_in,
                  "nbf": now - 5, "iat": now, "jti": secrets.token_hex(8), "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"


def _handler(server_state: TokenServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # the request line is harmless, but keep test output clean

        def _answer(self, status: int, body: dict[str, object], account: str,
                    scopes: list[str]) -> None:
            with server_state.lock:
                server_state.log.append((account, tuple(scopes), status))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 401:
                self.send_header("WWW-Authenticate", 'Basic realm="jr-test-token-server"')
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            scopes = [s for value in query.get("scope", []) for s in value.split(" ") if s]
            with server_state.lock:
                failing = server_state.failures > 0
                if failing:
                    server_state.failures -= 1
            if failing:
                self._answer(503, {"errors": [{"code": "UNAVAILABLE", "message": "injected"}]}, "", scopes)
                return
            if url.path != "/token" or query.get("service") != [SERVICE]:
                self._answer(400, {"error": "bad service or path"}, "", scopes)
                return
            auth = self.headers.get("Authorization", "")
            account = ""
            grant: Grant | None = None
            if auth.startswith("Basic "):
                try:
                    user, _, password = base64.b64decode(auth[6:]).decode().partition(":")
                except (ValueError, UnicodeDecodeError):
                    user, password = "", ""
                known = server_state.users.get(user)
                if known is not None and secrets.compare_digest(known[0], password):
                    account, grant = user, known[1]
                else:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                                   "message": "invalid credentials"}]}, user, scopes)
                    return
            elif server_state.allow_anonymous:
                grant = _pull_only
            else:
                self._answer(401, {"errors": [{"code": "UNAUTHORIZED",
                                               "message": "authentication required"}]}, "", scopes)
                return
            token = server_state.issue(account, scopes, grant)
            issued = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            body: dict[str, object] = {name: token for name in server_state.token_fields}
            body.update({"expires_in": server_state.expires_in, "issued_at": issued})
            self._answer(200, body, account, scopes)

    return Handler


@contextlib.contextmanager
def token_server(tmp_dir: Path, *,
                 users: Mapping[str, tuple[str, Grant]] | None = None) -> Iterator[TokenServer]:
    """Start the token server on 127.0.0.1; the default users are the CI user (all actions) and a
    pull-only reader."""
    key, cert = _key_and_cert()
    stray_key, stray_cert = _key_and_cert()
    cert_path = tmp_dir / "token-signer.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    state = TokenServer(
        port=0, cert_path=cert_path,
        users=users or {services.REGISTRY_USER: (services.REGISTRY_PASSWORD, _all),
                        READER_USER: (READER_PASSWORD, _pull_only)},
        key=key, cert=cert, stray_key=stray_key, stray_cert=stray_cert,
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    with services.serve_in_thread(server) as port:
        state.port = port
        yield state


@contextlib.contextmanager
def token_registry(tmp_dir: Path) -> Iterator[tuple[services.Registry, TokenServer]]:
    """A real docker-registry behind token auth, with its token server."""
    with token_server(tmp_dir) as tokens, services.registry(
            auth="custom", extra_config=tokens.registry_config()) as registry:
        registry.username = services.REGISTRY_USER
        registry.password = services.REGISTRY_PASSWORD
        yield registry, tokens
