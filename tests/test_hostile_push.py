"""The push under signals and load limits (issue 11): SIGTERM while a registry has stopped reading
an upload, an interrupt between tags, `--jobs` far past its cap, stale exports of killed runs, and
what the engine route must keep refusing (tags at different digests, an echoed password).

The registries are the real one (`services.registry`) where its behaviour is the point (deleting
a manifest), and `stalling_registry` where a registry must misbehave on cue. Interrupt tests
run jr-push as a process and send it the SIGTERM Jenkins sends when a build is aborted.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry import daemonless_push, engine_push, export_push, push_route
from jenkins_registry.cli import push as push_cli
from jenkins_registry.cli.common import run_command
from jenkins_registry.docker_engine import DockerEngine
from jenkins_registry.errors import ExitCode, JrError, RegistryError
from jenkins_registry.progress import NullProgress
from jenkins_registry.push_target import parse_request, plan_push
from jenkins_registry.secret_types import Secret, UsernamePassword
from tests.support import services
from tests.support.secret_checks import assert_absent
from tests.support.stalling_registry import Stall, fake_registry
from tests.test_image_archive import layer_tar, sample_layers, write_classic

SECRET = services.REGISTRY_PASSWORD
# What the review asks: out within 2 s of the first SIGTERM. The margin is for a loaded 2-core
# machine; without the fix the process stays until its socket timeout (minutes).
EXIT_WITHIN = 2.0
MARGIN = 2.0


def creds(password: str = SECRET) -> UsernamePassword:
    return UsernamePassword(username=services.REGISTRY_USER, password=Secret(password), source="test")


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    temp = tmp_path / "tmp"
    temp.mkdir(exist_ok=True)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "TMPDIR": str(temp),
            "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring", **extra}


def jr_push_process(env: dict[str, str], *argv: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "jenkins_registry.cli.push", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def terminate(proc: subprocess.Popen[bytes], times: int = 1) -> tuple[float, bytes, bytes]:
    """SIGTERM *proc* (*times* in a row); the seconds until it exited, and its output."""
    start = time.monotonic()
    for _ in range(times):
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        pytest.fail("jr-push was still running 60 s after SIGTERM")
    return time.monotonic() - start, out, err


@pytest.fixture(scope="module")
def big_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 32 MiB layer of random bytes: far more than loopback's socket buffers hold."""
    path = tmp_path_factory.mktemp("big") / "app.tar"
    write_classic(path, [layer_tar({"big.bin": os.urandom(32 << 20)})])
    return path


@pytest.fixture(scope="module")
def small_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("small") / "app.tar"
    write_classic(path, sample_layers())
    return path


# -- row 9: SIGTERM while the registry has stopped reading the upload ------------------------------


@pytest.mark.parametrize(("compression", "stalled"), [("gzip", "PATCH"), ("none", "PUT")])
def test_sigterm_while_the_registry_stopped_reading_exits_at_once(
    compression: str, stalled: str, big_archive: Path, tmp_path: Path,
) -> None:
    """gzip streams the layer in a PATCH, an uncompressed layer in one PUT: either way the upload
    thread is stuck in a send when the SIGTERM comes, and the process must not wait for it."""
    env = child_env(tmp_path)
    with fake_registry(Stall(stalled, r"/blobs/uploads/")) as registry:
        proc = jr_push_process(env, "--from-archive", str(big_archive), "--registry", registry.host,
                               "--tag", "1", "--compression", compression)
        assert registry.stalled.wait(60), "the upload never reached the registry"
        time.sleep(0.3)  # the socket buffers fill; the upload thread blocks in its send
        assert proc.poll() is None
        elapsed, out, err = terminate(proc)
        assert registry.tags_of("team/app") == []
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert elapsed < EXIT_WITHIN + MARGIN, f"exited {elapsed:.1f} s after SIGTERM"
    assert err.endswith(b"jr-push: interrupted\n") and b"Traceback" not in err
    assert out == b""
    assert list(Path(env["TMPDIR"]).iterdir()) == []
    assert big_archive.stat().st_size > 32 << 20  # the input is never touched


@pytest.fixture
def big_image(docker_client: Any) -> Iterator[str]:
    services.build_image(docker_client, "hostile-big:1", {"big.bin": os.urandom(32 << 20)})
    yield "hostile-big:1"
    docker_client.images.remove("hostile-big:1", force=True)


def test_sigterm_during_a_stalled_export_upload_removes_the_export_and_the_tags(
    docker_env: str, docker_client: Any, big_image: str, tmp_path: Path,
) -> None:
    """The export route: the export is on disk and its upload is stuck. Two SIGTERMs (a process
    group gets one per process): the clean-up still runs to the end."""
    env = child_env(tmp_path, DOCKER_HOST=docker_env)
    with fake_registry(Stall("PATCH", r"/blobs/uploads/")) as registry:
        proc = jr_push_process(env, "--image", big_image, "--registry", registry.host,
                               "--name", "hostile/export", "--tag", "1", "--via", "export")
        assert registry.stalled.wait(120), "the upload never reached the registry"
        assert [p.name[:10] for p in Path(env["TMPDIR"]).iterdir()] == ["jr-export-"]
        elapsed, _, err = terminate(proc, times=2)
        assert registry.tags_of("hostile/export") == []
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert elapsed < EXIT_WITHIN + MARGIN, f"exited {elapsed:.1f} s after SIGTERM"
    assert list(Path(env["TMPDIR"]).iterdir()) == []
    assert docker_client.api.inspect_image(big_image)["RepoTags"] == [big_image]  # given back


def test_a_second_sigterm_does_not_cut_the_clean_up_short() -> None:
    """A process group gets one SIGTERM per process, and callers repeat it: once the first has
    started the unwinding, later ones must not interrupt the clean-up it runs."""
    cleaned: list[str] = []

    def handler(args: argparse.Namespace) -> int:
        try:
            os.kill(os.getpid(), signal.SIGTERM)  # the abort: raises KeyboardInterrupt here
            time.sleep(30)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the second one, during the clean-up
            time.sleep(0.01)
            cleaned.append("export removed, tags given back")
        return 0

    before = signal.getsignal(signal.SIGTERM)
    parser = argparse.ArgumentParser(prog="jr-test")
    parser.set_defaults(handler=handler)
    assert run_command("jr-test", parser, [], {}) == ExitCode.INTERRUPTED
    assert cleaned == ["export removed, tags given back"]
    assert signal.getsignal(signal.SIGTERM) == before


# -- row 9, after a SIGKILL: the next run removes what it left -------------------------------------


def _aged(path: Path, seconds: float) -> Path:
    stamp = time.time() - seconds
    for item in [*path.rglob("*"), path] if path.is_dir() and not path.is_symlink() else [path]:
        os.utime(item, (stamp, stamp), follow_symlinks=False)
    return path


def test_the_next_export_removes_stale_exports_of_killed_runs_and_nothing_else(
    docker_env: str, docker_client: Any, registry: services.Registry, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    services.build_image(docker_client, "hostile-small:1", {"small.txt": b"small\n"})
    temp = tmp_path / "tmp"
    temp.mkdir()
    day = export_push.STALE_EXPORT_SECONDS

    def export_dir(name: str, age: float, *, inner_age: float | None = None) -> Path:
        directory = temp / name
        directory.mkdir()
        (directory / "image.tar").write_bytes(b"x" * 1024)
        _aged(directory, age)
        if inner_age is not None:
            _aged(directory / "image.tar", inner_age)
        return directory

    killed = export_dir("jr-export-killed", 2 * day)
    another_build = export_dir("jr-export-live", 60)
    still_written = export_dir("jr-export-writing", 2 * day, inner_age=5)  # its tar is growing
    elsewhere = export_dir("victim", 2 * day)
    (temp / "jr-export-link").symlink_to(elsewhere)
    _aged(temp / "jr-export-link", 2 * day)
    not_a_dir = temp / "jr-export-file"
    not_a_dir.write_bytes(b"y")
    _aged(not_a_dir, 2 * day)
    foreign = export_dir("jr-export-foreign", 2 * day)
    if os.geteuid() == 0:
        os.chown(foreign, 65534, 65534)
        _aged(foreign, 2 * day)

    code = push_cli.main(["--image", "hostile-small:1", "--registry", registry.host, "--name",
                          "hostile/stale", "--tag", "1", "--via", "export"],
                         {"DOCKER_HOST": docker_env, "TMPDIR": str(temp),
                          "DOCKER_LOGIN_USERNAME": services.REGISTRY_USER,
                          "DOCKER_LOGIN_PASSWORD": SECRET})
    err = capsys.readouterr().err
    docker_client.images.remove("hostile-small:1")
    assert code == 0, err
    assert f"removed {killed}, the export of an earlier run that was killed" in err
    assert sorted(p.name for p in temp.iterdir()) == sorted(
        ["jr-export-live", "jr-export-writing", "victim", "jr-export-link", "jr-export-file",
         "jr-export-foreign"])
    assert (another_build / "image.tar").exists() and (still_written / "image.tar").exists()
    assert (elsewhere / "image.tar").exists() and (foreign / "image.tar").exists()


def test_an_export_is_stale_a_day_after_its_last_change(tmp_path: Path) -> None:
    export = tmp_path / "jr-export-abc"
    export.mkdir()
    (export / "image.tar").write_bytes(b"x")
    changed = (export / "image.tar").stat().st_mtime
    day = export_push.STALE_EXPORT_SECONDS
    assert export_push.remove_stale_exports(str(tmp_path), now=changed + day - 60) == []
    assert export_push.remove_stale_exports(str(tmp_path), now=changed + day + 60) == [str(export)]
    assert not export.exists()
    # an unusable TMPDIR is not the push's failure
    assert export_push.remove_stale_exports(str(tmp_path / "missing")) == []


# -- row 14: --jobs is capped, memory stays flat past the cap -----------------------------------------

# Runs jr-push and prints its peak RSS (VmHWM: this process's own, from exec on; ru_maxrss of
# a child also counts the test process's pages it was forked with).
_MEASURED = ("import re, sys; from jenkins_registry.cli.push import main; code = main(sys.argv[1:]); "
             "print(re.search(r'VmHWM:\\s+(\\d+) kB', open('/proc/self/status').read()).group(1)); "
             "sys.exit(code)")


@pytest.fixture(scope="module")
def text_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One 96 MiB layer that deflate works on (hex text): slower to compress than to read, so
    the reader gets ahead as far as it is allowed to."""
    words = os.urandom(1 << 15).hex().encode()
    data = (words * ((96 << 20) // len(words) + 1))[: 96 << 20]
    path = tmp_path_factory.mktemp("text") / "app.tar"
    write_classic(path, [layer_tar({"big.txt": data})])
    return path


def _peak_rss(archive: Path, jobs: int, tmp_path: Path) -> tuple[int, str]:
    with fake_registry() as registry:
        done = subprocess.run(
            [sys.executable, "-c", _MEASURED, "--from-archive", str(archive), "--registry",
             registry.host, "--tag", "1", "--jobs", str(jobs)],
            env=child_env(tmp_path), capture_output=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert registry.tags_of("team/app") == ["1"]
    return int(done.stdout.split()[-1]) << 10, done.stderr.decode()


def test_jobs_far_past_the_cap_use_no_more_memory(text_archive: Path, tmp_path: Path) -> None:
    cap = daemonless_push.MAX_JOBS
    at_cap, _ = _peak_rss(text_archive, cap, tmp_path)
    far_past, err = _peak_rss(text_archive, 512, tmp_path)
    assert f"using {cap} parallel uploads (the most jr-push runs), not 512" in err
    assert far_past <= at_cap + (8 << 20), (at_cap >> 20, far_past >> 20)


def test_the_cap_is_in_help_and_matches_the_library(capsys: pytest.CaptureFixture[str]) -> None:
    assert push_cli.MAX_JOBS == daemonless_push.MAX_JOBS
    assert push_cli.main(["--help"]) == 0
    assert f"capped at {daemonless_push.MAX_JOBS}" in " ".join(capsys.readouterr().out.split())
    assert push_cli.main(["--from-archive", "x.tar", "--registry", "127.0.0.1:5000", "--jobs", "0"],
                         {}) == ExitCode.USAGE
    assert f"from 1 to {daemonless_push.MAX_JOBS}" in capsys.readouterr().err
    assert daemonless_push.effective_jobs(10**9) == daemonless_push.MAX_JOBS


# -- row 18: an interrupt between tags -------------------------------------------------------------


class _InterruptAfterFirstTag(NullProgress):
    """Raises where the SIGTERM handler raises, right after the first tag was written."""

    def message(self, text: str) -> None:
        if ": digest: " in text:
            raise KeyboardInterrupt


def _push(archive: Path, registry: str, repository: str, tags: list[str],
          progress: Any = None) -> Any:
    return daemonless_push.push_source(
        archive, "archive", parse_request(registry, repository, tags), creds(),
        progress or NullProgress(), daemonless_push.SourcePushOptions(jobs=2))


def test_an_interrupt_after_the_first_of_three_tags_takes_it_back(
    small_archive: Path, registry: services.Registry, caplog: pytest.LogCaptureFixture,
) -> None:
    """The manifest is new: deleting it (by digest, the only way Docker's registry deletes)
    removes exactly this run's tags."""
    name = "hostile/interrupted-new"
    with pytest.raises(KeyboardInterrupt):
        _push(small_archive, registry.host, name, ["a", "b", "c"], _InterruptAfterFirstTag())
    assert registry.tags(name) == []
    assert "took back those written" in caplog.text
    assert_absent(SECRET, caplog.text)


def test_an_interrupt_never_deletes_a_manifest_the_registry_held_before(
    small_archive: Path, registry: services.Registry, caplog: pytest.LogCaptureFixture,
) -> None:
    """The same image is already tagged `old` (another build's tag): deleting the manifest would
    delete `old` too, so the tag written before the interrupt stays, as docs/push.md says."""
    name = "hostile/interrupted-existing"
    earlier = _push(small_archive, registry.host, name, ["old"])
    with pytest.raises(KeyboardInterrupt):
        _push(small_archive, registry.host, name, ["a", "b", "c"], _InterruptAfterFirstTag())
    assert registry.tags(name) == ["a", "old"]
    assert registry.manifest_digest(name, "a") == registry.manifest_digest(name, "old") \
        == earlier.digest
    assert "which the registry held before this push, so it is not deleted" in caplog.text


def test_sigterm_while_the_second_tag_hangs_takes_the_first_back_and_exits(
    small_archive: Path, tmp_path: Path,
) -> None:
    with fake_registry(Stall("PUT", r"/manifests/", skip=1)) as registry:
        proc = jr_push_process(child_env(tmp_path), "--from-archive", str(small_archive),
                               "--registry", registry.host, "--tag", "a", "--tag", "b",
                               "--tag", "c")
        assert registry.stalled.wait(60), "the second tag was never written"
        assert registry.tags_of("team/app") == ["a"]
        elapsed, _, err = terminate(proc)
        assert registry.tags_of("team/app") == []
        assert registry.manifests == {}
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert elapsed < EXIT_WITHIN + MARGIN, f"exited {elapsed:.1f} s after SIGTERM"
    assert b"took back those written" in err


def test_a_registry_that_does_not_answer_the_take_back_does_not_hold_the_exit(
    small_archive: Path, tmp_path: Path,
) -> None:
    with fake_registry(Stall("PUT", r"/manifests/", skip=1), Stall("DELETE", r"/manifests/")) \
            as registry:
        proc = jr_push_process(child_env(tmp_path), "--from-archive", str(small_archive),
                               "--registry", registry.host, "--tag", "a", "--tag", "b")
        assert registry.stalled.wait(60)
        elapsed, _, err = terminate(proc)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert elapsed < EXIT_WITHIN + MARGIN, f"exited {elapsed:.1f} s after SIGTERM"
    assert b"the tags written so far stay" in err


# -- the engine route: what holds today, now protected ---------------------------------------------

IMAGE_ID = "sha256:" + "d" * 64


class _Images:
    def get(self, name: str) -> Any:
        return type("Image", (), {"id": IMAGE_ID,
                                  "attrs": {"Size": 10, "RootFS": {"Layers": ["sha256:" + "e" * 64]}}})


class _StandInSdk:
    """The docker SDK client as `DockerEngine` uses it, for what the real engine cannot be made
    to do on demand: echo the password in a login error, or report one tag at another digest
    (a concurrent push between two of this run's tags)."""

    def __init__(self, *, login_error: str | None = None,
                 digests: dict[str, str] | None = None) -> None:
        self.login_error = login_error
        self.digests = digests or {}
        self.names: dict[str, str] = {"app:1": IMAGE_ID}
        self.images = _Images()
        self.api = self

    def inspect_image(self, name: str) -> dict[str, Any]:
        import docker

        if name == IMAGE_ID:
            return {"Id": name, "RepoTags": [n for n, i in self.names.items() if i == name]}
        if name not in self.names:
            raise docker.errors.ImageNotFound(f"No such image: {name}")
        return {"Id": self.names[name]}

    def tag(self, image: str, repository: str, tag: str, **kwargs: Any) -> bool:
        self.names[f"{repository}:{tag}"] = image
        return True

    def remove_image(self, name: str, **kwargs: Any) -> list[dict[str, str]]:
        del self.names[name]
        return [{"Untagged": name}]

    def login(self, **kwargs: Any) -> dict[str, str]:
        import docker

        if self.login_error is not None:
            raise docker.errors.APIError("500 Server Error: Internal Server Error",
                                         explanation=self.login_error)
        return {"Status": "Login Succeeded"}

    def push(self, repository: str, tag: str, **kwargs: Any) -> Iterator[dict[str, Any]]:
        yield {"status": "Pushed", "id": "eeeeeeeeeeee"}
        yield {"aux": {"Tag": tag, "Digest": self.digests[tag], "Size": 525}}


def test_tags_of_one_run_at_different_digests_are_an_error_not_one_digest() -> None:
    mine, theirs = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    sdk = _StandInSdk(digests={"1": mine, "2": mine, "latest": theirs})
    plan = plan_push("app:1", registry="127.0.0.1:5000", repository="team/app",
                     tags=["1", "2", "latest"])
    engine = DockerEngine(sdk)
    with pytest.raises(RegistryError) as caught:
        engine_push.push_tags(engine, plan, engine.find_image("app:1"), creds(), NullProgress())
    assert mine in caught.value.message and theirs in caught.value.message
    assert "Another push to the same tags ran at the same time" in str(caught.value.hint)
    assert caught.value.exit_code == ExitCode.REGISTRY


@pytest.mark.parametrize("echo", [
    f"Get \"https://127.0.0.1:5000/v2/\": login ci-bot:{SECRET} refused by the proxy",  # generic
    f"Get \"https://ci-bot:{SECRET}@127.0.0.1:5000/v2/\": x509: certificate signed by unknown "
    "authority",  # tls: the text is quoted in the message
    f"Get \"https://127.0.0.1:5000/v2/?password={SECRET}\": dial tcp 127.0.0.1:5000: connect: "
    "connection refused",  # unreachable: likewise
], ids=["generic", "tls", "unreachable"])  # ids: the secret stays out of the test report
def test_a_password_echoed_by_the_engines_login_never_reaches_the_exception(echo: str) -> None:
    """The CLI masks every secret it has held; a library caller gets the exception as it is."""
    plan = plan_push("app:1", registry="127.0.0.1:5000", repository="team/app", tags=["1"])
    options = push_route.LocalPushOptions(route="engine", engine_address="unix:///run/docker.sock")
    with pytest.raises(JrError) as caught:
        push_route.push_local_image(DockerEngine(_StandInSdk(login_error=echo)), plan, creds(),
                                    NullProgress(), options)
    error = caught.value
    shown = "".join(traceback.format_exception(error))
    assert re.search(r"127\.0\.0\.1:5000", error.message)
    assert_absent(SECRET, str(error), repr(error), repr(error.args), error.message, error.hint, shown)
    assert error.__cause__ is None and error.__context__ is None  # the SDK's error is not kept


@pytest.fixture(autouse=True)
def _log_level(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="jenkins_registry")
