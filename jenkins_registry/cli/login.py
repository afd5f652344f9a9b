"""`jr login` / `jr logout`: registry credentials in the OS keyring, never in ~/.docker/config.json."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from jenkins_registry.cli.common import add_common_options, interactive, prompt_secret, registry_from
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.errors import CredentialsError, UsageError


def register(subparsers: Any) -> None:
    login = subparsers.add_parser(
        "login", help="check a registry password and store it in the OS keyring",
        description="Check USER's password against the registry (as `docker login` does), then "
        "store it in the OS keyring, where jr-push finds it when the environment holds no "
        "credentials. Nothing is written to ~/.docker/config.json. The password is read from "
        "standard input (--password-stdin) or a prompt; it is never an option.",
        epilog=epilog("jr login"), formatter_class=HelpFormatter,
    )
    add_common_options(login)
    _registry_option(login)
    login.add_argument("--username", "-u", required=True, help="the registry user")
    login.add_argument("--password-stdin", action="store_true",
                       help="read the password from standard input (one trailing newline removed)")
    login.add_argument("--insecure", action="store_true",
                       help="allow plain HTTP (the password then crosses the network in clear "
                       "text) and unverified HTTPS to a registry that is not this machine")
    login.set_defaults(handler=_login)

    logout = subparsers.add_parser(
        "logout", help="remove a registry password from the OS keyring",
        description="Remove the stored credentials for the registry from the OS keyring.",
        epilog=epilog("jr logout"), formatter_class=HelpFormatter,
    )
    add_common_options(logout)
    _registry_option(logout)
    logout.set_defaults(handler=_logout)


def _registry_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", nargs="?", metavar="REGISTRY",
                        help="the registry as it starts image names, e.g. 10.211.55.6:8082 (as "
                        "`docker login` takes it; default: --registry, else $JR_REGISTRY)")
    parser.add_argument("--registry", metavar="HOST[:PORT]",
                        help="the registry, as an option (default: $JR_REGISTRY)")


def _resolve_registry(args: argparse.Namespace) -> None:
    """REGISTRY or --registry (the same when both are given), else $JR_REGISTRY."""
    if args.server and args.registry and args.server != args.registry:
        raise UsageError(f"Two registries given: {args.server} and --registry {args.registry}.",
                         hint="Give the registry once, as `jr login REGISTRY` or with --registry.")
    args.registry = args.server or registry_from(args)


def _read_password(args: argparse.Namespace) -> Any:
    from jenkins_registry.registry_login import read_password_stdin

    if args.password_stdin:
        secret = read_password_stdin(sys.stdin.read())
    elif interactive(args.environ):
        from jenkins_registry.secret_types import Secret

        secret = Secret(prompt_secret(f"Password for {args.username}@{args.registry}: "))
    else:
        raise CredentialsError(
            "No password: standard input is not a terminal, so jr cannot prompt.",
            hint=f"Pipe it in: `printf '%s' \"$PASSWORD\" | jr login --registry {args.registry} "
            f"--username {args.username} --password-stdin`.",
        )
    if not secret:
        raise CredentialsError("The password is empty.", hint="Give the registry password.")
    return secret


def _login(args: argparse.Namespace) -> int:
    from jenkins_registry.http_transport import ca_bundle_from
    from jenkins_registry.keyring_store import KeyringStore
    from jenkins_registry.reference import parse_registry
    from jenkins_registry.registry_login import login

    _resolve_registry(args)
    from jenkins_registry.secret_types import UsernamePassword

    registry = parse_registry(args.registry)
    if not args.username.strip():
        raise CredentialsError("The username is empty.", hint="Pass --username USER.")
    if ":" in args.username:
        raise UsageError("The username contains ':', which Basic authentication cannot carry.",
                         hint="Use the registry account's name (e.g. ci-bot).")
    store = KeyringStore()
    store.ensure_usable()  # before asking for a password there is nowhere to keep
    password = _read_password(args)
    creds = UsernamePassword(username=args.username, password=password, source="jr login")
    result = login(registry, creds, store=store, ca_bundle=ca_bundle_from(args.environ),
                   insecure=args.insecure)
    if result.auth == "none":
        print(f"warning: {registry} accepts requests without credentials; the password was not "
              "checked", file=sys.stderr)
    if result.replaced_user:
        print(f"replaced the stored credentials of {result.replaced_user!r}", file=sys.stderr)
    print(f"Login Succeeded: {result.username}@{registry} stored in the OS keyring "
          f"({type(store.backend).__name__})")
    return 0


def _logout(args: argparse.Namespace) -> int:
    from jenkins_registry.keyring_store import KeyringStore
    from jenkins_registry.registry_login import logout

    _resolve_registry(args)

    if logout(args.registry, store=KeyringStore()):
        print(f"Removed the stored credentials for {args.registry} from the OS keyring")
    else:
        print(f"Not logged in to {args.registry}; nothing to remove")
    return 0
