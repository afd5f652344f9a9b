"""`jr help [TOPIC]`: what no single command's --help holds (the environment, the exit codes)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from jenkins_registry.cli.common import add_common_options
from jenkins_registry.cli.help_text import (
    EXIT_CODE_MEANINGS,
    HelpFormatter,
    environment_text,
    epilog,
    exit_codes_epilog,
)
from jenkins_registry.errors import UsageError


def _exit_codes_text() -> str:
    return ("Exit codes of jr and jr-push (each command's --help lists its own):\n\n"
            + exit_codes_epilog(EXIT_CODE_MEANINGS).split("\n", 1)[1])


TOPICS: dict[str, tuple[str, Callable[[], str]]] = {
    "environment": ("every environment variable jr and jr-push read, with its default",
                    environment_text),
    "exit-codes": ("every exit code and what it means", _exit_codes_text),
}


def register(subparsers: Any) -> None:
    """Add `jr help [TOPIC]`."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "help", help="help topics: environment, exit-codes",
        description="Help that belongs to no single command. Without TOPIC, list the topics.",
        epilog=epilog("jr help"), formatter_class=HelpFormatter,
    )
    add_common_options(parser)
    parser.add_argument("topic", nargs="?", metavar="TOPIC", help=", ".join(TOPICS))
    parser.set_defaults(handler=handle_help)


def handle_help(args: argparse.Namespace) -> int:
    topic: str | None = args.topic
    if topic is None:
        width = max(len(name) for name in TOPICS)
        lines = ["Topics (jr help TOPIC):"]
        lines += [f"  {name:<{width}}  {about}" for name, (about, _) in TOPICS.items()]
        lines.append("Each command's own help: jr COMMAND --help; the build step: jr-push --help.")
        sys.stdout.write("\n".join(lines) + "\n")
        return 0
    if topic not in TOPICS:
        raise UsageError(f"No help topic {topic!r}.", hint=f"Use one of: {', '.join(TOPICS)}.")
    sys.stdout.write(TOPICS[topic][1]())
    return 0
