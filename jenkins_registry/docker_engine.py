"""The Docker engine, as this package uses it: one facade over the docker SDK, one error translator.

`connect` reaches the engine that DOCKER_HOST (or the default socket) names. `DockerEngine` wraps
the SDK client for the push: `info`, image lookup, tag and untag, login, the push stream, the
export and the images from a registry. Every docker SDK or `requests` failure becomes one of the
package's errors in `_translate` (as docker-py's `create_api_error_from_http_exception` does for
HTTP), so no other module imports docker or requests. The SDK is imported only when an engine is
used: `jr-push --help` must start fast.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jenkins_registry.errors import EngineUnavailableError, ImageNotFoundError, JrError, redact
from jenkins_registry.registry_errors import image_missing

if TYPE_CHECKING:
    from jenkins_registry.secret_types import UsernamePassword

log = logging.getLogger(__name__)

DEFAULT_SOCKET = "unix:///var/run/docker.sock"
# A push can sit silent for minutes while the engine compresses a big layer; the SDK's timeout is
# per socket read, so a generous value only matters when the engine hangs.
PUSH_TIMEOUT_SECONDS = 900


def engine_address(environ: Mapping[str, str]) -> str:
    return environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def connect(environ: Mapping[str, str], timeout: int = PUSH_TIMEOUT_SECONDS) -> Any:
    """A `docker.DockerClient` for the engine the environment names; raises EngineUnavailableError."""
    import docker
    import requests

    address = engine_address(environ)
    try:
        # version="auto" asks the engine for its API version here, which also proves it answers
        client = docker.DockerClient(
            **_client_kwargs(environ), timeout=timeout,
        )
    except (docker.errors.DockerException, requests.exceptions.RequestException, OSError) as exc:
        reason = _reason(exc)
        raise EngineUnavailableError(
            f"Cannot reach the Docker engine at {address} ({reason}).",
        ) from exc
    log.debug("connected to the Docker engine at %s", address)
    return client


def _client_kwargs(environ: Mapping[str, str]) -> dict[str, Any]:
    from docker.utils import kwargs_from_env

    kwargs: dict[str, Any] = kwargs_from_env(environment=dict(environ))
    kwargs.setdefault("base_url", DEFAULT_SOCKET)
    kwargs["version"] = "auto"
    return kwargs


def _reason(exc: BaseException) -> str:
    text = str(exc)
    for marker, reason in (
        ("No such file or directory", "no socket there"),
        ("Connection refused", "connection refused"),
        ("Permission denied", "permission denied on the socket; add this user to the docker group"),
        ("timed out", "timed out"),
    ):
        if marker in text:
            return reason
    return type(exc).__name__


def uses_containerd_store(info: Mapping[str, Any]) -> bool:
    """Whether the engine keeps images in containerd's content store (the default for new
    installations since Docker 29): `docker info` then lists the snapshotter's driver type."""
    status = info.get("DriverStatus") or ()
    return any(isinstance(pair, (list, tuple)) and len(pair) == 2
               and pair[0] == "driver-type" and pair[1] == "io.containerd.snapshotter.v1"
               for pair in status)


# -- the errors ------------------------------------------------------------------------------------


class EngineCallError(EngineUnavailableError):
    """Raised by `DockerEngine` when the engine refuses a call or is lost during it. `detail` is
    the engine's own explanation (it never saw a secret), else the failure's type."""

    def __init__(self, message: str, detail: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.detail = detail


@dataclass(frozen=True)
class _Wording:
    """How one engine call's failures read. `{explanation}` is the engine's own words (else the
    error's text), `{kind}` the failure's type; other fields are the call's subject."""

    refused: str  # the engine answered with an error, or with something malformed
    lost: str  # the connection to the engine failed
    hint: str | None = None
    lookup: bool = False  # "no such image" is an answer (ImageNotFoundError), not a failure


_LOOK_UP = _Wording("The Docker engine failed to look up {subject!r}: {explanation}",
                    "Lost the Docker engine while looking up {subject!r}.", lookup=True)
_LOOK_UP_ID = _Wording("The Docker engine failed to look up {subject} ({kind}).",
                       "The Docker engine failed to look up {subject} ({kind}).", lookup=True)
_INSPECT = dataclasses.replace(_LOOK_UP_ID, lookup=False)
_LOOK_UP_NAMES = _Wording("The Docker engine failed to look up the names {subject} ({kind}).",
                          "The Docker engine failed to look up the names {subject} ({kind}).",
                          lookup=True)
_LIST = _Wording("The Docker engine failed to list its images ({kind}).",
                 "The Docker engine failed to list its images ({kind}).")
_INFO = _Wording("The Docker engine did not answer `info` ({kind}).",
                 "The Docker engine did not answer `info` ({kind}).")
_TAG = _Wording("The Docker engine could not tag {subject} as {reference}: {explanation}",
                "The Docker engine could not tag {subject} as {reference} ({kind}).")
_UNTAG = _Wording("The Docker engine could not remove the tag {subject}: {explanation}",
                  "The Docker engine could not remove the tag {subject} ({kind}).")
_LOGIN = _Wording("", "Lost the Docker engine during the registry login.")
_PUSH = _Wording("", "Lost the Docker engine while pushing {subject} ({kind}).")
_EXPORT = _Wording("The Docker engine failed to export {subject} ({kind}).",
                   "The Docker engine failed to export {subject} ({kind}).",
                   hint="Check the engine's log; or push with --via engine.")

# The engine's words about a registry (login, push) become a registry error through the caller's
# reading of them (`registry_errors.classify_engine_message`), after the password is redacted.
Explain = Callable[[str], JrError]


def _translate(exc: Exception, wording: _Wording, subject: str, *, explain: Explain | None = None,
               secret: str | None = None, **fields: str) -> JrError | None:
    """The package's error for *exc*, a failure of an engine call; None when *exc* is not one
    (a bug, which then propagates as it is)."""
    import docker
    import requests

    if isinstance(exc, docker.errors.NotFound) and wording.lookup:
        return image_missing(subject)
    if isinstance(exc, docker.errors.APIError):
        explanation = redact(str(exc.explanation or exc), [secret])
        if explain is not None:
            return explain(explanation)
        template, detail = wording.refused, str(exc.explanation) if exc.explanation else type(exc).__name__
    elif isinstance(exc, requests.exceptions.RequestException):
        explanation, template, detail = type(exc).__name__, wording.lost, type(exc).__name__
    elif isinstance(exc, (KeyError, TypeError)):  # an answer of another shape
        explanation, template, detail = type(exc).__name__, wording.refused, type(exc).__name__
    else:
        return None
    message = template.format(subject=subject, explanation=explanation, kind=type(exc).__name__,
                              **fields)
    return EngineCallError(message, detail, wording.hint)


@contextlib.contextmanager
def _translated(wording: _Wording, subject: str, *, explain: Explain | None = None,
                secret: str | None = None, **fields: str) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        error = _translate(exc, wording, subject, explain=explain, secret=secret, **fields)
        if error is None:
            raise
        if explain is None:
            raise error from exc
        # The SDK's text about a login or a push may quote the password: not chained, and not
        # kept as the implicit context either (a caller walking `__context__` would find it).
        try:
            raise error from None
        except JrError as hidden:
            hidden.__context__ = None
            raise


# -- the facade ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalImage:
    """An image in the engine, as a push needs it."""

    id: str  # sha256:…, the config digest (on the classic image store)
    size: int | None  # bytes of its layers, uncompressed
    diff_ids: tuple[str, ...]  # its layers, as `RootFS.Layers`


class DockerEngine:
    """The engine behind a `docker.DockerClient` (or anything with its methods, as tests pass):
    each method either returns plain values or raises one of the package's errors."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, environ: Mapping[str, str], timeout: int = PUSH_TIMEOUT_SECONDS) -> DockerEngine:
        return cls(connect(environ, timeout))

    def close(self) -> None:
        self.client.close()

    def info(self) -> Mapping[str, Any]:
        """`docker info`."""
        with _translated(_INFO, "info"):
            return dict(self.client.info())

    def find_image(self, name: str) -> LocalImage:
        """The image *name* (a name, name:tag or ID) names; raises ImageNotFoundError."""
        with _translated(_LOOK_UP, name):
            image = self.client.images.get(name)
            attrs = image.attrs
            return LocalImage(id=str(image.id), size=attrs.get("Size"),
                              diff_ids=tuple((attrs.get("RootFS") or {}).get("Layers") or ()))

    def has_image(self, image_id: str) -> bool:
        try:
            with _translated(_LOOK_UP_ID, image_id):
                self.client.api.inspect_image(image_id)
        except ImageNotFoundError:
            return False
        return True

    def layers_of(self, image_id: str) -> tuple[str, ...]:
        """The DiffIDs of *image_id*."""
        with _translated(_INSPECT, image_id):
            inspected = self.client.api.inspect_image(image_id)
            return tuple((inspected.get("RootFS") or {}).get("Layers") or ())

    def tags_of(self, image_id: str) -> tuple[str, ...]:
        """The names of *image_id* (`RepoTags`, in the engine's short spelling)."""
        with _translated(_INSPECT, image_id):
            return tuple(self.client.api.inspect_image(image_id).get("RepoTags") or ())

    def images_named(self, references: Sequence[str]) -> dict[str, str | None]:
        """The image ID each of *references* names, None where no image has that name."""
        found: dict[str, str | None] = {}
        for reference in references:
            try:
                with _translated(_LOOK_UP_NAMES, ", ".join(references)):
                    found[reference] = str(self.client.api.inspect_image(reference)["Id"])
            except ImageNotFoundError:
                found[reference] = None
        return found

    def digest_references(self, registry: str) -> list[tuple[str, str]]:
        """(image ID, first digest reference there) of each local image with a digest reference
        at *registry*: an image the engine pushed there or pulled from there."""
        prefix = registry + "/"
        with _translated(_LIST, registry):
            found = []
            for summary in self.client.api.images():
                here = [ref for ref in summary.get("RepoDigests") or () if ref.startswith(prefix)]
                if here:
                    found.append((str(summary["Id"]), str(here[0])))
            return found

    def tag(self, image_id: str, reference: str, *, shown_as: str | None = None) -> None:
        """Name *image_id* `HOST:PORT/NAME:TAG` (*reference*); *shown_as* names it in errors."""
        repository, tag = reference.rsplit(":", 1)
        with _translated(_TAG, shown_as or image_id, reference=reference):
            self.client.api.tag(image_id, repository=repository, tag=tag)

    def untag(self, reference: str) -> None:
        """Remove the name *reference*; the image and its data stay (noprune)."""
        with _translated(_UNTAG, reference):
            self.client.api.remove_image(reference, noprune=True)

    def login(self, credentials: UsernamePassword, registry: str, explain: Explain) -> None:
        """Check *credentials* against *registry* through the engine; writes no file.

        reauth=True skips the SDK's shortcut that returns a cached entry without asking the
        registry. *explain* reads the engine's refusal (the password already redacted from it).
        """
        password = credentials.password.reveal()
        with _translated(_LOGIN, registry, explain=explain, secret=password):
            self.client.login(username=credentials.username, password=password,
                              registry=registry, reauth=True)

    def push(self, name: str, tag: str, credentials: UsernamePassword | None,
             explain: Explain) -> Iterator[Mapping[str, Any]]:
        """The engine's push of `name:tag`, as its stream of JSON events. The credentials go with
        the request; an anonymous push sends an explicitly empty auth, since the SDK would
        otherwise fall back to config.json entries."""
        auth = credentials.auth_config() if credentials else {}
        with _translated(_PUSH, f"{name}:{tag}", explain=explain, secret=auth.get("password")):
            yield from self.client.api.push(name, tag=tag, stream=True, decode=True,
                                            auth_config=auth)

    def export(self, image_id: str, chunk_size: int) -> Iterator[bytes]:
        """`GET /images/{id}/get`: the image in the `docker save` format, in chunks."""
        with _translated(_EXPORT, image_id):
            yield from self.client.api.get_image(image_id, chunk_size=chunk_size)
