"""`jr-push`: the build step. Tag, log in with the injected credentials, push every tag, print digests.

Kept light on imports: `jr-push --help` must start fast, so docker, requests and keyring are only
imported once a push actually runs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO, cast

from jenkins_registry.cli.common import add_common_options, add_version_option, registry_from, run_command
from jenkins_registry.credentials import (
    DEFAULT_PASSWORD_ENV,
    DEFAULT_USERNAME_ENV,
    resolve_registry_credentials,
)
from jenkins_registry.errors import ExitCode, InputFileError, UsageError
from jenkins_registry.progress import LiveProgress, NullProgress, PlainProgress, ProgressSink
from jenkins_registry.reference import parse_registry
from jenkins_registry.secret_types import UsernamePassword

ROUTES = ("auto", "engine", "export")  # push_route.ROUTES, without importing it for --help
MAX_JOBS = 16  # daemonless_push.MAX_JOBS, likewise
PUSH_TIMEOUT = 3600.0  # registry_session.PUSH_BUDGET, likewise (--timeout, JR_TIMEOUT)
REQUEST_TIMEOUT = 120.0  # registry_session.REQUEST_TIMEOUT, likewise (--request-timeout)

if TYPE_CHECKING:
    from jenkins_registry.push_result import PushResult
    from jenkins_registry.push_route import Route
    from jenkins_registry.registry_session import RetryPolicy

EPILOG = f"""\
credentials (first found wins; no option takes a password):
  --username-env/--password-env variables, else {DEFAULT_USERNAME_ENV} / {DEFAULT_PASSWORD_ENV}
  (what the Jenkins "Username and password (separated)" binding injects), else the OS keyring
  entry stored by `jr login`, else an anonymous push.

environment:
  JR_REGISTRY   default for --registry
  JR_PUSH_VIA   default for --via (auto, engine or export)
  JR_KEEP_TAGS  1 for --keep-tags (0 or unset: the tags are removed)
  TMPDIR        where --via export/auto writes the temporary export (removed afterwards)
  DOCKER_HOST   the Docker engine (default unix:///var/run/docker.sock)
  REQUESTS_CA_BUNDLE, SSL_CERT_FILE   extra CA certificates (daemonless push over HTTPS)
  JR_TIMEOUT, JR_REQUEST_TIMEOUT       defaults for --timeout and --request-timeout

exit codes: 0 every tag is in the registry; 2 usage; 3 credentials missing; 4 rejected;
  5 denied; 6 image not found; 7 registry unreachable; 8 engine unreachable;
  9 HTTP registry not in insecure-registries; 10 other registry failure; 12 bad archive,
  or no room in $TMPDIR for a forced export; 130 interrupted (SIGINT, SIGTERM).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jr-push",
        description="Push a local image (or a docker-save archive / OCI layout) to a private registry.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--image", metavar="IMAGE",
                        help="local image: name, name:tag, or image ID (full or short); with "
                        "--from-archive/--from-oci: which image of a multi-image archive to push")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-archive", metavar="PATH", type=Path,
                        help="push a `docker save` archive without a Docker engine")
    source.add_argument("--from-oci", metavar="DIR", type=Path,
                        help="push an OCI image layout directory without a Docker engine")
    parser.add_argument("--registry", metavar="HOST[:PORT]",
                        help="the registry (default: $JR_REGISTRY), e.g. 10.211.55.6:8082")
    parser.add_argument("--name", metavar="REPO/PATH",
                        help="repository path in the registry (default: the image's own path); "
                        "required when --image is an ID")
    parser.add_argument("--tag", metavar="TAG", action="append", default=[],
                        help="tag to publish; repeatable (default: the image's own tag, else latest)")
    parser.add_argument("--digest-file", metavar="FILE", type=Path,
                        help="also write the manifest digest (sha256:…) to FILE")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (references, digest, sizes) instead of lines")
    parser.add_argument("--via", choices=ROUTES, default=None,
                        help="with --image: how the layers reach the registry. engine: the Docker "
                        "engine pushes; export: exported from the engine and uploaded by jr-push "
                        "(a first push in about 0.7 of the engine's time); auto (default): "
                        "export unless the engine can reuse layers it knows (docs/push.md)")
    parser.add_argument("--keep-tags", action=argparse.BooleanOptionalAction, default=None,
                        help="with --image: leave the HOST:PORT/NAME:TAG tags made for the push on "
                        "the local image. Default ($JR_KEEP_TAGS, else no): remove them when the "
                        "push ends, pushed, failed or interrupted; a tag that named another image "
                        "names it again; the image and its other tags stay (docs/push.md)")
    parser.add_argument("--username-env", metavar="NAME",
                        help=f"read the username from $NAME (default {DEFAULT_USERNAME_ENV})")
    parser.add_argument("--password-env", metavar="NAME",
                        help=f"read the password from $NAME (default {DEFAULT_PASSWORD_ENV})")
    daemonless = parser.add_argument_group("daemonless push (--from-archive / --from-oci)")
    daemonless.add_argument("--compression", choices=("gzip", "none"), default="gzip",
                            help="layer compression on the wire (default gzip)")
    daemonless.add_argument("--jobs", metavar="N", type=int, default=None,
                            help="parallel layer uploads (default: number of CPUs, at most 4); "
                            f"capped at {MAX_JOBS}, a larger N runs {MAX_JOBS}. Deflate threads: "
                            "N, at most the number of CPUs")
    daemonless.add_argument("--insecure", action="store_true",
                            help="allow plain HTTP to a non-loopback registry")
    parser.add_argument("--timeout", metavar="SECONDS", type=float, default=None,
                        help="the time budget of jr-push's own registry requests and waits (all "
                        "of a daemonless push; with --image the export route and the checks, not "
                        f"the engine's own upload) (default $JR_TIMEOUT, else {PUSH_TIMEOUT:g})")
    parser.add_argument("--request-timeout", metavar="SECONDS", type=float, default=None,
                        help="wall-clock limit for one request's answer, however slowly it "
                        f"trickles (default $JR_REQUEST_TIMEOUT, else {REQUEST_TIMEOUT:g})")
    add_version_option(parser)
    add_common_options(parser)
    parser.set_defaults(handler=handle_push)
    return parser


def _progress_sink(args: argparse.Namespace) -> ProgressSink:
    if getattr(args, "quiet", False) or args.json:
        return NullProgress()
    if sys.stdout.isatty() and sys.stderr.isatty():
        return LiveProgress(sys.stderr)
    return PlainProgress(sys.stderr)


def _credentials(args: argparse.Namespace, registry: str) -> UsernamePassword | None:
    from jenkins_registry.keyring_store import KeyringStore

    return resolve_registry_credentials(
        registry, environ=args.environ, username_env=args.username_env,
        password_env=args.password_env, keyring_store=KeyringStore(),
    )


def _route(args: argparse.Namespace) -> Route:
    route = args.via or args.environ.get("JR_PUSH_VIA") or "auto"
    if route not in ROUTES:
        raise UsageError(f"JR_PUSH_VIA={route!r} is not a route.", hint="Use auto, engine or export.")
    return cast("Route", route)


_YES = ("1", "true", "yes", "on")
_NO = ("", "0", "false", "no", "off")


def _keep_tags(args: argparse.Namespace) -> bool:
    if args.keep_tags is not None:
        return bool(args.keep_tags)
    value = args.environ.get("JR_KEEP_TAGS", "")
    if value.strip().lower() in _YES:
        return True
    if value.strip().lower() in _NO:
        return False
    raise UsageError(f"JR_KEEP_TAGS={value!r} is neither yes nor no.",
                     hint="Set JR_KEEP_TAGS=1 to keep the tags jr-push makes, or 0 (or unset it).")


def _push_engine(args: argparse.Namespace, registry: str, progress: ProgressSink) -> PushResult:
    from jenkins_registry import push_route
    from jenkins_registry.docker_engine import DockerEngine, engine_address
    from jenkins_registry.push_lock import exclusive_push
    from jenkins_registry.push_target import plan_push

    plan = plan_push(args.image, registry=registry, repository=args.name, tags=args.tag)
    options = push_route.LocalPushOptions(
        route=_route(args), keep_tags=_keep_tags(args), engine_address=engine_address(args.environ),
        temp_dir=args.environ.get("TMPDIR") or None, retry=_time_limits(args))
    credentials = _credentials(args, plan.registry)
    engine = DockerEngine.connect(args.environ)
    try:
        with exclusive_push(options.engine_address, plan):
            return push_route.push_local_image(engine, plan, credentials, progress, options)
    finally:
        engine.close()


def _push_daemonless(args: argparse.Namespace, registry: str, progress: ProgressSink) -> PushResult:
    from jenkins_registry import daemonless_push
    from jenkins_registry.http_transport import ca_bundle_from
    from jenkins_registry.push_target import parse_request

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1.",
                         hint=f"Give a number from 1 to {MAX_JOBS}, or leave --jobs out.")
    request = parse_request(registry, args.name or None, args.tag)
    path = args.from_archive or args.from_oci
    kind: Literal["archive", "oci"] = "archive" if args.from_archive else "oci"
    credentials = _credentials(args, registry)
    options = daemonless_push.SourcePushOptions(
        compression=args.compression, jobs=args.jobs or 0, insecure=args.insecure,
        image_selector=args.image, ca_bundle=ca_bundle_from(args.environ),
        retry=_time_limits(args))
    return daemonless_push.push_source(path, kind, request, credentials, progress, options)


def _seconds(option: float | None, variable: str, args: argparse.Namespace) -> float | None:
    """A positive number of seconds from *option*, else from $*variable*; None when neither."""
    import math

    value: float | str | None = option if option is not None else args.environ.get(variable)
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not math.isfinite(seconds) or seconds <= 0:
        where = f"{variable}={value!r}" if option is None else f"{value!r}"
        raise UsageError(f"{where} is not a positive number of seconds.",
                         hint="Give seconds, e.g. --timeout 600 (or unset the variable).")
    return seconds


def _time_limits(args: argparse.Namespace) -> RetryPolicy | None:
    """The registry client's time bounds from --timeout/--request-timeout (or JR_TIMEOUT,
    JR_REQUEST_TIMEOUT); None: the library's defaults."""
    budget = _seconds(args.timeout, "JR_TIMEOUT", args)
    request = _seconds(args.request_timeout, "JR_REQUEST_TIMEOUT", args)
    if budget is None and request is None:
        return None
    from jenkins_registry.registry_session import PUSH_BUDGET, RetryPolicy
    from jenkins_registry.registry_session import REQUEST_TIMEOUT as LIBRARY_REQUEST_TIMEOUT

    budget = PUSH_BUDGET if budget is None else budget
    request = min(LIBRARY_REQUEST_TIMEOUT if request is None else request, budget)
    return RetryPolicy(request_timeout=request, budget=budget,
                       total_seconds=min(RetryPolicy().total_seconds, budget))


def print_result(result: PushResult, as_json: bool, out: TextIO) -> None:
    if as_json:
        out.write(json.dumps(result.to_json(), indent=2) + "\n")
    else:
        for reference in result.references():
            out.write(reference + "\n")
    out.flush()


def handle_push(args: argparse.Namespace) -> int:
    registry = parse_registry(registry_from(args))
    daemonless = args.from_archive is not None or args.from_oci is not None
    if args.image is None and not daemonless:
        raise UsageError(
            "Nothing to push.",
            hint="Give --image NAME (a local image), --from-archive PATH.tar or --from-oci DIR.",
        )
    if daemonless and args.via is not None:
        raise UsageError("--via applies to --image (a local image in the Docker engine).",
                         hint="--from-archive and --from-oci always upload without the engine.")
    if daemonless and args.keep_tags is not None:
        raise UsageError("--keep-tags applies to --image (a local image in the Docker engine).",
                         hint="--from-archive and --from-oci tag nothing locally; drop the option.")
    if not daemonless and (args.jobs is not None or args.insecure or args.compression != "gzip"):
        raise UsageError(
            "--compression, --jobs and --insecure only apply to --from-archive / --from-oci.",
            hint="With --image the Docker engine compresses and chooses HTTP or HTTPS itself.",
        )
    progress = _progress_sink(args)
    try:
        if not daemonless:
            result = _push_engine(args, registry, progress)
        else:
            result = _push_daemonless(args, registry, progress)
    finally:
        progress.close()
    print_result(result, args.json, sys.stdout)
    if args.digest_file is not None:
        from jenkins_registry.atomic_file import write_atomic

        try:
            write_atomic(args.digest_file, result.digest + "\n")
        except OSError as exc:
            raise InputFileError(
                f"The push succeeded, but the digest could not be written to {args.digest_file} "
                f"({exc.strerror or type(exc).__name__}).",
                hint="Choose a writable path for --digest-file (e.g. in the workspace).",
            ) from None
    return ExitCode.OK


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_command("jr-push", build_parser(), argv, environ)


if __name__ == "__main__":
    raise SystemExit(main())
