"""`jr`: the umbrella command (render, jenkins, docker, login/logout, doctor, nexus)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Mapping, Sequence

from jenkins_registry.cli.common import add_common_options, add_version_option, run_command

# Each module named here defines `register(subparsers)`, adding its subcommands with a
# `handler` default; importing them must stay cheap (heavy libraries are imported in handlers).
COMMAND_MODULES: tuple[str, ...] = ("render", "docker_daemon", "login", "doctor", "nexus", "jenkins")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jr",
        description="Set up and use a private Docker registry from Jenkins, without leaking secrets.",
        epilog="The build step itself is the separate command jr-push (`jr-push --help`): it tags, "
        "logs in with the injected credentials and pushes every tag.",
    )
    add_version_option(parser)
    add_common_options(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"jenkins_registry.cli.{name}")
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_command("jr", build_parser(), argv, environ)


if __name__ == "__main__":
    raise SystemExit(main())
