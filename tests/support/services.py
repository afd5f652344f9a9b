"""Real services for the tests: a private Docker engine and Debian's distribution registry.

Each runs on loopback or a private unix socket, from a temporary directory, and is stopped by whoever
started it. Waiting loops are bounded in count and time.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import socket
import socketserver
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

REGISTRY_USER = "ci-bot"
# A known secret: tests assert it never shows up in output, files, argv or exception text.
REGISTRY_PASSWORD = "S3cr3t-Pa55w0rd-7f1c9e"


def free_port(address: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((address, 0))
        return int(sock.getsockname()[1])


class ServiceDied(RuntimeError):
    """The process being waited for exited: waiting longer cannot help."""


def wait_until(check: object, timeout: float, what: str, interval: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except ServiceDied:
            raise
        except Exception as exc:  # still starting
            last = exc
        time.sleep(interval)
    raise RuntimeError(f"{what} did not become ready within {timeout} s (last error: {last!r})")


def _stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


@dataclass
class DockerEngine:
    host: str  # e.g. unix:///tmp/jr-dockerd-x/docker.sock
    pid: int | None  # the dockerd we started, or None when an existing engine is used


# A name the private engine resolves to ::1 only. The engine (docker.io 20.10) counts only
# 127.0.0.0/8 as implicitly insecure, so a registry reached under this name is expected to speak
# HTTPS: the way to reproduce "server gave HTTP response to HTTPS client" on loopback.
IPV6_REGISTRY_NAME = "registry-v6.test"


@contextlib.contextmanager
def docker_engine(
    *, config_file: Path | None = None, private_hosts: bool = False
) -> Iterator[DockerEngine]:
    """Use $JR_TEST_DOCKER_HOST when set, else start a private dockerd (vfs, no networking).

    config_file: passed as --config-file (daemon.json). private_hosts: run dockerd in its own
    mount namespace with an /etc/hosts that maps IPV6_REGISTRY_NAME to ::1 (nothing else changes).
    Either option always starts a private engine.
    """
    existing = os.environ.get("JR_TEST_DOCKER_HOST")
    if existing and config_file is None and not private_hosts:
        yield DockerEngine(host=existing, pid=None)
        return
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise RuntimeError("dockerd is not installed: run `bash scripts/test.sh`, which installs docker.io")
    root = Path(tempfile.mkdtemp(prefix="jr-dockerd-"))
    sock = root / "docker.sock"
    log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - closed below
    command = [dockerd, "--storage-driver=vfs", "--iptables=false", "--ip-forward=false", "--bridge=none",
               f"--data-root={root / 'data'}", f"--exec-root={root / 'exec'}", f"-H=unix://{sock}",
               f"--pidfile={root / 'docker.pid'}"]
    if config_file is not None:
        command.append(f"--config-file={config_file}")
    if private_hosts:
        hosts = root / "hosts"
        hosts.write_text(f"127.0.0.1 localhost\n::1 {IPV6_REGISTRY_NAME}\n")
        command = ["unshare", "--mount", "--", "sh", "-c",
                   f'mount --bind "{hosts}" /etc/hosts && exec "$0" "$@"', *command]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceDied((root / "dockerd.log").read_text()[-2000:])
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(sock))
                s.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
                return b"200 OK" in s.recv(200)
        wait_until(ready, 60, "dockerd")
        yield DockerEngine(host=f"unix://{sock}", pid=proc.pid)
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@dataclass
class Registry:
    host: str  # 127.0.0.1:PORT
    username: str | None
    password: str | None
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def get(self, path: str, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """A raw GET against the registry, authenticated with basic auth when it has a user."""
        import base64
        req = urllib.request.Request(self.url + path, headers=dict(headers or {}))
        if self.username and self.password:
            token = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()

    def tags(self, name: str) -> list[str]:
        status, _, body = self.get(f"/v2/{name}/tags/list")
        if status == 404:
            return []
        assert status == 200, (status, body)
        return sorted(json.loads(body).get("tags") or [])

    def manifest_digest(self, name: str, tag: str) -> str | None:
        accept = ", ".join([
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.docker.distribution.manifest.list.v2+json",
            "application/vnd.oci.image.index.v1+json",
        ])
        status, headers, _ = self.get(f"/v2/{name}/manifests/{tag}", {"Accept": accept})
        if status == 404:
            return None
        assert status == 200, status
        return {k.lower(): v for k, v in headers.items()}["docker-content-digest"]


def _htpasswd_line(user: str, password: str) -> str:
    out = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True)
    return out.stdout.decode().strip()


@contextlib.contextmanager
def registry(
    *, auth: str = "htpasswd", extra_config: str = "", port: int | None = None,
    username: str = REGISTRY_USER, password: str = REGISTRY_PASSWORD, listen: str = "127.0.0.1",
) -> Iterator[Registry]:
    """Start Debian's docker-registry on 127.0.0.1 with htpasswd auth (or `auth="none"`).

    `extra_config` is appended to the YAML (e.g. an `auth: token:` section with auth="custom").
    `listen="::1"` serves on the IPv6 loopback instead (see IPV6_REGISTRY_NAME).
    """
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    if not os.path.exists(binary):
        raise RuntimeError("docker-registry is not installed: run `bash scripts/test.sh`")
    root = Path(tempfile.mkdtemp(prefix="jr-registry-"))
    port = port or free_port(listen)
    bind = f"[{listen}]" if ":" in listen else listen
    auth_yaml = ""
    if auth == "htpasswd":
        (root / "htpasswd").write_text(_htpasswd_line(username, password) + "\n")
        auth_yaml = f"auth:\n  htpasswd:\n    realm: basic-realm\n    path: {root / 'htpasswd'}\n"
    config = (
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: '{bind}:{port}'\n  secret: jr-test-secret\n"
        + auth_yaml + extra_config
    )
    (root / "config.yml").write_text(config)
    log = open(root / "registry.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "serve", str(root / "config.yml")], stdout=log,
                            stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    reg = Registry(host=f"{bind}:{port}", username=username if auth != "none" else None,
                   password=password if auth != "none" else None, root=root, process=proc)
    try:
        def ready() -> bool:
            if proc.poll() is not None:
                raise ServiceDied((root / "registry.log").read_text()[-2000:])
            with socket.create_connection((listen, port), timeout=1):
                return True
        wait_until(ready, 30, "docker-registry")
        yield reg
    finally:
        _stop(proc)
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def serve_in_thread(server: socketserver.BaseServer, poll_interval: float = 0.05) -> Iterator[int]:
    """Run a test HTTP server in a daemon thread; yields its port, and stops it on exit."""
    if isinstance(server, socketserver.ThreadingMixIn):
        server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": poll_interval},
                              daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])  # type: ignore[index]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def self_signed_certificate(directory: Path, common_name: str,
                            dns_name: str | None = None) -> tuple[Path, Path]:
    """A self-signed CA certificate for 127.0.0.1 (or, with *dns_name*, for that name alone) and
    its key, as PEM files in *directory*."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(dns_name)] if dns_name is not None
            else [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def image_context(files: Mapping[str, bytes], extra_dockerfile: str = "",
                  base: str = "scratch") -> io.BytesIO:
    """A build context tarball for `FROM base` (default scratch) + one COPY per file (no network,
    no RUN)."""
    lines = [f"FROM {base}"]
    lines += [f"COPY {name} /{name}" for name in files]
    dockerfile = "\n".join(lines) + "\n" + extra_dockerfile
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in {"Dockerfile": dockerfile.encode(), **files}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def build_image(client: object, tag: str, files: Mapping[str, bytes]) -> str:
    """Build a tiny scratch image in the engine and return its image ID (sha256:…)."""
    image, _ = client.images.build(  # type: ignore[attr-defined]
        fileobj=image_context(files), custom_context=True, tag=tag, rm=True, forcerm=True
    )
    return str(image.id)
