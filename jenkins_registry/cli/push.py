"""`jr-push`: the build step. Tag, log in with the injected credentials, push every tag to every
registry given, print digests.

Kept light on imports: `jr-push --help` must start fast, so docker, requests and keyring are only
imported once a push actually runs.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import logging
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TextIO, cast

from jenkins_registry.cli.common import (
    add_common_options,
    add_version_option,
    print_debug_traceback,
    registry_from,
    report_error,
    run_command,
)
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.credentials import (
    DEFAULT_PASSWORD_ENV,
    DEFAULT_USERNAME_ENV,
    resolve_registry_credentials,
)
from jenkins_registry.errors import ExitCode, InputFileError, JrError, UsageError
from jenkins_registry.progress import LiveProgress, NullProgress, PlainProgress, ProgressSink
from jenkins_registry.push_result import REGISTRY_FAILURES, PushReport, RegistryFailure
from jenkins_registry.push_target import parse_registries, parse_tags
from jenkins_registry.secret_types import UsernamePassword

ROUTES = ("auto", "engine", "export")  # push_route.ROUTES, without importing it for --help
MAX_JOBS = 16  # daemonless_push.MAX_JOBS, likewise
PUSH_TIMEOUT = 3600.0  # registry_session.PUSH_BUDGET, likewise (--timeout, JR_TIMEOUT)
REQUEST_TIMEOUT = 120.0  # registry_session.REQUEST_TIMEOUT, likewise (--request-timeout)

if TYPE_CHECKING:
    from jenkins_registry.push_result import PushResult
    from jenkins_registry.push_route import Route
    from jenkins_registry.registry_session import RetryPolicy

log = logging.getLogger(__name__)

EPILOG = f"""\
credentials (first found wins; no option takes a password):
  --username-env/--password-env variables, else {DEFAULT_USERNAME_ENV} / {DEFAULT_PASSWORD_ENV}
  (what the Jenkins "Username and password (separated)" binding injects), else the OS keyring
  entry stored by `jr login`, else an anonymous push.

several registries (--registry given more than once; the same HOST[:PORT] twice counts once):
  every tag goes to every registry, one registry after another in the order given; credentials
  are found for each (the same variables for all; the keyring entry of each registry). Each
  registry's result lines print as its push ends; a failure of a registry (exit codes 4, 5, 7, 9,
  10) is reported with its name and the next registry is pushed; any other error (usage,
  credentials, the image, the engine, the archive) would fail them all and ends the run. The exit
  status is the first failure's exit code (0 when every registry holds every tag). --json prints
  one object: the first pushed registry's fields as for one registry, plus "pushes" (one object
  per registry: the result, or registry/exit_code/error/hint) and "not_attempted". --digest-file
  is written only when every registry succeeded, with the first registry's digest.

tags from git (--tag-from git, with or after --tag; rules in docs/tags-from-git.md):
  from BRANCH_NAME or GIT_BRANCH, GIT_COMMIT and TAG_NAME, else from `git` in this directory:
  the branch (no origin/, lowercased, other characters -, at most 128), sha-<7 hex digits>, for
  a release tag vX.Y.Z (or X.Y.Z) X.Y.Z, X.Y and X (no X for 0.x, none for a pre-release: only
  the tag itself), and latest on the default branch (main or master, or --default-branch). They
  are printed (stderr) before the push.

environment:
  JR_REGISTRY   default for --registry (one registry)
  JR_PUSH_VIA   default for --via (auto, engine or export)
  JR_KEEP_TAGS  1 for --keep-tags (0 or unset: the tags are removed)
  TMPDIR        where --via export/auto writes the temporary export (removed afterwards)
  DOCKER_HOST   the Docker engine (default unix:///var/run/docker.sock)
  REQUESTS_CA_BUNDLE, SSL_CERT_FILE   extra CA certificates (daemonless push over HTTPS)
  JR_TIMEOUT, JR_REQUEST_TIMEOUT       defaults for --timeout and --request-timeout
  HTTPS_PROXY, HTTP_PROXY, NO_PROXY    forward proxy for the registry (docs/proxies.md); the
                                       engine route uses the engine's own proxy settings

"""


class _SameValueEachTime(argparse.Action):
    """An option that may be repeated (or spelled by its alias) only with the same value: two
    different repository paths in one command are a mistake, not a choice of the last."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        previous = getattr(namespace, self.dest, None)
        if previous is not None and previous != values:
            parser.error(f"{'/'.join(self.option_strings)} given twice with different values "
                         f"({previous!r} and {values!r}); give the path in the registry once")
        setattr(namespace, self.dest, values)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jr-push",
        description="Push a local image (or a docker-save archive / OCI layout) to a private registry.",
        epilog=epilog("jr-push", EPILOG),
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--image", metavar="IMAGE",
                        help="local image: name, name:tag, or image ID (full or short); with "
                        "--from-archive/--from-oci: which image of a multi-image archive to push (a "
                        "multi-platform image is pushed whole unless OS/ARCH picks one platform)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--from-archive", metavar="PATH", type=Path,
                        help="push a `docker save` archive without a Docker engine")
    source.add_argument("--from-oci", metavar="DIR", type=Path,
                        help="push an OCI image layout directory without a Docker engine")
    parser.add_argument("--registry", metavar="HOST[:PORT]", dest="registries", action="append",
                        default=[],
                        help="the registry, e.g. 10.211.55.6:8082 (default: $JR_REGISTRY); "
                        "repeatable: every tag goes to every registry, in the order given")
    parser.add_argument("--repository", "--name", metavar="REPO/PATH", dest="repository",
                        action=_SameValueEachTime,
                        help="the path in the registry, e.g. local/jenkins (--name is its alias; "
                        "default: the image's own path); required when --image is an ID")
    parser.add_argument("--tag", metavar="TAG", action="append", default=[],
                        help="tag to publish; repeatable (default: the image's own tag, else latest)")
    parser.add_argument("--tag-from", choices=("git",), metavar="git", action="append", default=[],
                        help="also publish the tags derived from the branch, commit and release "
                        "tag (Jenkins variables, else git); see below")
    parser.add_argument("--default-branch", metavar="NAME",
                        help="with --tag-from git: the branch whose builds also publish latest "
                        "(default: main or master)")
    parser.add_argument("--digest-file", metavar="FILE", type=Path,
                        help="also write the manifest digest (sha256:…; an image index's for a "
                        "multi-platform image) to FILE (several "
                        "registries: the first one's, written when all succeeded)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object (references, digest, sizes, pushes) instead "
                        "of lines")
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


@dataclass(frozen=True)
class _RegistryPush:
    """The push to one registry, planned and with its credentials, waiting to run."""

    registry: str
    run: Callable[[ProgressSink], PushResult]


def _engine_pushes(args: argparse.Namespace, registries: Sequence[str], tags: Sequence[str],
                   stack: contextlib.ExitStack) -> list[_RegistryPush]:
    from jenkins_registry import push_route
    from jenkins_registry.docker_engine import DockerEngine, engine_address
    from jenkins_registry.push_lock import exclusive_push
    from jenkins_registry.push_target import EnginePushPlan, plan_push

    plans = [plan_push(args.image, registry=registry, repository=args.repository, tags=tags)
             for registry in registries]
    options = push_route.LocalPushOptions(
        route=_route(args), keep_tags=_keep_tags(args), engine_address=engine_address(args.environ),
        temp_dir=args.environ.get("TMPDIR") or None, retry=_time_limits(args))
    credentials = [_credentials(args, plan.registry) for plan in plans]
    engine = DockerEngine.connect(args.environ)
    stack.callback(engine.close)

    def push(plan: EnginePushPlan, login: UsernamePassword | None,
             progress: ProgressSink) -> PushResult:
        with exclusive_push(options.engine_address, plan):
            return push_route.push_local_image(engine, plan, login, progress, options)

    return [_RegistryPush(plan.registry, functools.partial(push, plan, login))
            for plan, login in zip(plans, credentials, strict=True)]


def _daemonless_pushes(args: argparse.Namespace, registries: Sequence[str],
                       tags: Sequence[str]) -> list[_RegistryPush]:
    from jenkins_registry import daemonless_push
    from jenkins_registry.http_transport import ca_bundle_from
    from jenkins_registry.push_target import TargetRequest, parse_request

    if args.jobs is not None and args.jobs < 1:
        raise UsageError("--jobs must be at least 1.",
                         hint=f"Give a number from 1 to {MAX_JOBS}, or leave --jobs out.")
    requests = [parse_request(registry, args.repository or None, tags) for registry in registries]
    path = args.from_archive or args.from_oci
    kind: Literal["archive", "oci"] = "archive" if args.from_archive else "oci"
    credentials = [_credentials(args, request.registry) for request in requests]
    options = daemonless_push.SourcePushOptions(
        compression=args.compression, jobs=args.jobs or 0, insecure=args.insecure,
        image_selector=args.image, ca_bundle=ca_bundle_from(args.environ),
        retry=_time_limits(args))

    def push(request: TargetRequest, login: UsernamePassword | None,
             progress: ProgressSink) -> PushResult:
        return daemonless_push.push_source(path, kind, request, login, progress, options)

    return [_RegistryPush(request.registry, functools.partial(push, request, login))
            for request, login in zip(requests, credentials, strict=True)]


def _tags(args: argparse.Namespace) -> list[str]:
    """--tag, then the tags --tag-from git derives (printed before the push)."""
    if args.default_branch is not None and not args.tag_from:
        raise UsageError("--default-branch applies to --tag-from git.",
                         hint="Add --tag-from git, or drop --default-branch.")
    if not args.tag_from:
        return list(args.tag)
    if args.default_branch is not None and not args.default_branch.strip():
        raise UsageError("--default-branch is empty.",
                         hint="Name the branch whose builds publish latest, e.g. --default-branch "
                         "develop, or leave the option out (main or master).")
    parse_tags(args.tag)  # a bad --tag is reported before git is asked
    from jenkins_registry.git_tags import GitCommandReader, derive_tags

    credential_variables = {args.username_env, args.password_env, DEFAULT_USERNAME_ENV,
                            DEFAULT_PASSWORD_ENV}
    git_environ = {name: value for name, value in args.environ.items()
                   if name not in credential_variables}
    derived = derive_tags(args.environ, GitCommandReader(environ=git_environ),
                          default_branch=args.default_branch)
    sys.stderr.write(f"jr-push: {derived.describe()}\n")
    sys.stderr.flush()
    return [*args.tag, *derived.tags]


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


def print_references(result: PushResult, out: TextIO) -> None:
    for reference in result.references():
        out.write(reference + "\n")
    out.flush()


def _push_each(pushes: Sequence[_RegistryPush], args: argparse.Namespace) -> PushReport:
    """Push to each registry in turn. One registry: its error is raised, as it always was.
    Several: a registry's own failure is reported with its name and the next one goes on; any
    other error ends the run (it would fail every registry alike)."""
    outcomes: list[PushResult | RegistryFailure] = []
    for index, push in enumerate(pushes):
        progress = _progress_sink(args)
        try:
            result = push.run(progress)
        except JrError as exc:
            if len(pushes) == 1:
                raise
            if getattr(args, "debug", False):
                print_debug_traceback()
            outcomes.append(RegistryFailure(registry=push.registry, error=exc))
            if exc.exit_code in REGISTRY_FAILURES:
                report_error("jr-push", JrError(f"{push.registry}: {exc.message}", hint=exc.hint))
            else:
                report_error("jr-push", exc)
                rest = tuple(later.registry for later in pushes[index + 1:])
                return PushReport(outcomes=tuple(outcomes), not_attempted=rest)
            continue
        finally:
            progress.close()
        outcomes.append(result)
        if not args.json:  # each registry's lines as soon as they are true
            print_references(result, sys.stdout)
    return PushReport(outcomes=tuple(outcomes))


def _summarise(report: PushReport, registries: Sequence[str]) -> None:
    """The last stderr line of a run to several registries in which some failed."""
    failed = "; ".join(f"{failure.registry} (exit {int(failure.exit_code)})"
                       for failure in report.failures)
    line = f"jr-push: pushed to {len(report.results)} of {len(registries)} registries; failed: {failed}"
    if report.not_attempted:
        line += f"; not attempted: {', '.join(report.not_attempted)}"
    sys.stderr.write(line + "\n")


def _write_digest(path: Path, report: PushReport) -> None:
    from jenkins_registry.atomic_file import write_atomic

    first, *others = report.results
    for other in others:
        if other.digest != first.digest:
            log.warning("%s holds the image under %s, not %s: --digest-file has the first "
                        "registry's (%s)", other.registry, other.digest, first.digest, first.registry)
    try:
        write_atomic(path, first.digest + "\n")
    except OSError as exc:
        raise InputFileError(
            f"The push succeeded, but the digest could not be written to {path} "
            f"({exc.strerror or type(exc).__name__}).",
            hint="Choose a writable path for --digest-file (e.g. in the workspace).",
        ) from None


def handle_push(args: argparse.Namespace) -> int:
    registries = parse_registries(args.registries or [registry_from(args)])
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
    tags = _tags(args)
    with contextlib.ExitStack() as stack:
        # every registry planned and its credentials found before the first push starts
        pushes = (_daemonless_pushes(args, registries, tags) if daemonless
                  else _engine_pushes(args, registries, tags, stack))
        report = _push_each(pushes, args)
    if args.json and (document := report.to_json()) is not None:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
        sys.stdout.flush()
    if report.failures:
        _summarise(report, registries)
        return int(report.exit_code)
    if args.digest_file is not None:
        _write_digest(args.digest_file, report)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_command("jr-push", build_parser(), argv, environ)


if __name__ == "__main__":
    raise SystemExit(main())
