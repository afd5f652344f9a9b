"""The blob operations of the registry API: HEAD, GET, cross-repository mount, and uploads.

An upload is monolithic, streamed or chunked, and always continues at the `Location` the registry
gave (registry-notes.md §3.2). It is retried as a whole (a fresh upload session, after a HEAD
when the digest is known), because a streamed body cannot be replayed. `RegistryClient` takes
these operations from `BlobApiMixin`, as docker-py's `APIClient` takes its mixins.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from jenkins_registry import registry_errors
from jenkins_registry.errors import JrError
from jenkins_registry.http_transport import ConnectError, Response, Timeout
from jenkins_registry.registry_auth import delete_scopes, push_scopes
from jenkins_registry.registry_session import RegistrySession, TransientFailure, describe_failure

log = logging.getLogger(__name__)

SMALL_BLOB_LIMIT = 16 * 1024 * 1024  # configs and manifests read into memory


# -- bodies and results ----------------------------------------------------------------------------


class BlobBody(Protocol):
    """A blob's bytes, produced once, in pieces (bytes, or views: sent without a copy); `digest`
    and `size` are valid after iteration ends."""

    def __iter__(self) -> Iterator[bytes | memoryview]: ...

    @property
    def digest(self) -> str: ...

    @property
    def size(self) -> int: ...


class BytesBody:
    """A small in-memory blob (a config) as a `BlobBody`."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self._data

    @property
    def digest(self) -> str:
        return f"sha256:{hashlib.sha256(self._data).hexdigest()}"

    @property
    def size(self) -> int:
        return len(self._data)


class _Sized:
    """An iterable with a length, so the transport sends Content-Length instead of chunked."""

    def __init__(self, chunks: Iterable[bytes | memoryview], length: int) -> None:
        self._chunks = chunks
        self._length = length

    def __iter__(self) -> Iterator[bytes | memoryview]:
        return iter(self._chunks)

    def __len__(self) -> int:
        return self._length


@dataclass(frozen=True)
class UploadedBlob:
    digest: str
    size: int


@dataclass(frozen=True)
class UploadProbe:
    """A blob upload opened to prove push permission: the POST's HTTP status, whether the upload
    was cancelled again, and the error a push would raise (None when the upload opened)."""

    status: int
    cancelled: bool = False
    error: JrError | None = None


def with_digest(location: str, digest: str) -> str:
    """The upload *location* with `digest=` added to its query (the PUT that completes it)."""
    separator = "&" if urllib.parse.urlsplit(location).query else "?"
    return f"{location}{separator}digest={digest}"


def _rechunk(chunks: Iterable[bytes | memoryview], size: int) -> Iterator[bytes]:
    buffer = bytearray()
    for chunk in chunks:
        buffer += chunk
        while len(buffer) >= size:
            yield bytes(buffer[:size])
            del buffer[:size]
    if buffer:
        yield bytes(buffer)


_GATHER = 4096  # pieces smaller than this travel with the next piece's chunk-size line


def _chunked(pieces: Iterable[bytes | memoryview]) -> Iterator[bytes | memoryview]:
    """*pieces* framed for `Transfer-Encoding: chunked`, the framing sent apart from the data.

    http.client frames an unsized body itself by concatenating each piece with its size line: a
    copy of every byte uploaded. Given the header, it sends what it is given as it is. Small
    pieces (a stored deflate block's 5-byte header) are joined to the next piece's size line, so
    a 64 KiB view costs two sends, not four."""
    separator = b""
    small = b""
    for piece in pieces:
        if len(piece) < _GATHER:
            small += piece
            continue
        yield b"%s%X\r\n%s" % (separator, len(small) + len(piece), small)
        yield piece
        separator, small = b"\r\n", b""
    if small:
        yield b"%s%X\r\n%s" % (separator, len(small), small)
        separator = b"\r\n"
    yield separator + b"0\r\n\r\n"


# -- the operations --------------------------------------------------------------------------------


class BlobApiMixin:
    """Blob operations over `self._session` (set by the class that mixes this in)."""

    _session: RegistrySession

    def blob_exists(self, repository: str, digest: str) -> int | None:
        """The size of blob *digest* in *repository*, or None when the registry lacks it."""
        response = self._session.request("HEAD", f"/v2/{repository}/blobs/{digest}",
                                         scopes=push_scopes(repository))
        if response.status_code == 404:
            return None
        self._session.check(response, (200,), repository)
        return int(response.headers.get("Content-Length") or 0)

    def _open_upload(self, repository: str,
                     scopes: Sequence[str] | None) -> tuple[str, Response]:
        url = self._session.url(f"/v2/{repository}/blobs/uploads/")
        response = self._session.request("POST", url, scopes=scopes or push_scopes(repository),
                                         headers={"Content-Length": "0"})
        return url, response

    def start_upload(self, repository: str, *, scopes: Sequence[str] | None = None) -> str:
        """`POST …/blobs/uploads/`; returns the absolute upload `Location`."""
        url, response = self._open_upload(repository, scopes)
        self._session.check(response, (202,), repository)
        return self._location(response, url)

    def probe_upload(self, repository: str, *, scopes: Sequence[str] | None = None) -> UploadProbe:
        """Open a blob upload in *repository* and cancel it: push permission, with nothing stored.

        A refusal is returned with its HTTP status (which `jr doctor` shows) instead of raised;
        failures to reach the registry or to get a token still raise.
        """
        url, response = self._open_upload(repository, scopes)
        status = response.status_code
        if status != 202:
            error = self._session.error_for(response, repository)
            response.close()
            return UploadProbe(status=status, error=error)
        return UploadProbe(status=status,
                           cancelled=self.cancel_upload(self._location(response, url), repository))

    def _location(self, response: Response, request_url: str) -> str:
        """The absolute upload `Location` of *response*: an http(s) URL with a valid host and
        port, else the registry's error (never the value itself, which may carry a secret)."""
        location = response.headers.get("Location")
        response.close()
        if not location:
            raise registry_errors.generic(self._session.registry,
                                          "an upload response had no Location header")
        try:
            url = urllib.parse.urljoin(request_url, location)
            parts = urllib.parse.urlsplit(url)
            port = parts.port
        except ValueError:
            port = 0
            parts = urllib.parse.urlsplit("")
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname or port == 0:
            raise registry_errors.generic(self._session.registry,
                                          "an upload response's Location is not an http(s) URL")
        return url

    def cancel_upload(self, location: str, repository: str | None = None) -> bool:
        """`DELETE <location>`, best effort: True when cancelled; a failure is only logged.

        The registry's DELETE needs the `*` (or `delete`) action, so the token is asked for that.
        """
        if repository is None:
            match = re.search(r"/v2/(.+?)/blobs/uploads/", urllib.parse.urlsplit(location).path)
            repository = match.group(1) if match else None
        scopes = delete_scopes(repository) if repository else ()
        try:
            response = self._session.send("DELETE", location,
                                          self._session.auth_headers(location, scopes))
            response.close()
        except Exception as exc:  # cancelling is a courtesy
            log.debug("cancelling an upload failed: %s", describe_failure(exc))
            return False
        if not 200 <= response.status_code < 300:
            log.debug("cancelling an upload: HTTP %s (the registry expires it)", response.status_code)
            return False
        return True

    def mount_blob(self, repository: str, digest: str, from_repository: str) -> bool:
        """Cross-repository mount; True when mounted, False (never an error) when it was not."""
        scopes = (*push_scopes(repository), f"repository:{from_repository}:pull")
        query = urllib.parse.urlencode({"mount": digest, "from": from_repository})
        url = self._session.url(f"/v2/{repository}/blobs/uploads/?{query}")
        try:
            response = self._session.request("POST", url, scopes=scopes,
                                             headers={"Content-Length": "0"})
        except JrError as exc:
            log.debug("mounting %s from %s failed: %s", digest[:19], from_repository, exc.message)
            return False
        if response.status_code == 201:
            response.close()
            return True
        if response.status_code == 202 and response.headers.get("Location"):
            self.cancel_upload(self._location(response, url), repository)
        else:
            response.close()
        log.debug("mounting %s from %s: HTTP %s, uploading instead", digest[:19], from_repository,
                  response.status_code)
        return False

    def upload_blob(
        self,
        repository: str,
        open_body: Callable[[], BlobBody],
        *,
        digest: str | None = None,
        size: int | None = None,
        chunk_size: int | None = None,
        on_retry: Callable[[float], None] | None = None,
    ) -> UploadedBlob:
        """Upload one blob, retrying the whole upload with a fresh body on transient failures.

        With *digest* known and no *chunk_size*: POST, then one PUT `?digest=` with the body
        (monolithic). Without a digest: POST, one streamed PATCH, PUT `?digest=<body.digest>`.
        With *chunk_size*: POST, PATCHes with Content-Range, PUT. Before each retry, a blob whose
        digest is known is looked up with HEAD and not sent again.
        """
        deadline = self._session.deadline()
        known = digest
        attempt = 0
        while True:
            attempt += 1
            if attempt > 1 and known is not None:
                existing = self.blob_exists(repository, known)
                if existing is not None:
                    log.info("blob %s arrived after all; not sending it again", known[:19])
                    return UploadedBlob(known, existing if size is None else size)
            location: str | None = None
            body = open_body()
            try:
                location = self.start_upload(repository)
                result = self._upload_once(repository, location, body, digest, size, chunk_size)
                location = None
                return result
            except TransientFailure as retry:
                error, delay = retry.error, retry.delay
            except (ConnectError, Timeout) as exc:
                error, delay = self._session.network_error(exc), None
            finally:
                if location is not None:
                    self.cancel_upload(location, repository)
            if known is None:
                with contextlib.suppress(RuntimeError):  # unless the body was read to the end
                    known = body.digest
            self._session.wait_to_retry(error, delay, attempt, deadline, what=" the blob upload",
                                        on_retry=on_retry)

    def _streaming(self, method: str, url: str, repository: str, data: Any,
                   headers: Mapping[str, str]) -> Response:
        return self._session.streaming(method, url, push_scopes(repository), repository, data,
                                       headers)

    def _upload_once(self, repository: str, location: str, body: BlobBody, digest: str | None,
                     size: int | None, chunk_size: int | None) -> UploadedBlob:
        registry = self._session.registry
        check = self._session.check
        octet = {"Content-Type": "application/octet-stream"}
        if digest is not None and chunk_size is None:
            data: Any = _Sized(body, size) if size is not None else iter(body)
            response = self._streaming("PUT", with_digest(location, digest), repository, data, octet)
            check(response, (201,), repository)
            final = digest
        else:
            if chunk_size is None:
                response = self._streaming("PATCH", location, repository, _chunked(body),
                                           {**octet, "Transfer-Encoding": "chunked"})
                check(response, (202, 204), repository)
                location = self._location(response, location)
            else:
                offset = 0
                for piece in _rechunk(body, chunk_size):
                    headers = {**octet, "Content-Range": f"{offset}-{offset + len(piece) - 1}",
                               "Content-Length": str(len(piece))}
                    response = self._streaming("PATCH", location, repository, piece, headers)
                    check(response, (202, 204), repository)
                    location = self._location(response, location)
                    offset += len(piece)
            final = body.digest
            if digest is not None and final != digest:
                raise registry_errors.generic(registry, f"blob {final} was expected to be {digest}")
            response = self._streaming("PUT", with_digest(location, final), repository, None,
                                       {"Content-Length": "0"})
            check(response, (201,), repository)
        stored = response.headers.get("Docker-Content-Digest")
        response.close()
        if stored and stored != final:
            raise registry_errors.generic(registry, f"the registry stored {stored}, not {final}")
        return UploadedBlob(final, body.size)

    def get_blob(self, repository: str, digest: str, limit: int = SMALL_BLOB_LIMIT) -> bytes:
        """A small blob (a config), checked against its digest."""
        response = self._session.request("GET", f"/v2/{repository}/blobs/{digest}",
                                         scopes=push_scopes(repository), stream=True)
        self._session.check(response, (200,), repository)
        pieces: list[bytes] = []
        received = 0
        try:
            for piece in response.iter_content(1 << 20):
                pieces.append(piece)
                received += len(piece)
                if received > limit:
                    break
        except (ConnectError, Timeout) as exc:
            raise self._session.network_error(exc) from None
        finally:
            response.close()
        data = b"".join(pieces)[: limit + 1]
        if len(data) > limit or f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
            raise registry_errors.generic(self._session.registry,
                                          f"blob {digest} did not match its digest")
        return data

    def open_blob(self, repository: str, digest: str, *, scopes: Sequence[str] | None = None,
                  ) -> Response:
        """`GET` blob *digest* as a streamed answer (200, else the registry's error), for the
        caller to read in pieces and close; *scopes* default to pulling *repository*."""
        response = self._session.request(
            "GET", f"/v2/{repository}/blobs/{digest}",
            scopes=(f"repository:{repository}:pull",) if scopes is None else scopes, stream=True)
        self._session.check(response, (200,), repository)
        return response
