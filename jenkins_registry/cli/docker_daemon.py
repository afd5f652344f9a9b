"""`jr docker insecure-registry add|remove|list`: the engine's daemon.json, edited safely."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from jenkins_registry.cli.common import REGISTRY_ENV, add_common_options, registry_default
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.errors import UsageError

DEFAULT_DAEMON_JSON = "/etc/docker/daemon.json"

AS_ROOT = f"""\
as root:
  {DEFAULT_DAEMON_JSON} belongs to root. sudo resets PATH, so `sudo jr …` does not find a jr
  installed in a virtualenv or with pipx: give sudo this jr's path,
    sudo "$(command -v jr)" docker insecure-registry add 10.211.55.6:8082 --reload
  sudo also drops the environment, so name HOST:PORT rather than relying on ${REGISTRY_ENV}.
"""


def register(subparsers: Any) -> None:
    docker = subparsers.add_parser(
        "docker", help="configure the local Docker engine",
        description="Configure the local Docker engine for a private registry.",
        epilog=epilog("jr docker", AS_ROOT), formatter_class=HelpFormatter,
    )
    add_common_options(docker)
    docker_sub = docker.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    insecure = docker_sub.add_parser(
        "insecure-registry", help="list, add or remove insecure-registries entries in daemon.json",
        description="An HTTP registry (e.g. a Nexus HTTP connector on port 8082) must be listed "
        "under insecure-registries in daemon.json, else pushes fail with 'http: server gave HTTP "
        "response to HTTPS client'. The engine reloads the list on SIGHUP; no restart is needed.",
        epilog=epilog("jr docker insecure-registry", AS_ROOT),
        formatter_class=HelpFormatter,
    )
    add_common_options(insecure)
    actions = insecure.add_subparsers(title="actions", metavar="ACTION")
    for name, func, text in (
        ("add", _add, "add HOST:PORT (or a CIDR) to insecure-registries"),
        ("remove", _remove, "remove HOST:PORT (or a CIDR) from insecure-registries"),
    ):
        action = actions.add_parser(
            name, help=text, description=text + ".",
            epilog=epilog(f"jr docker insecure-registry {name}", AS_ROOT),
            formatter_class=HelpFormatter)
        add_common_options(action)
        action.add_argument("entry", metavar="HOST:PORT", nargs="?",
                            help="the registry exactly as it starts image names, or a CIDR "
                            f"(default: ${REGISTRY_ENV})")
        _add_path_option(action)
        action.add_argument("--reload", action="store_true",
                            help="send SIGHUP to dockerd and confirm through the engine's info")
        action.add_argument(
            "--pidfile", type=Path, default=None,
            help="dockerd's pidfile for --reload (default: daemon.json's \"pidfile\", then "
            "/var/run/docker.pid, then the only running dockerd)",
        )
        action.set_defaults(handler=func)
    listing = actions.add_parser("list", help="print the insecure-registries entries",
                                 description="Print the insecure-registries entries, one a line.",
                                 epilog=epilog("jr docker insecure-registry list"),
                                 formatter_class=HelpFormatter)
    add_common_options(listing)
    _add_path_option(listing)
    listing.set_defaults(handler=_list)


def _add_path_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--daemon-json", type=Path, default=Path(DEFAULT_DAEMON_JSON),
                        metavar="PATH", help=f"the engine's configuration (default {DEFAULT_DAEMON_JSON})")


def _edit(args: argparse.Namespace, *, add: bool) -> int:
    from jenkins_registry import daemon_config

    path: Path = args.daemon_json
    entry = args.entry or registry_default(args)
    if not entry:
        raise UsageError(
            "No registry given.",
            hint=f"Pass HOST:PORT (e.g. 10.211.55.6:8082) or set {REGISTRY_ENV}; under sudo, which "
            f"drops the environment: sudo \"$(command -v jr)\" docker insecure-registry "
            f"{'add' if add else 'remove'} HOST:PORT.")
    if add:
        result = daemon_config.add_insecure_registry(path, entry)
    else:
        result = daemon_config.remove_insecure_registry(path, entry)
    verb = "added" if add else "removed"
    if result.changed:
        created = " (created the file)" if result.created else ""
        print(f"{verb} {result.entry} {'to' if add else 'from'} {path}{created}")
        if result.backup:
            print(f"backup of the previous file: {result.backup}")
    else:
        state = "already listed in" if add else "not listed in"
        print(f"{result.entry} is {state} {path}; nothing to change")
    if args.reload:
        _reload(args, path, result.entry, present=add)
    elif result.changed:
        print("The engine reads the list on reload (no restart needed); run one of:")
        for command in daemon_config.RELOAD_COMMANDS:
            print(f"  {command}")
        print(f"or re-run with --reload. Then `docker info` lists {result.entry} under "
              "Insecure Registries.")
    return 0


def _reload(args: argparse.Namespace, path: Path, entry: str, *, present: bool) -> None:
    from jenkins_registry import daemon_config
    from jenkins_registry.docker_engine import connect

    client = connect(args.environ, timeout=30)
    try:
        pid = daemon_config.signal_reload(path, args.pidfile)
        daemon_config.wait_for_engine(client.info, entry, present=present)
    finally:
        client.close()
    state = "now treats" if present else "no longer lists"
    print(f"reloaded dockerd (pid {pid}); the engine {state} {entry} as an insecure registry")


def _add(args: argparse.Namespace) -> int:
    return _edit(args, add=True)


def _remove(args: argparse.Namespace) -> int:
    return _edit(args, add=False)


def _list(args: argparse.Namespace) -> int:
    from jenkins_registry import daemon_config

    config = daemon_config.load(args.daemon_json)
    if not config.exists:
        sys.stderr.write(f"{args.daemon_json} does not exist; the engine uses no insecure "
                         "registries besides loopback.\n")
    for entry in config.insecure_registries:
        print(entry)
    return 0
