"""Hostile files, archives, names and servers (issue 11): each test builds the hostile input the
review reproduced (a crafted archive or layout, a daemon.json, a special file, a redirecting
server) and checks the documented outcome: the exit code, a one-line reason, nothing half-done,
no secret echoed, no hang."""

from __future__ import annotations

import contextlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry import image_archive
from jenkins_registry.atomic_file import edit_lock, write_atomic
from jenkins_registry.cli import push as push_cli
from jenkins_registry.cli.main import main as jr
from jenkins_registry.errors import ExitCode, InputFileError
from jenkins_registry.image_archive import MEDIA_OCI_INDEX, MEDIA_OCI_MANIFEST, open_image_source
from tests.support import nexus_emulator, services
from tests.support.jenkins_emulator import Fault, JenkinsEmulator
from tests.test_image_archive import image_config, sample_layers, sha, write_classic, write_oci_dir

Capture = pytest.CaptureFixture[str]
PASSWORD = "hunter2-Hostile-9f3e"  # a known secret typed where it does not belong
DIGEST = "sha256:" + "ab" * 32


def run_jr(capsys: Capture, argv: list[str], environ: dict[str, str] | None = None,
           command: Callable[..., int] = jr) -> tuple[int, str, str]:
    code = command(argv, environ if environ is not None else {})
    out, err = capsys.readouterr()
    assert PASSWORD not in out + err
    assert "Traceback" not in err
    return code, out, err


def finishes(action: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Run *action* in a thread; fail (instead of hanging the suite) if it blocks."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = action()
        except BaseException as exc:  # handed to the test below
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), "blocked (a FIFO was opened as if it were a file)"
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def unblock(fifo: Path) -> None:
    """Give a reader stuck on *fifo* its end of file (when the code under test blocked on it)."""
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


class Recorder:
    """Another server that a redirect points to; it must receive nothing."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def _any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorder.requests.append((self.command, self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = do_PUT = _any

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    server = Recorder()
    with services.serve_in_thread(server.server):
        yield server


# -- row 7: OCI indexes that list each other over and over ------------------------------------------


def _index_of(descriptor: dict[str, Any], times: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": MEDIA_OCI_INDEX,
                       "manifests": [descriptor] * times}).encode()


def _add_blob(layout: Path, data: bytes) -> dict[str, Any]:
    (layout / "blobs" / "sha256" / sha(data)[7:]).write_bytes(data)
    return {"mediaType": MEDIA_OCI_INDEX, "digest": sha(data), "size": len(data)}


def test_nested_indexes_listing_each_other_are_refused_at_once(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    manifest = write_oci_dir(layout, sample_layers()[:1])
    descriptor: dict[str, Any] = {"mediaType": MEDIA_OCI_MANIFEST, "digest": sha(manifest),
                                  "size": len(manifest)}
    for _ in range(4):  # four nested levels, each listing the level below 12 times
        descriptor = _add_blob(layout, _index_of(descriptor, 12))
    (layout / "index.json").write_bytes(_index_of(descriptor, 12))  # 12**5 manifests in all
    with pytest.raises(InputFileError, match=r"list more than 10000 entries"):
        open_image_source(layout, "oci")


def test_one_index_under_two_tags_names_two_images(tmp_path: Path) -> None:
    """Each index is parsed once, yet reached under each of its names (a layout holding one
    multi-platform image under two tags, as `skopeo copy` writes it)."""
    layout = tmp_path / "layout"
    manifest = write_oci_dir(layout, sample_layers()[:1])
    nested = _add_blob(layout, _index_of({"mediaType": MEDIA_OCI_MANIFEST, "digest": sha(manifest),
                                          "size": len(manifest),
                                          "platform": {"os": "linux", "architecture": "amd64"}}, 1))
    tags = [{**nested, "annotations": {"io.containerd.image.name": f"team/app:{tag}"}} for tag in "ab"]
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": tags}))
    assert open_image_source(layout, "oci", "team/app:b").repo_tags == ("team/app:b",)


# -- row 15: a crafted pax header (CVE-2024-6232) ------------------------------------------------------


def _archive_with_pax(path: Path, pax: bytes) -> Path:
    """A valid `docker save` archive with an extended header of *pax* in front of its first member."""
    write_classic(path, sample_layers()[:1])
    header = tarfile.TarInfo("././@PaxHeader")
    header.type = tarfile.XHDTYPE
    header.size = len(pax)
    crafted = header.tobuf(format=tarfile.USTAR_FORMAT) + pax + b"\0" * (-len(pax) % 512)
    path.write_bytes(crafted + path.read_bytes())
    return path


@pytest.mark.parametrize(("pax", "reason"), [
    (b"3 x" * 44_000 + b"=", "an extended tar header of 132001 bytes"),  # 130 KB: 14 s unbounded
    (b"1" * 60_000, "an implausibly long number"),  # below the size bound: 3 s in tarfile
    (b"3 x" * 20_000 + b"=\n", "a pax header is malformed"),
    (b"29 GNU.sparse.map=0,10,20,30\n", "a sparse file"),
])
def test_crafted_pax_headers_are_refused_before_tarfile_parses_them(
        tmp_path: Path, pax: bytes, reason: str, capsys: Capture) -> None:
    archive = _archive_with_pax(tmp_path / "img.tar", pax)
    code, _, err = run_jr(capsys, ["--from-archive", str(archive), "--registry", "127.0.0.1:1",
                                   "--name", "team/app"], command=push_cli.main)
    assert code == ExitCode.INVALID_INPUT_FILE
    assert reason in err and "nothing was pushed" in err


def test_honest_pax_headers_still_open(tmp_path: Path) -> None:
    """Long member names, as tools write them with pax records, are read as before."""
    layers = sample_layers()[:1]
    config = image_config(layers)
    long_dir = "d" * 150
    with tarfile.open(tmp_path / "img.tar", "w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in ((f"{long_dir}/layer.tar", layers[0]), ("c.json", config),
                           ("manifest.json", json.dumps([{"Config": "c.json", "RepoTags": ["a/b:c"],
                                                          "Layers": [f"{long_dir}/layer.tar"]}]).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.pax_headers = {"comment": "é" * 10}
            tar.addfile(info, io.BytesIO(data))
    assert open_image_source(tmp_path / "img.tar", "archive").config == config


def test_too_many_tar_members_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_archive, "MAX_TAR_MEMBERS", 3)
    write_classic(tmp_path / "img.tar", sample_layers())
    with pytest.raises(InputFileError, match="more than 3 members"):
        open_image_source(tmp_path / "img.tar", "archive")


# -- row 13: links out of an OCI layout ----------------------------------------------------------------


def _layer_blob(layout: Path) -> Path:
    manifest = json.loads((layout / "blobs" / "sha256" / json.loads(
        (layout / "index.json").read_text())["manifests"][0]["digest"][7:]).read_text())
    return layout / "blobs" / "sha256" / manifest["layers"][0]["digest"][7:]


@pytest.mark.parametrize("link", ["blob", "blobs directory"])
def test_a_link_out_of_the_layout_is_refused_before_any_upload(
        tmp_path: Path, link: str, recorder: Recorder, capsys: Capture) -> None:
    layout = tmp_path / "layout"
    write_oci_dir(layout, sample_layers())
    outside = tmp_path / "outside"
    outside.mkdir()
    if link == "blob":
        blob = _layer_blob(layout)
        blob.rename(outside / blob.name)
        blob.symlink_to(outside / blob.name)
    else:
        (layout / "blobs").rename(outside / "blobs")
        (layout / "blobs").symlink_to(outside / "blobs")
    registry = recorder.url.removeprefix("http://").rstrip("/")
    code, _, err = run_jr(capsys, ["--from-oci", str(layout), "--registry", registry,
                                   "--name", "team/app"], command=push_cli.main)
    assert recorder.requests == []  # refused before the registry was even asked
    assert code == ExitCode.INVALID_INPUT_FILE and "a link that leads out of the layout" in err


def test_a_fifo_in_the_layout_is_refused_without_blocking(tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    write_oci_dir(layout, sample_layers())
    blob = _layer_blob(layout)
    blob.unlink()
    os.mkfifo(blob)
    try:
        with pytest.raises(InputFileError, match="is not a regular file"):
            finishes(lambda: open_image_source(layout, "oci"))
    finally:
        unblock(blob)


# -- rows 12 and 16: registry addresses ---------------------------------------------------------------


@pytest.mark.parametrize(("registry", "reason"), [
    ("[127.0.0.1]:5000", "puts brackets around an IPv4 address"),
    ("[:::]:5000", "which is not an IPv6 address"),
])
def test_bracketed_non_ipv6_registries_are_usage_errors(tmp_path: Path, registry: str, reason: str,
                                                        capsys: Capture) -> None:
    write_classic(tmp_path / "img.tar", sample_layers()[:1])
    code, _, err = run_jr(capsys, ["--from-archive", str(tmp_path / "img.tar"), "--registry", registry,
                                   "--name", "team/app"], command=push_cli.main)
    assert code == ExitCode.USAGE and reason in err


@pytest.mark.parametrize("argv", [
    ["--image", "app:1", "--registry", f"http://user:{PASSWORD}@registry.example.com"],
    ["--image", "app:1", "--registry", f"user:{PASSWORD}@registry.example.com:5000"],
    ["--image", "app:1", "--registry", f"https://user:{PASSWORD}@registry.example.com/v2/"],
    ["--image", "app:1", "--registry", f"http://user:pa/{PASSWORD}@registry.example.com"],
])
def test_a_password_in_the_registry_is_never_echoed(argv: list[str], capsys: Capture) -> None:
    code, _, err = run_jr(capsys, argv, command=push_cli.main)
    assert code == ExitCode.USAGE and "****@" in err and "DOCKER_LOGIN_PASSWORD" in err


@pytest.mark.parametrize("argv", [
    ["docker", "insecure-registry", "add", f"http://user:{PASSWORD}@10.0.0.1:5000"],
    ["nexus", "setup", "--url", f"ftp://admin:{PASSWORD}@127.0.0.1:8081", "--repository", "d",
     "--http-port", "8082"],
    ["nexus", "setup", "--url", f"http://admin:{PASSWORD}@[::1", "--repository", "d", "--http-port", "8082"],
    ["jenkins", "credential", "--id", "reg", "--username", "u", "--jenkins-url", "http://[::1"],
])
def test_other_bad_addresses_are_usage_errors_without_the_password(argv: list[str], tmp_path: Path,
                                                                     capsys: Capture) -> None:
    if argv[0] == "docker":
        argv = [*argv, "--daemon-json", str(tmp_path / "daemon.json")]
    code, _, _ = run_jr(capsys, argv, {"NEXUS_PASSWORD": "x", "JENKINS_USER": "u",
                                       "JENKINS_API_TOKEN": "t", "DOCKER_LOGIN_PASSWORD": "p"})
    assert code == ExitCode.USAGE
    assert not (tmp_path / "daemon.json").exists()


# -- row 12: JSON nested past any honest document ------------------------------------------------------


def _deep(levels: int) -> str:
    return "[" * levels + "]" * levels


@pytest.mark.parametrize("levels", [100_000, 500])
@pytest.mark.parametrize("where", ["manifest.json", "config"])
def test_deeply_nested_archive_json_is_an_input_error(tmp_path: Path, where: str, levels: int,
                                                      capsys: Capture) -> None:
    layers = sample_layers()[:1]
    if where == "manifest.json":
        write_classic(tmp_path / "img.tar", layers)
        with tarfile.open(tmp_path / "img.tar", "a") as tar:  # a later member of the same name wins
            data = _deep(levels).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    else:
        config = json.loads(image_config(layers))
        write_classic(tmp_path / "img.tar", layers,
                      config=json.dumps(config)[:-1].encode() + b', "x": ' + _deep(levels).encode() + b"}")
    code, _, err = run_jr(capsys, ["--from-archive", str(tmp_path / "img.tar"), "--registry",
                                   "127.0.0.1:1", "--name", "team/app"], command=push_cli.main)
    assert code == ExitCode.INVALID_INPUT_FILE and "nests deeper than 64 levels" in err


# -- rows 12 and 17: daemon.json the engine would refuse -------------------------------------------


@pytest.mark.parametrize(("content", "reason"), [
    ('{"insecure-registries": [], "x": NaN}\n', "NaN is not a JSON value"),
    ('{"insecure-registries": [], "x": Infinity}\n', "Infinity is not a JSON value"),
    ('{"insecure-registries": [], "x": -Infinity}\n', "Infinity is not a JSON value"),
    ('{"insecure-registries": [], "max-concurrent-uploads": 1e400}\n', "1e400 is out of range"),
    ('{"x": ' + _deep(100_000) + "}\n", "nests deeper than 64 levels"),
    ('{"x": ' + _deep(500) + "}\n", "nests deeper than 64 levels"),
    ('{"x": ' + "9" * 5000 + "}\n", "a value cannot be read"),
])
def test_daemon_json_the_engine_would_refuse_is_left_untouched(
        tmp_path: Path, content: str, reason: str, capsys: Capture) -> None:
    path = tmp_path / "docker" / "daemon.json"
    path.parent.mkdir()
    path.write_text(content)
    code, out, err = run_jr(capsys, ["docker", "insecure-registry", "add", "10.0.0.1:5000",
                                     "--daemon-json", str(path)])
    assert code == ExitCode.INVALID_INPUT_FILE and reason in err and out == ""
    assert path.read_text() == content and os.listdir(path.parent) == ["daemon.json"]  # no backup


def test_a_fifo_at_the_daemon_json_path_is_refused_without_blocking(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "daemon.json"
    os.mkfifo(path)
    try:
        code, _, err = finishes(lambda: run_jr(capsys, ["docker", "insecure-registry", "add", "10.0.0.1:5000",
                                                        "--daemon-json", str(path)]))
    finally:
        unblock(path)
    assert code == ExitCode.INVALID_INPUT_FILE and "is not a regular file" in err


def test_a_huge_daemon_json_is_refused_unread(tmp_path: Path, capsys: Capture) -> None:
    path = tmp_path / "daemon.json"
    path.write_bytes(b" " * (1024 * 1024) + b"{}")
    code, _, err = run_jr(capsys, ["docker", "insecure-registry", "add", "10.0.0.1:5000",
                                   "--daemon-json", str(path)])
    assert code == ExitCode.INVALID_INPUT_FILE and "larger than 1024 KiB" in err
    assert path.stat().st_size == 1024 * 1024 + 2


# -- row 8: concurrent edits of one daemon.json -----------------------------------------------------


def _add_entry(path: str, entry: str, start: Any) -> None:
    start.wait(timeout=30)
    sys.exit(jr(["-q", "docker", "insecure-registry", "add", entry, "--daemon-json", path], {}))


def test_concurrent_adds_all_survive(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    path.write_text('{"debug": true}\n')
    context = multiprocessing.get_context("fork")
    start = context.Barrier(10)
    workers = [context.Process(target=_add_entry, args=(str(path), f"10.0.0.{n}:5000", start))
               for n in range(10)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0] * 10
    data = json.loads(path.read_text())
    assert data["debug"] is True
    assert sorted(data["insecure-registries"]) == sorted(f"10.0.0.{n}:5000" for n in range(10))


def test_an_edit_lock_held_elsewhere_times_out(tmp_path: Path) -> None:
    path = tmp_path / "daemon.json"
    with edit_lock(path), pytest.raises(TimeoutError), edit_lock(path, timeout=0.05):
        pass  # flock locks belong to the open file: a second open in one process waits too


# -- row 10: --digest-file on special files, and atomic on regular ones ----------------------------


def test_digest_file_into_a_fifo_is_written_in_place(tmp_path: Path) -> None:
    fifo = tmp_path / "digest"
    os.mkfifo(fifo)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)
    reader.start()
    finishes(lambda: write_atomic(fifo, DIGEST + "\n"))
    reader.join(timeout=10)
    assert received == [(DIGEST + "\n").encode()]
    assert fifo.is_fifo()


def test_digest_file_through_a_link_to_proc_self_fd_is_written_in_place(tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    try:
        link = tmp_path / "digest"
        link.symlink_to(f"/proc/self/fd/{write_end}")
        write_atomic(link, DIGEST + "\n")
        os.set_blocking(read_end, False)  # nothing written there must fail the test, not hang it
        assert os.read(read_end, 4096) == (DIGEST + "\n").encode()
        assert link.is_symlink() and os.readlink(link) == f"/proc/self/fd/{write_end}"
    finally:
        os.close(read_end)
        os.close(write_end)


def test_digest_file_through_a_link_replaces_the_target_and_keeps_the_link(tmp_path: Path) -> None:
    target = tmp_path / "real" / "digest.txt"
    target.parent.mkdir()
    target.write_text("old\n")
    link = tmp_path / "digest"
    link.symlink_to(target)
    write_atomic(link, DIGEST + "\n")
    assert link.is_symlink() and target.read_text() == DIGEST + "\n"


def test_digest_file_fifo_without_reader_fails_instead_of_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "digest"
    os.mkfifo(fifo)
    with pytest.raises(OSError):
        finishes(lambda: write_atomic(fifo, DIGEST + "\n"))
    assert fifo.is_fifo()


def test_digest_file_write_failing_half_way_leaves_the_old_content(tmp_path: Path) -> None:
    """A full disk, played by RLIMIT_FSIZE: the write stops after 30 bytes. Atomic replacement
    leaves the previous digest whole; writing in place would leave 30 bytes of the new one."""
    path = tmp_path / "out" / "digest.txt"
    path.parent.mkdir()
    old = "sha256:" + "00" * 32 + "\n"
    path.write_text(old)
    script = (
        "import resource, signal, sys\n"
        "from pathlib import Path\n"
        "from jenkins_registry.atomic_file import write_atomic\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (30, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "try:\n"
        "    write_atomic(Path(sys.argv[1]), sys.argv[2])\n"
        "except OSError as exc:\n"
        "    sys.exit(f'failed: {exc.strerror}')\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path), DIGEST + "\n"], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parent.parent)
    assert done.returncode == 1 and "failed: File too large" in done.stderr
    assert path.read_text() == old
    assert os.listdir(path.parent) == ["digest.txt"]  # no temporary file left behind


# -- row 11: no redirects on Jenkins or Nexus writes --------------------------------------------------


@pytest.mark.parametrize(("argv", "fault_path"), [
    (["jenkins", "credential", "--id", "reg", "--username", "pusher"], "/credentials/"),
    (["jenkins", "job", "--name", "app", "--type", "pipeline", "--registry", "127.0.0.1:8082",
      "--image", "team/app", "--credentials-id", "reg", "--scm-url", "https://git.example.com/a.git",
      "--allow-missing-credential"], "/createItem"),
])
def test_a_redirect_on_a_jenkins_write_sends_nothing_there(
        recorder: Recorder, argv: list[str], fault_path: str, capsys: Capture) -> None:
    with JenkinsEmulator(users={"admin": ("admin-pw", {"admin-token"})}) as emu:
        location = f"{recorder.url}stolen?x=1"
        emu.state.faults[("POST", fault_path)] = Fault(307, location=location)
        environ = {"JENKINS_URL": emu.url, "JENKINS_USER": "admin", "JENKINS_API_TOKEN": "admin-token",
                   "DOCKER_LOGIN_PASSWORD": PASSWORD}
        code, out, err = run_jr(capsys, argv, environ)
    assert recorder.requests == []
    assert code == ExitCode.SERVER and out == ""
    assert f"a redirect to {recorder.url}stolen)" in err and "nothing was sent there" in err


def test_a_redirect_on_a_nexus_write_is_an_error(recorder: Recorder, capsys: Capture) -> None:
    state = nexus_emulator.NexusState(users={"admin": "admin-pw"})
    state.redirects[("POST", "/service/rest/v1/security/users")] = (307, f"{recorder.url}users")
    with nexus_emulator.nexus(state) as nexus:
        environ = {"NEXUS_PASSWORD": "admin-pw", "DOCKER_LOGIN_PASSWORD": PASSWORD}
        code, out, err = run_jr(capsys, ["nexus", "setup", "--url", nexus.url, "--repository",
                                         "docker-hosted", "--http-port", "8082", "--user", "jenkins"],
                                environ)
    assert recorder.requests == []
    assert code == ExitCode.SERVER and "user jenkins" not in out
    assert f"a redirect to {recorder.url}users)" in err
    assert "jenkins" not in state.user_records


def test_the_recorder_records(recorder: Recorder) -> None:
    """The control: a request that does reach the recorder is seen."""
    import urllib.request

    with urllib.request.urlopen(urllib.request.Request(recorder.url + "x", data=b"body")) as answer:
        assert answer.status == 200
    assert recorder.requests == [("POST", "/x", b"body")]


def test_two_pushes_sharing_a_blob_cache_both_keep_their_entries(tmp_path: Path) -> None:
    """The blob cache is a file the tool rewrites: each save merges under the edit lock, so two
    pushes that loaded the same file do not drop each other's entries."""
    from jenkins_registry.daemonless_push import BlobInfoCache

    path = tmp_path / "blob-cache.json"
    first, second = BlobInfoCache(path), BlobInfoCache(path)
    first.record("sha256:" + "a" * 64, "gzip", "sha256:" + "1" * 64, 10, "127.0.0.1:5000/one")
    second.record("sha256:" + "b" * 64, "gzip", "sha256:" + "2" * 64, 20, "127.0.0.1:5000/two")
    first.save()
    second.save()
    again = BlobInfoCache(path)
    for layer, blob in (("a", "1"), ("b", "2")):
        found = again.lookup("sha256:" + layer * 64, "gzip", "127.0.0.1:5000")
        assert [k.digest for k in found] == ["sha256:" + blob * 64]
