"""What every command shares: logging set-up, error reporting and exit codes, prompts."""

from __future__ import annotations

import argparse
import contextlib
import getpass
import logging
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from jenkins_registry.errors import ExitCode, JrError, UsageError, redact
from jenkins_registry.secret_types import Secret

if TYPE_CHECKING:
    from jenkins_registry.checklist import CheckResult

log = logging.getLogger("jenkins_registry")

Handler = Callable[[argparse.Namespace], int]


class _VersionAction(argparse.Action):
    """--version, with the version looked up only when asked for (it costs start-up time)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings=option_strings, dest=dest, default=default, nargs=0,
                         help=help or "show the version and exit")

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        from jenkins_registry import __version__

        sys.stdout.write(f"{parser.prog} {__version__}\n")
        parser.exit()


def add_version_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--version", action=_VersionAction)


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--debug and --quiet, accepted by every command and subcommand."""
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="log every step and show a traceback on errors (secrets stay hidden)",
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
        help="print only results and errors",
    )


REGISTRY_ENV = "JR_REGISTRY"


def registry_default(args: argparse.Namespace) -> str | None:
    """--registry, else $JR_REGISTRY (the one place that reads it), else None."""
    registry: str | None = getattr(args, "registry", None) or args.environ.get(REGISTRY_ENV)
    return registry or None


def registry_from(args: argparse.Namespace) -> str:
    """The registry of a command that needs one: --registry, else $JR_REGISTRY, else an error."""
    registry = registry_default(args)
    if not registry:
        raise UsageError(
            "No registry given.",
            hint=f"Pass --registry HOST[:PORT] (e.g. 10.211.55.6:8082) or set {REGISTRY_ENV}.",
        )
    return registry


def configure_logging(debug: bool, quiet: bool) -> None:
    level = logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if not debug else
                                           "%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("jenkins_registry")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False


def interactive(environ: Mapping[str, str]) -> bool:
    """True when a person can answer a prompt: a terminal on stdin, and not inside a Jenkins build."""
    if environ.get("JENKINS_URL") and environ.get("BUILD_NUMBER"):
        return False
    if environ.get("CI"):
        return False
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def prompt_text(question: str) -> str:
    sys.stderr.write(question)
    sys.stderr.flush()
    return sys.stdin.readline().rstrip("\n")


def prompt_secret(question: str) -> str:
    return getpass.getpass(question, stream=sys.stderr)


_CHECK_TAGS = {"ok": "[ ok ]", "info": "[info]", "warn": "[warn]", "fail": "[FAIL]", "skip": "[skip]"}


def print_checklist(results: Sequence[CheckResult]) -> None:
    """One line per check (`[FAIL] name: summary`), the fix under each failure or warning."""
    for result in results:
        print(f"{_CHECK_TAGS[result.status.value]} {result.name}: {result.summary}")
        if result.fix and result.status.value in ("fail", "warn"):
            print(f"       fix: {result.fix}")


def _safe(text: str) -> str:
    """Last line of defence: hide every secret this process has held, whatever the text's origin."""
    return redact(text, Secret.known_values())


def report_error(prog: str, exc: JrError) -> None:
    sys.stderr.write(_safe(f"{prog}: error: {exc.message}\n"))
    if exc.hint:
        sys.stderr.write(_safe(f"{prog}: what to do: {exc.hint}\n"))


def print_debug_traceback() -> None:
    # Chained third-party exceptions may quote what they were sent: redact before printing.
    sys.stderr.write(_safe(traceback.format_exc()))


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Jenkins aborts a build step with SIGTERM; unwinding like Ctrl-C lets `finally` blocks remove
    temporary files (an export, a half-written file) and give back tags before the exit.

    Further SIGTERMs are ignored while it unwinds (a process group gets one per process, and an
    impatient caller may repeat it): a second interrupt would cut the clean-up short. The
    clean-up is bounded; SIGKILL still ends it (docs/push.md says what that leaves)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_command(
    prog: str,
    parser: argparse.ArgumentParser,
    argv: Sequence[str] | None,
    environ: Mapping[str, str] | None = None,
) -> int:
    """Parse *argv*, run the chosen handler, and turn every outcome into an exit code."""
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except SystemExit as exc:  # --help, --version, or argparse's own usage error (exit 2)
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    debug = bool(getattr(args, "debug", False))
    configure_logging(debug, bool(getattr(args, "quiet", False)))
    args.environ = dict(os.environ if environ is None else environ)
    handler: Handler | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return ExitCode.USAGE
    try:
        with _sigterm_as_interrupt():
            return int(handler(args))
    except JrError as exc:
        if debug:
            print_debug_traceback()
        report_error(prog, exc)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write(f"{prog}: interrupted\n")
        return ExitCode.INTERRUPTED
    except Exception as exc:  # a bug: say so plainly, without echoing third-party text
        if debug:
            print_debug_traceback()
        sys.stderr.write(
            f"{prog}: error: unexpected {type(exc).__name__}; this is a bug in jenkins-registry.\n"
            f"{prog}: what to do: re-run with --debug and report the traceback.\n"
        )
        return ExitCode.FAILURE
