"""`jr`: the umbrella command (render, jenkins, docker, login/logout, doctor, nexus)."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterator, Mapping, Sequence

from jenkins_registry.cli.common import Handler, add_common_options, add_version_option, run_command
from jenkins_registry.cli.help_text import HelpFormatter, epilog

# Each module named here defines `register(subparsers)`, adding its subcommands with a
# `handler` default; importing them must stay cheap (heavy libraries are imported in handlers).
COMMAND_MODULES: tuple[str, ...] = ("render", "docker_daemon", "login", "doctor", "nexus", "jenkins",
                                   "registry", "help_cmd")

# The packages each command cannot run without, beyond what a push needs (the single-file
# jr-push holds only those): checked before the command starts, so it stops with what to install.
COMMAND_NEEDS: dict[str, tuple[str, ...]] = {
    "render": ("jinja2",),
    "jenkins": ("jenkins", "jinja2"),
    "login": ("keyring",),
    "logout": ("keyring",),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jr",
        description="Set up and use a private Docker registry from Jenkins, without leaking secrets.",
        epilog=epilog("jr", "The build step itself is the separate command jr-push (`jr-push "
                      "--help`): it tags, logs in with the injected credentials and pushes every "
                      "tag." + _zipapp_note()),
        formatter_class=HelpFormatter,
    )
    add_version_option(parser)
    add_common_options(parser)
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND")
    for name in COMMAND_MODULES:
        module = importlib.import_module(f"jenkins_registry.cli.{name}")
        module.register(subparsers)
    for command, modules in COMMAND_NEEDS.items():
        for each in _parsers_under(subparsers.choices[command]):
            handler = each.get_default("handler")
            if handler is not None:
                each.set_defaults(handler=_needing(f"jr {command}", modules, handler))
    return parser


def _zipapp_note() -> str:
    from jenkins_registry.optional_packages import running_from_zipapp

    if not running_from_zipapp():
        return ""
    needing = ", ".join(f"jr {command}" for command in COMMAND_NEEDS)
    return (f" This single-file jr-push runs jr as `python3 jr-push.pyz jr COMMAND`; {needing} "
            "need the full install (pipx install jenkins-registry).")


def _parsers_under(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """*parser* and every subcommand parser below it (argparse keeps those in its actions)."""
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in dict.fromkeys(action.choices.values()):  # an alias shares its parser
                yield from _parsers_under(child)


def _needing(command: str, modules: tuple[str, ...], handler: Handler) -> Handler:
    """*handler*, run only once every one of *modules* is found (else MissingPackageError)."""

    def run(args: argparse.Namespace) -> int:
        from jenkins_registry.optional_packages import require

        require(modules, command)
        return handler(args)

    return run


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    return run_command("jr", build_parser(), argv, environ)


if __name__ == "__main__":
    raise SystemExit(main())
