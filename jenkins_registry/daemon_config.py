"""The Docker engine's daemon.json: the `insecure-registries` list, edited safely, and reloaded.

An HTTP registry (a Nexus HTTP connector such as 10.211.55.6:8082) must be listed under
`insecure-registries`, else every push fails with "http: server gave HTTP response to HTTPS
client". Facts used here (moby `registry/config.go`, `daemon/reload.go`; registry-notes.md §2):
  * an entry is a CIDR (matched against the registry's resolved IPs) or an exact `host[:port]`
    equal to the image-name prefix; moby strips a leading `http://`/`https://` with a warning;
  * 127.0.0.0/8 is insecure by default (`reference.ENGINE_IMPLICIT_INSECURE_RANGE`), and ::1/128
    too on engines newer than 20.10;
  * the list is reloaded on SIGHUP, no restart needed; the engine's info then shows it under
    `RegistryConfig.IndexConfigs[host].Secure == false` (names) or `InsecureRegistryCIDRs` (CIDRs).

Edits keep every other key and the key order, write through a temp file in the same directory
(fsync, rename, same mode and owner), keep a timestamped backup of the previous content, and
refuse a file that is not valid JSON, leaving it untouched. An edit holds a lock from load to
save (`atomic_file.edit_lock`), so concurrent adds all survive. What the engine would refuse is
refused too: NaN, Infinity, a number out of range, nesting past `untrusted_json.MAX_DEPTH`, and a
path that is not a regular file (a FIFO there would block the read forever).
"""

from __future__ import annotations

import contextlib
import datetime
import errno
import ipaddress
import json
import logging
import os
import re
import shutil
import signal
import socket
import stat
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jenkins_registry.atomic_file import edit_lock, write_atomic
from jenkins_registry.errors import (
    EngineUnavailableError,
    InputFileError,
    InvalidReferenceError,
    JrError,
    PermissionDeniedError,
    UsageError,
)
from jenkins_registry.reference import (
    ENGINE_DEFAULT_INSECURE_CIDRS,
    mask_userinfo,
    parse_registry,
    split_host_port,
)
from jenkins_registry.untrusted_json import UntrustedJsonError
from jenkins_registry.untrusted_json import loads as json_loads

log = logging.getLogger(__name__)

DEFAULT_DAEMON_JSON = Path("/etc/docker/daemon.json")
DEFAULT_PIDFILE = Path("/var/run/docker.pid")  # dockerd's --pidfile default for a rootful engine
KEY = "insecure-registries"
DEFAULT_INDENT = 2
RELOAD_COMMANDS = ("sudo systemctl reload docker", "sudo kill -HUP $(pidof dockerd)")
# sudo resets PATH (secure_path), so `sudo jr` misses a jr installed in a virtualenv or by pipx.
AS_ROOT_COMMAND = 'sudo "$(command -v jr)" docker insecure-registry'
AS_ROOT_HINT = (f"daemon.json belongs to root: run it as `{AS_ROOT_COMMAND} add|remove HOST:PORT` "
                "(sudo resets PATH, so a plain `sudo jr` does not find a jr installed in a "
                "virtualenv or with pipx), or pass a file you may write with --daemon-json; the file "
                "was not changed.")
MAX_SIZE = 1024 * 1024  # real files hold a few hundred bytes; the engine reads the whole file


# Entries ------------------------------------------------------------------------------------
def normalize_entry(text: str) -> str:
    """Validate an `insecure-registries` entry (`HOST[:PORT]` or a CIDR) and return its stored form.

    A leading http:// or https:// is dropped, as the engine itself does; a CIDR is written in
    its network form (10.211.55.0/24), as the engine parses it.
    """
    entry = text.strip()
    for scheme in ("http://", "https://"):
        if entry.lower().startswith(scheme):
            entry = entry[len(scheme):]
            break
    entry = entry.rstrip("/")
    if "/" in entry:
        try:
            return str(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            pass
    try:
        return parse_registry(entry)
    except InvalidReferenceError as exc:
        raise InvalidReferenceError(
            f"{mask_userinfo(text)!r} is not an insecure-registries entry: {exc.message}",
            hint="Give HOST:PORT exactly as it starts your image names (e.g. 10.211.55.6:8082), "
            "or a CIDR such as 10.211.55.0/24.",
        ) from exc


def _same_entry(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return ipaddress.ip_network(a, strict=False) == ipaddress.ip_network(b, strict=False)
    except ValueError:
        return False


# Reading ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    """A parsed daemon.json: its keys in file order and the indentation to write it back with."""

    path: Path
    data: dict[str, Any]
    indent: int | str
    exists: bool

    @property
    def insecure_registries(self) -> tuple[str, ...]:
        return tuple(self.data.get(KEY, ()))


def _detect_indent(text: str) -> int | str:
    """The file's own indentation (spaces or a tab), or 2 for a one-line or new file."""
    match = re.search(r'^([ \t]+)["}\]]', text, re.MULTILINE)
    if not match:
        return DEFAULT_INDENT
    unit = match.group(1)
    if set(unit) == {" "}:
        return len(unit)
    return unit


def load(path: Path) -> DaemonConfig:
    """Read and check *path*; an absent file is an empty configuration.

    Raises InputFileError for unreadable bytes, invalid JSON, a top level that is not an object,
    or an `insecure-registries` value that is not a list of strings.
    """
    try:
        raw = _read_regular(path)
    except FileNotFoundError:
        return DaemonConfig(path=path, data={}, indent=DEFAULT_INDENT, exists=False)
    except IsADirectoryError as exc:
        raise InputFileError(f"{path} is a directory, not a daemon.json file.",
                             hint="Pass the path of the file with --daemon-json.") from exc
    except OSError as exc:
        raise InputFileError(
            f"Cannot read {path} ({exc.strerror or type(exc).__name__}).",
            hint="Run the command with sudo, or pass a readable file with --daemon-json.",
        ) from exc
    try:
        text = raw.decode("utf-8-sig")  # dockerd accepts a UTF-8 byte order mark too
    except UnicodeDecodeError as exc:
        raise InputFileError(f"{path} is not UTF-8 text.") from exc
    if not text.strip():
        log.info("%s is empty; treating it as {}", path)
        return DaemonConfig(path=path, data={}, indent=DEFAULT_INDENT, exists=True)
    try:
        data = json_loads(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(
            f"{path} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}).",
            hint=f"Fix the file by hand (`python3 -m json.tool {path}` shows the error); "
            "nothing was changed.",
        ) from exc
    except UntrustedJsonError as exc:
        raise InputFileError(f"{path} is JSON the engine would refuse: {exc}.",
                             hint="Fix the file by hand; nothing was changed.") from exc
    if not isinstance(data, dict):
        raise InputFileError(
            f"{path} must hold a JSON object ({{...}}), not a {type(data).__name__}.",
            hint="Fix the file by hand; nothing was changed.",
        )
    value = data.get(KEY)
    if value is not None and not (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    ):
        raise InputFileError(
            f'"{KEY}" in {path} must be a list of strings, e.g. ["10.211.55.6:8082"].',
            hint="Fix the file by hand; nothing was changed.",
        )
    return DaemonConfig(path=path, data=data, indent=_detect_indent(text), exists=True)


def _read_regular(path: Path) -> bytes:
    """The bytes of *path*, refused (InputFileError) unless it is a regular file of at most
    MAX_SIZE bytes. O_NONBLOCK: opening a FIFO returns at once, so it can be refused."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise InputFileError(f"{path} is not a regular file (a FIFO, device or socket).",
                                 hint="Pass the engine's daemon.json with --daemon-json; nothing "
                                 "was changed.")
        raw = b""
        while len(raw) <= MAX_SIZE and (chunk := os.read(fd, MAX_SIZE + 1 - len(raw))):
            raw += chunk
    finally:
        os.close(fd)
    if len(raw) > MAX_SIZE:
        raise InputFileError(f"{path} is larger than {MAX_SIZE // 1024} KiB; it is not a daemon.json.",
                             hint="Pass the engine's daemon.json with --daemon-json; nothing was "
                             "changed.")
    return raw


# Writing ------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class EditResult:
    """What an add or remove did: whether the file changed, its new list, and the backup."""

    path: Path
    entry: str
    changed: bool
    created: bool
    registries: tuple[str, ...]
    backup: Path | None


def render(config: DaemonConfig, data: Mapping[str, Any]) -> str:
    return json.dumps(data, indent=config.indent, ensure_ascii=False) + "\n"


def _backup_path(target: Path) -> Path:
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    return target.with_name(f"{target.name}.{stamp}.bak")


def save(config: DaemonConfig, data: Mapping[str, Any]) -> Path | None:
    """Replace the file with *data* atomically; return the backup of the old content, if any."""
    # Edit the file a symlink points to, so the link (e.g. into a config-management tree) stays.
    target = config.path.resolve() if config.path.is_symlink() else config.path
    payload = render(config, data).encode("utf-8")
    backup: Path | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        like = target.stat() if config.exists else None
        if config.exists:
            backup = _backup_path(target)
            shutil.copy2(target, backup)
            if like is not None:
                with contextlib.suppress(PermissionError):
                    os.chown(backup, like.st_uid, like.st_gid)
        write_atomic(target, payload, like=like)
    except PermissionError as exc:
        raise PermissionDeniedError(
            f"Not allowed to write {target} ({exc.strerror or type(exc).__name__}).",
            hint=AS_ROOT_HINT) from exc
    except OSError as exc:
        raise InputFileError(
            f"Cannot write {target} ({exc.strerror or type(exc).__name__}).",
            hint="Make room or fix the directory, or pass another file with --daemon-json; the "
            "file was not changed.",
        ) from exc
    log.info("wrote %s%s", target, f" (backup: {backup})" if backup else "")
    return backup


@contextlib.contextmanager
def _editing(path: Path, *, create: bool) -> Iterator[None]:
    """Hold the edit lock of *path* from load to save; with *create*, make its directory first."""
    directory = Path(os.path.realpath(path)).parent
    if not create and not directory.is_dir():
        yield  # no directory, no file: nothing will be written
        return
    with contextlib.ExitStack() as stack:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            stack.enter_context(edit_lock(path))
        except TimeoutError as exc:
            raise InputFileError(f"Another edit of {path} did not finish ({exc}).",
                                 hint="Run the command again once the other one has finished; "
                                 "nothing was changed.") from exc
        except PermissionError as exc:
            raise PermissionDeniedError(
                f"Not allowed to lock {path} for editing ({exc.strerror or type(exc).__name__}).",
                hint=AS_ROOT_HINT) from exc
        except OSError as exc:
            raise InputFileError(
                f"Cannot lock {path} for editing ({exc.strerror or type(exc).__name__}).",
                hint="Fix the directory, or pass another file with --daemon-json; the file was "
                "not changed.",
            ) from exc
        yield


def add_insecure_registry(path: Path, entry: str) -> EditResult:
    """Add *entry* to `insecure-registries` unless an equal entry is there already."""
    normalized = normalize_entry(entry)
    with _editing(path, create=True):
        return _add(path, normalized)


def _add(path: Path, normalized: str) -> EditResult:
    config = load(path)
    current = list(config.insecure_registries)
    if any(_same_entry(existing, normalized) for existing in current):
        return EditResult(path=path, entry=normalized, changed=False, created=False,
                          registries=tuple(current), backup=None)
    data = dict(config.data)
    data[KEY] = [*current, normalized]
    backup = save(config, data)
    return EditResult(path=path, entry=normalized, changed=True, created=not config.exists,
                      registries=tuple(data[KEY]), backup=backup)


def remove_insecure_registry(path: Path, entry: str) -> EditResult:
    """Remove every entry equal to *entry*; the key stays (possibly as an empty list)."""
    normalized = normalize_entry(entry)
    with _editing(path, create=False):
        return _remove(path, normalized)


def _remove(path: Path, normalized: str) -> EditResult:
    config = load(path)
    current = list(config.insecure_registries)
    kept = [existing for existing in current if not _same_entry(existing, normalized)]
    if len(kept) == len(current):
        return EditResult(path=path, entry=normalized, changed=False, created=False,
                          registries=tuple(current), backup=None)
    data = dict(config.data)
    data[KEY] = kept
    backup = save(config, data)
    return EditResult(path=path, entry=normalized, changed=True, created=False,
                      registries=tuple(kept), backup=backup)


# The engine's view --------------------------------------------------------------------------
Resolver = Callable[[str], Iterable[str]]


def _resolve(host: str) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return sorted({str(info[4][0]) for info in infos})


def insecure_reason(info: Mapping[str, Any], registry: str,
                    resolve: Resolver = _resolve) -> str | None:
    """Why the engine (from `client.info()`) treats *registry* as insecure, or None if it does not.

    Mirrors moby's `isSecureIndex`: an exact IndexConfigs entry decides; otherwise the registry's
    IP addresses are matched against InsecureRegistryCIDRs (127.0.0.0/8 and ::1/128 by default).
    """
    config = info.get("RegistryConfig") or {}
    index = (config.get("IndexConfigs") or {}).get(registry)
    if isinstance(index, Mapping) and "Secure" in index:
        return None if index["Secure"] else f"{registry} is listed in insecure-registries"
    host, _ = split_host_port(registry)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        addresses = list(resolve(host))
    for cidr in config.get("InsecureRegistryCIDRs") or ():
        try:
            network = ipaddress.ip_network(cidr, strict=False)
        except ValueError:
            continue
        for address in addresses:
            with contextlib.suppress(ValueError):
                if ipaddress.ip_address(address.split("%", 1)[0]) in network:
                    implicit = cidr in ENGINE_DEFAULT_INSECURE_CIDRS
                    return f"{address} is in {cidr}" + (" (loopback, insecure by default)"
                                                       if implicit else "")
    return None


def engine_lists(info: Mapping[str, Any], entry: str) -> bool:
    """True when the engine's loaded configuration contains *entry* itself (name or CIDR)."""
    config = info.get("RegistryConfig") or {}
    index = (config.get("IndexConfigs") or {}).get(entry)
    if isinstance(index, Mapping) and index.get("Secure") is False:
        return True
    if "/" not in entry:
        return False
    return any(_same_entry(cidr, entry) for cidr in config.get("InsecureRegistryCIDRs") or ())


# Reloading ----------------------------------------------------------------------------------
def _proc(pid: int, name: str) -> bytes | None:
    try:
        return Path(f"/proc/{pid}/{name}").read_bytes()
    except OSError:
        return None


def _dockerd_pids() -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (_proc(int(entry.name), "comm") or b"").strip() == b"dockerd":
            pids.append(int(entry.name))
    return pids


def find_dockerd(pidfile: Path | None, config: DaemonConfig) -> int:
    """The PID of the dockerd to signal: --pidfile, else daemon.json's "pidfile", else the default
    /var/run/docker.pid, else the only running dockerd. Checks that the PID really is dockerd."""
    candidates: list[Path] = []
    if pidfile is not None:
        candidates.append(pidfile)
    else:
        configured = config.data.get("pidfile")
        if isinstance(configured, str) and configured:
            candidates.append(Path(configured))
        candidates.append(DEFAULT_PIDFILE)
    for candidate in candidates:
        try:
            text = candidate.read_text().strip()
        except OSError:
            if pidfile is not None:
                raise UsageError(f"Cannot read the pidfile {candidate}.",
                                 hint="Pass the dockerd pidfile with --pidfile.") from None
            continue
        if not text.isdigit():
            raise InputFileError(f"The pidfile {candidate} does not hold a process ID.")
        pid = int(text)
        comm = _proc(pid, "comm")
        if comm is None or comm.strip() != b"dockerd":
            raise UsageError(
                f"The pidfile {candidate} names process {pid}, which is not a running dockerd.",
                hint="Start the engine, or pass the right pidfile with --pidfile.",
            )
        return pid
    running = _dockerd_pids()
    if len(running) == 1:
        return running[0]
    raise UsageError(
        "Cannot tell which dockerd to reload "
        + ("(none is running)." if not running else f"({len(running)} are running)."),
        hint="Pass the engine's pidfile with --pidfile, or run "
        + " or ".join(f"`{cmd}`" for cmd in RELOAD_COMMANDS) + " yourself.",
    )


def _config_file_of(pid: int) -> Path:
    """The daemon.json a running dockerd reads: its --config-file, else the rootful default."""
    args = [a.decode(errors="replace") for a in (_proc(pid, "cmdline") or b"").split(b"\0")]
    for i, arg in enumerate(args):
        if arg == "--config-file" and i + 1 < len(args):
            return Path(args[i + 1])
        if arg.startswith("--config-file="):
            return Path(arg.split("=", 1)[1])
    return DEFAULT_DAEMON_JSON


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return a.resolve() == b.resolve()


def signal_reload(path: Path, pidfile: Path | None) -> int:
    """Send SIGHUP to the dockerd that reads *path*; return its PID."""
    config = load(path)
    pid = find_dockerd(pidfile, config)
    reads = _config_file_of(pid)
    if not _same_file(reads, path):
        raise UsageError(
            f"dockerd (pid {pid}) reads {reads}, not {path}; a reload would not apply this change.",
            hint=f"Edit {reads} instead (--daemon-json {reads}), or pass the pidfile of the engine "
            "that uses this file with --pidfile.",
        )
    try:
        os.kill(pid, signal.SIGHUP)
    except PermissionError as exc:
        raise PermissionDeniedError(
            f"Not allowed to signal dockerd (pid {pid}).",
            hint=f"Run it as root: {AS_ROOT_COMMAND} … --reload (sudo resets PATH, so a plain "
            "`sudo jr` may not find jr), or run `sudo systemctl reload docker`.",
        ) from exc
    except ProcessLookupError as exc:
        raise UsageError(f"dockerd (pid {pid}) exited before it could be reloaded.") from exc
    log.info("sent SIGHUP to dockerd (pid %d)", pid)
    return pid


InfoSource = Callable[[], Mapping[str, Any]]


def wait_for_engine(info: InfoSource, entry: str, *, present: bool,
                    timeout: float = 15.0, interval: float = 0.25) -> None:
    """Poll the engine's info until *entry* is (or is no longer) in its insecure list.

    Bounded by *timeout*; raises EngineUnavailableError when the engine never shows the change
    (dockerd logs why, e.g. an invalid daemon.json).
    """
    deadline = time.monotonic() + timeout
    attempts = max(1, int(timeout / interval))
    for _ in range(attempts):
        try:
            listed = engine_lists(info(), entry)
        except JrError:
            raise
        except Exception as exc:  # docker.errors.* or requests errors from the SDK
            raise EngineUnavailableError(
                f"Could not read the engine's configuration after the reload ({type(exc).__name__})."
            ) from exc
        if listed == present:
            return
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    state = "lists" if not present else "does not list"
    raise EngineUnavailableError(
        f"After the reload the engine still {state} {entry} as an insecure registry.",
        hint="Check the engine's log (`journalctl -u docker`) for a rejected daemon.json, and that "
        "DOCKER_HOST names the engine that was reloaded.",
    )
