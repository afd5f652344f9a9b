"""Many agents, one registry: concurrent `jr-push` processes through a faulty proxy, then checks.

Shared by tests/test_load.py (a few pushes, in the default suite) and benchmarks/bench_load.py
(sixteen). One `run_load`:

1. builds small images that share a base layer: a base image (FROM scratch, one file) built alike
   in every engine, so its layer has one DiffID everywhere, and per push an image FROM it with one
   own layer; the images of daemonless pushes are saved as `docker save` archives;
2. starts a `BlobFaultProxy` in front of the registry: a share of the blob requests (`/blobs/` in
   the path) fails, as a 503, as a connection dropped while the request is read, or as a
   connection dropped after the registry handled the request (the answer lost);
3. starts every `jr-push` at once: `--image … --via export` on an agent with an engine
   (DOCKER_HOST; two pushes of one repository on one engine take turns, as docs/push.md says),
   `--from-archive` on an agent without one; credentials in DOCKER_LOGIN_USERNAME/PASSWORD;
   every process bounded in time, killed at the bound;
4. checks (`verify`), straight against the registry and an engine: each exit code is 0 or a
   documented failure; every tag of the run's repositories names a complete image (manifest, then
   `HEAD` of the config and every layer → 200); every successful push's tags exist and their
   config digest is the image ID; no name made for a push is left on an engine, no export left in
   TMPDIR, no password in any output; and, after the local images are removed, every tag pulls
   back through the engine with its image ID and DiffIDs.

Network: loopback only (the registry, the proxy and the engines' unix sockets).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import http.server
import json
import random
import re
import secrets
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from jenkins_registry.errors import ExitCode
from tests.support import services
from tests.support.fault_proxy import FaultProxy, Rule, _handler
from tests.support.secret_checks import secret_forms

Route = Literal["export", "archive"]

# Exit codes a push may end with and still count as "failed the documented way": every ExitCode
# but FAILURE, which is an unexpected error (a bug).
DOCUMENTED_EXIT_CODES = frozenset(int(code) for code in ExitCode if code is not ExitCode.FAILURE)
FAULT_KINDS = ("503", "drop", "drop_response")
BLOB_PATH = re.compile(r"/v2/.+/blobs/")
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)
POLL_SECONDS = 0.05


# ---------------------------------------------------------------------------------------------
# The proxy


@dataclass
class BlobFaultProxy(FaultProxy):
    """A FaultProxy that fails `share` of the blob requests: one in each run of round(1 / share)
    of them, at a random place in the run (seeded), so N requests see N // period failures or one
    more, whatever the timing. Each fault's kind is drawn from FAULT_KINDS. The base class's rules
    still apply to every other request."""

    share: float = 0.05
    seed: int = 0
    blob_requests: int = 0
    injected: collections.Counter[str] = field(default_factory=collections.Counter)
    _rng: random.Random = field(init=False, repr=False)
    _period: int = field(init=False, default=0)
    _slot: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._period = round(1 / self.share) if self.share > 0 else 0

    def take_rule(self, method: str, path: str) -> Rule | None:
        if BLOB_PATH.search(path):
            with self.lock:
                index = self.blob_requests
                self.blob_requests += 1
                kind = None
                if self._period:
                    if index % self._period == 0:
                        self._slot = self._rng.randrange(self._period)
                    if index % self._period == self._slot:
                        kind = self._rng.choice(FAULT_KINDS)
                        self.injected[f"{method} {kind}"] += 1
                        after = self._rng.randrange(0, 64 * 1024)
            if kind is not None:
                # A fresh one-shot rule: the handler reads it after the lock is released.
                action = "status" if kind == "503" else kind
                return Rule(method, path, action, status=503, after_bytes=after, fired=1)
        return super().take_rule(method, path)

    @property
    def injected_total(self) -> int:
        with self.lock:
            return sum(self.injected.values())


class _ProxyServer(http.server.ThreadingHTTPServer):
    request_queue_size = 128  # sixteen clients with parallel uploads connect at once


@contextlib.contextmanager
def blob_fault_proxy(upstream: str, share: float, seed: int = 0) -> Iterator[BlobFaultProxy]:
    """Start a BlobFaultProxy on 127.0.0.1 in front of *upstream*; stopped on exit."""
    proxy = BlobFaultProxy(upstream=upstream, share=share, seed=seed)
    server = _ProxyServer(("127.0.0.1", 0), _handler(proxy))
    with services.serve_in_thread(server) as port:
        proxy.port = port
        yield proxy


# ---------------------------------------------------------------------------------------------
# What runs


@dataclass(frozen=True, kw_only=True)
class LoadImage:
    name: str  # the local name in the engine that built it
    image_id: str
    diff_ids: tuple[str, ...]
    engine: str  # DOCKER_HOST of that engine
    archive: Path | None  # the `docker save` file, for a daemonless push


@dataclass(frozen=True, kw_only=True)
class PushJob:
    number: int
    route: Route
    image: LoadImage
    repository: str
    tags: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class PushOutcome:
    job: PushJob
    exit_code: int | None  # None: still running at the time bound, then killed
    seconds: float
    result: Mapping[str, Any]  # jr-push --json, when it exited 0
    stdout: str
    stderr: str
    temp_dir: Path


@dataclass(frozen=True, kw_only=True)
class LoadSpec:
    pushes: int = 4
    repositories: int = 1  # pushes spread over this many repositories, round robin
    share: float = 0.05  # of blob requests failed by the proxy
    base_bytes: int = 2 << 20
    own_bytes: int = 512 << 10
    push_timeout: float = 300.0  # per process, and for the whole batch
    seed: int = 0


@dataclass(kw_only=True)
class LoadReport:
    spec: LoadSpec
    outcomes: list[PushOutcome]
    wall_seconds: float  # first process started → last one ended
    blob_requests: int
    injected: dict[str, int]  # "METHOD kind" → count
    base_shared: bool  # every image's first DiffID is the same
    tags_checked: int = 0
    blobs_checked: int = 0
    pulled: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return sum(1 for o in self.outcomes if o.exit_code == 0)

    @property
    def pushes_per_minute(self) -> float:
        return 60.0 * self.succeeded / self.wall_seconds if self.wall_seconds > 0 else 0.0

    @property
    def injected_total(self) -> int:
        return sum(self.injected.values())

    def exit_codes(self) -> dict[str, int]:
        counts = collections.Counter("killed" if o.exit_code is None else str(o.exit_code)
                                     for o in self.outcomes)
        return dict(sorted(counts.items()))

    def median_seconds(self, route: Route) -> float:
        times = [o.seconds for o in self.outcomes if o.job.route == route]
        return statistics.median(times) if times else 0.0

    def failures(self) -> list[str]:
        """One line per push that did not exit 0: its exit code and its last error line."""
        lines = []
        for outcome in self.outcomes:
            if outcome.exit_code != 0:
                errors = [line for line in outcome.stderr.splitlines() if "error" in line.lower()]
                last = errors[-1] if errors else (outcome.stderr.strip().splitlines() or [""])[-1]
                lines.append(f"push {outcome.job.number} ({outcome.job.route}, {outcome.job.repository}) "
                             f"exit {outcome.exit_code}: {last[:300]}")
        return lines

    def summary(self) -> str:
        injected = ", ".join(f"{k} {v}" for k, v in sorted(self.injected.items())) or "none"
        return (f"{self.succeeded}/{len(self.outcomes)} pushes ok in {self.wall_seconds:.1f} s "
                f"({self.pushes_per_minute:.1f}/min); exit codes {self.exit_codes()}; blob requests "
                f"{self.blob_requests}, failed by the proxy {self.injected_total} ({injected}); "
                f"{self.tags_checked} tags and {self.blobs_checked} blobs checked, {self.pulled} pulled "
                f"back; {len(self.problems)} problems")


def jr_push_command() -> str:
    """The console script installed next to this interpreter, as an agent runs it."""
    return str(Path(sys.executable).parent / "jr-push")


def isolated_environ(root: Path, base: Mapping[str, str]) -> dict[str, str]:
    """*base* with HOME, XDG dirs, DOCKER_CONFIG and the keyring pointed into *root* (for a run
    outside pytest, whose fixtures do the same), and no credential or registry variable."""
    env = {k: v for k, v in base.items()
           if not k.startswith(("DOCKER_", "JR_", "XDG_", "JENKINS_", "NEXUS_"))}
    home = root / "home"
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), DOCKER_CONFIG=str(home / ".docker"),
               PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring")
    for var in ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_RUNTIME_DIR"):
        env[var] = str(home / var.lower())
    return env


# ---------------------------------------------------------------------------------------------
# Building


def _build(client: Any, tag: str, files: Mapping[str, bytes], base: str) -> Any:
    image, _ = client.images.build(fileobj=services.image_context(files, base=base), custom_context=True,
                                   tag=tag, rm=True, forcerm=True)
    return image


def build_images(clients: Mapping[str, Any], routes: Sequence[Route], prefix: str, spec: LoadSpec,
                 workdir: Path) -> tuple[list[LoadImage], dict[str, str]]:
    """One image per push, each FROM the run's base image, built round robin over the engines
    (*clients* by DOCKER_HOST) per route, so the export pushes spread evenly; archives saved for
    the daemonless ones. Returns the images and the base image ID per engine."""
    rng = random.Random(spec.seed)
    base_data = rng.randbytes(spec.base_bytes)
    bases: dict[str, str] = {}
    base_name = f"{prefix}-base:1"
    for host, client in clients.items():
        bases[host] = _build(client, base_name, {"base.bin": base_data}, "scratch").id
    hosts = list(clients)
    images = []
    per_route: collections.Counter[Route] = collections.Counter()
    for number, route in enumerate(routes):
        host = hosts[per_route[route] % len(hosts)]
        per_route[route] += 1
        name = f"{prefix}-{number}:1"
        own = {"own.bin": rng.randbytes(spec.own_bytes), "number.txt": f"{prefix} {number}\n".encode()}
        image = _build(clients[host], name, own, base_name)
        archive = None
        if route == "archive":
            archive = workdir / f"{prefix}-{number}.tar"
            with archive.open("wb") as out:
                for chunk in image.save(named=True):
                    out.write(chunk)
        images.append(LoadImage(name=name, image_id=image.id, diff_ids=tuple(image.attrs["RootFS"]["Layers"]),
                                engine=host, archive=archive))
    return images, bases


def plan_jobs(images: Sequence[LoadImage], routes: Sequence[Route], prefix: str,
              repositories: int) -> list[PushJob]:
    """Push n of image n to `PREFIX/app` (or `PREFIX/appK`, round robin), tags `bN` and `latest`:
    a build-number tag of its own and the tag every build of the repository moves."""
    jobs = []
    for number, (image, route) in enumerate(zip(images, routes, strict=True)):
        repository = f"{prefix}/app" if repositories == 1 else f"{prefix}/app{number % repositories}"
        jobs.append(PushJob(number=number, route=route, image=image, repository=repository,
                            tags=(f"b{number}", "latest")))
    return jobs


# ---------------------------------------------------------------------------------------------
# Running


def run_pushes(jobs: Sequence[PushJob], registry_host: str, environ: Mapping[str, str], workdir: Path,
               username: str, password: str, timeout: float) -> tuple[list[PushOutcome], float]:
    """Start every push at once; wait for all of them, killing any still running at *timeout*.
    Returns the outcomes and the wall time from the first start to the last end."""
    command = jr_push_command()
    running = []
    started = time.monotonic()
    for job in jobs:
        temp_dir = workdir / f"tmp-{job.number}"
        temp_dir.mkdir()
        env = {k: v for k, v in environ.items() if k not in ("DOCKER_HOST", "JR_PUSH_VIA", "JR_KEEP_TAGS")}
        env.update(DOCKER_LOGIN_USERNAME=username, DOCKER_LOGIN_PASSWORD=password, TMPDIR=str(temp_dir))
        argv = [command, "--registry", registry_host, "--name", job.repository, "--json"]
        for tag in job.tags:
            argv += ["--tag", tag]
        if job.route == "export":
            env["DOCKER_HOST"] = job.image.engine
            argv += ["--image", job.image.name, "--via", "export"]
        else:  # an agent without an engine
            argv += ["--from-archive", str(job.image.archive)]
        out = (workdir / f"push-{job.number}.out").open("w+")
        err = (workdir / f"push-{job.number}.err").open("w+")
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        running.append((job, proc, out, err, temp_dir, time.monotonic()))
    ended: dict[int, float] = {}
    deadline = started + timeout
    while len(ended) < len(running) and time.monotonic() < deadline:
        for job, proc, *_ in running:
            if job.number not in ended and proc.poll() is not None:
                ended[job.number] = time.monotonic()
        time.sleep(POLL_SECONDS)
    outcomes = []
    for job, proc, out, err, temp_dir, start in running:
        code: int | None = proc.poll()
        if code is None:
            proc.kill()
            proc.wait(timeout=30)
            ended[job.number] = time.monotonic()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        out.close()
        err.close()
        result: Mapping[str, Any] = {}
        if code == 0:
            with contextlib.suppress(ValueError):
                result = json.loads(stdout)
        outcomes.append(PushOutcome(job=job, exit_code=code, seconds=ended[job.number] - start,
                                    result=result, stdout=stdout, stderr=stderr, temp_dir=temp_dir))
    wall = max(ended.values(), default=started) - started
    return outcomes, wall


# ---------------------------------------------------------------------------------------------
# Checking


def registry_call(registry: services.Registry, method: str, path: str, accept: Sequence[str] = (),
                  body: bytes | None = None, content_type: str = "application/octet-stream",
                  ) -> tuple[int, dict[str, str], bytes]:
    """One request straight to the registry (not through the proxy), basic auth."""
    request = urllib.request.Request(registry.url + path, method=method, data=body)
    if accept:
        request.add_header("Accept", ", ".join(accept))
    if body is not None:
        request.add_header("Content-Type", content_type)
    if registry.username and registry.password:
        token = base64.b64encode(f"{registry.username}:{registry.password}".encode()).decode()
        request.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


@dataclass(frozen=True)
class TagState:
    repository: str
    tag: str
    digest: str
    config: str
    complete: bool


def registry_state(registry: services.Registry, prefix: str) -> tuple[list[TagState], list[str], int]:
    """Every tag of the repositories under *prefix*, with its manifest digest, config digest and
    whether every blob it names is there. Returns the tags, problems and the blobs checked."""
    problems: list[str] = []
    status, _, body = registry_call(registry, "GET", "/v2/_catalog?n=1000")
    if status != 200:
        return [], [f"catalog: HTTP {status}"], 0
    repositories = [r for r in json.loads(body).get("repositories") or [] if r.startswith(prefix + "/")]
    states, blobs_checked = [], 0
    for repository in repositories:
        status, _, body = registry_call(registry, "GET", f"/v2/{repository}/tags/list")
        tags = (json.loads(body).get("tags") or []) if status == 200 else []
        for tag in tags:
            path = f"/v2/{repository}/manifests/{tag}"
            status, headers, body = registry_call(registry, "GET", path, MANIFEST_TYPES)
            if status != 200:
                problems.append(f"{repository}:{tag}: the manifest answers HTTP {status}")
                continue
            manifest = json.loads(body)
            if manifest.get("mediaType", MANIFEST_TYPES[1]) not in MANIFEST_TYPES:
                problems.append(f"{repository}:{tag}: not an image manifest ({manifest.get('mediaType')})")
                continue
            config = manifest["config"]["digest"]
            complete = True
            for blob in [config, *(layer["digest"] for layer in manifest["layers"])]:
                blobs_checked += 1
                status, _, _ = registry_call(registry, "HEAD", f"/v2/{repository}/blobs/{blob}")
                if status != 200:
                    complete = False
                    problems.append(f"{repository}:{tag}: tag on an incomplete image, "
                                    f"blob {blob[:19]} answers HTTP {status}")
            digest = headers.get("docker-content-digest", "")
            states.append(TagState(repository, tag, digest, config, complete))
    return states, problems, blobs_checked


def check_outcomes(outcomes: Sequence[PushOutcome], states: Sequence[TagState], password: str) -> list[str]:
    """The pure part of the checks: exit codes, what each push said, what the registry holds."""
    problems = []
    by_tag = {(s.repository, s.tag): s for s in states}
    allowed: dict[tuple[str, str], set[str]] = collections.defaultdict(set)
    for outcome in outcomes:
        job = outcome.job
        label = f"push {job.number} ({job.route}, {job.repository})"
        if outcome.exit_code is None:
            problems.append(f"{label}: still running at the time bound")
        elif outcome.exit_code not in DOCUMENTED_EXIT_CODES:
            problems.append(f"{label}: exit code {outcome.exit_code} is not a documented failure: "
                            f"{outcome.stderr[-600:]!r}")
        for form in secret_forms(password):
            if form in outcome.stdout or form in outcome.stderr:
                problems.append(f"{label}: the password is in its output")
        if list(outcome.temp_dir.iterdir()):
            problems.append(f"{label}: left {sorted(p.name for p in outcome.temp_dir.iterdir())} in TMPDIR")
        if outcome.exit_code == 0:
            for tag in job.tags:
                allowed[(job.repository, tag)].add(job.image.image_id)
            if outcome.result.get("image_id") != job.image.image_id:
                problems.append(f"{label}: reported image {outcome.result.get('image_id')}")
            for tag in job.tags:
                state = by_tag.get((job.repository, tag))
                if state is None:
                    problems.append(f"{label}: exited 0 but {job.repository}:{tag} is not in the registry")
                elif tag != "latest" and (state.config != job.image.image_id
                                          or state.digest != outcome.result.get("digest")):
                    problems.append(f"{label}: {job.repository}:{tag} holds {state.config[:19]} "
                                    f"(manifest {state.digest[:19]}), not what it pushed")
    for state in states:
        if state.config not in allowed.get((state.repository, state.tag), set()):
            problems.append(f"{state.repository}:{state.tag} holds {state.config[:19]}, which no push "
                            f"that exited 0 put under that tag")
    return problems


def leftover_names(clients: Mapping[str, Any], proxy_host: str) -> list[str]:
    """Names `HOST:PORT/…` made for a push and still on an engine after every push ended."""
    left = []
    for host, client in clients.items():
        for image in client.images.list():
            left += [f"{tag} on {host}" for tag in image.tags if tag.startswith(proxy_host + "/")]
    return left


def pull_back(client: Any, registry: services.Registry, states: Sequence[TagState],
              images: Sequence[LoadImage], bases: Mapping[str, str]) -> tuple[int, list[str]]:
    """Remove the run's images from *client*'s engine, then pull every tag through it: each must
    come back with its config digest as image ID and the DiffIDs of the image that was built."""
    import docker.errors

    for image_id in [*(i.image_id for i in images), *bases.values()]:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(image_id, force=True)
    diff_ids = {i.image_id: i.diff_ids for i in images}
    auth = {"username": registry.username, "password": registry.password}
    problems, pulled = [], 0
    for state in sorted(states, key=lambda s: (s.tag == "latest", s.repository, s.tag)):
        reference = f"{registry.host}/{state.repository}:{state.tag}"
        try:
            image = client.images.pull(f"{registry.host}/{state.repository}", tag=state.tag, auth_config=auth)
        except docker.errors.APIError as exc:
            problems.append(f"{reference}: the engine cannot pull it ({exc.explanation})")
            continue
        pulled += 1
        if image.id != state.config:
            problems.append(f"{reference}: pulled as {image.id[:19]}, its config is {state.config[:19]}")
        if tuple(image.attrs["RootFS"]["Layers"]) != diff_ids.get(state.config):
            problems.append(f"{reference}: pulled with other layers than the image built")
    return pulled, problems


def remove_run_images(clients: Mapping[str, Any], prefix: str, registry_host: str,
                      images: Sequence[LoadImage], bases: Mapping[str, str]) -> None:
    """Leave the engines as they were: the run's images, built or pulled, go."""
    import docker.errors

    ids = {*(i.image_id for i in images), *bases.values()}
    names = (prefix, f"{registry_host}/{prefix}/")
    for client in clients.values():
        for image in client.images.list():
            if image.id in ids or any(t.startswith(names) for t in image.tags):
                with contextlib.suppress(docker.errors.ImageNotFound, docker.errors.APIError):
                    client.images.remove(image.id, force=True)


def run_load(engines: Sequence[str], registry: services.Registry, spec: LoadSpec, workdir: Path,
             environ: Mapping[str, str]) -> LoadReport:
    """Build, push everything at once through the faulty proxy, check. *engines* are the
    DOCKER_HOSTs of the agents with an engine (export pushes go round robin over them; the first
    also pulls everything back); *registry* should hold nothing under this run's prefix."""
    import docker

    assert registry.username and registry.password, "the load run pushes with credentials"
    prefix = f"load{secrets.token_hex(3)}"
    routes: list[Route] = ["export" if n % 2 == 0 else "archive" for n in range(spec.pushes)]
    clients = {host: docker.DockerClient(base_url=host, timeout=300) for host in dict.fromkeys(engines)}
    images: list[LoadImage] = []
    bases: dict[str, str] = {}
    try:
        images, bases = build_images(clients, routes, prefix, spec, workdir)
        jobs = plan_jobs(images, routes, prefix, spec.repositories)
        with blob_fault_proxy(registry.host, spec.share, spec.seed) as proxy:
            outcomes, wall = run_pushes(jobs, proxy.host, environ, workdir, registry.username,
                                        registry.password, spec.push_timeout)
            with proxy.lock:
                injected = dict(proxy.injected)
                blob_requests = proxy.blob_requests
                proxy_log = "\n".join(" ".join(entry) for entry in proxy.log)
            proxy_host = proxy.host
        report = LoadReport(spec=spec, outcomes=outcomes, wall_seconds=wall, blob_requests=blob_requests,
                            injected=injected, base_shared=len({i.diff_ids[0] for i in images}) == 1)
        if any(form in proxy_log for form in secret_forms(registry.password)):
            report.problems.append("the password is in the proxy's request log")
        states, problems, report.blobs_checked = registry_state(registry, prefix)
        report.tags_checked = len(states)
        report.problems += problems
        report.problems += check_outcomes(outcomes, states, registry.password)
        report.problems += [f"left on the engine: {name}" for name in leftover_names(clients, proxy_host)]
        complete = [s for s in states if s.complete]
        report.pulled, problems = pull_back(clients[engines[0]], registry, complete, images, bases)
        report.problems += problems
        return report
    finally:
        remove_run_images(clients, prefix, registry.host, images, bases)
        for client in clients.values():
            client.close()
