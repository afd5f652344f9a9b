"""`jr nexus setup`: a Nexus 3 docker hosted repository on an HTTP port, ready for Jenkins."""

from __future__ import annotations

import argparse
from typing import Any
from urllib.parse import urlsplit

from jenkins_registry.cli.common import add_common_options, interactive, prompt_secret

USERNAME_ENV = "NEXUS_USERNAME"
PASSWORD_ENV = "NEXUS_PASSWORD"
KEYRING_SERVICE = "nexus"


def register(subparsers: Any) -> None:
    nexus = subparsers.add_parser("nexus", help="provision Nexus 3 for Docker",
                                  description="Provision Nexus Repository 3 for Docker.")
    add_common_options(nexus)
    nexus_sub = nexus.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    setup = nexus_sub.add_parser(
        "setup", help="create or update the docker hosted repository, realm and anonymous access",
        description="Create (or update) a docker hosted repository with an HTTP connector port, "
        "forceBasicAuth false and v1 disabled; activate the Docker Bearer Token Realm "
        "(DockerToken), keeping the active realms in order; optionally enable or disable "
        "anonymous access. Each step reports created/updated/unchanged. Admin credentials come "
        f"from {USERNAME_ENV}/{PASSWORD_ENV}, the OS keyring (service "
        f"'jenkins-registry:nexus:<url>', user {USERNAME_ENV} or admin), a prompt, or "
        "--admin-password-file (the first-run admin.password).",
    )
    add_common_options(setup)
    setup.add_argument("--url", required=True, help="the Nexus base URL, e.g. http://10.211.55.6:8081")
    setup.add_argument("--repository", required=True, metavar="NAME",
                       help="the docker hosted repository, e.g. docker-hosted")
    setup.add_argument("--http-port", required=True, type=int, metavar="PORT",
                       help="the repository's HTTP connector port, e.g. 8082")
    anonymous = setup.add_mutually_exclusive_group()
    anonymous.add_argument("--anonymous-pull", dest="anonymous_pull", action="store_true",
                           default=None, help="enable anonymous access (server-wide)")
    anonymous.add_argument("--no-anonymous-pull", dest="anonymous_pull", action="store_false",
                           help="disable anonymous access (server-wide)")
    setup.add_argument("--blob-store", default="default", metavar="NAME",
                       help="blob store for a new repository (default: default)")
    setup.add_argument("--admin-password-file", metavar="PATH",
                       help="read the admin password from this file (e.g. "
                       "sonatype-work/nexus3/admin.password); the user defaults to admin")
    setup.add_argument("--dry-run", action="store_true", help="only read; print what would change")
    setup.set_defaults(handler=_setup)


def _credentials(args: argparse.Namespace, url: str) -> tuple[str, Any]:
    from jenkins_registry.credentials import resolve_secret
    from jenkins_registry.keyring_store import KeyringStore
    from jenkins_registry.nexus import read_password_file

    environ = args.environ
    username = environ.get(USERNAME_ENV) or "admin"
    if args.admin_password_file:
        return username, read_password_file(args.admin_password_file)
    store = KeyringStore()
    key = f"{KEYRING_SERVICE}:{url}"
    secret = resolve_secret(
        what=f"Nexus password of {username}",
        environ=environ,
        env_var=PASSWORD_ENV,
        keyring_lookup=lambda: store.get_secret(key, username),
        prompt=prompt_secret if interactive(environ) else None,
    )
    return username, secret


def _setup(args: argparse.Namespace) -> int:
    import requests

    from jenkins_registry.errors import UsageError
    from jenkins_registry.nexus import NexusClient, SetupOptions, parse_repository_name, parse_url, setup

    url = parse_url(args.url)
    repository = parse_repository_name(args.repository)
    if not 0 < args.http_port < 65536:
        raise UsageError(f"--http-port {args.http_port} is out of range (1-65535).")
    username, password = _credentials(args, url)
    options = SetupOptions(repository=repository, http_port=args.http_port,
                           anonymous_pull=args.anonymous_pull, blob_store=args.blob_store)
    with requests.Session() as session:
        client = NexusClient(url, username, password, session=session)
        steps = setup(client, options, dry_run=args.dry_run)
    prefix = "dry run: " if args.dry_run else ""
    for step in steps:
        print(f"{prefix}{step.step}: {step.verdict} ({step.detail})")
    host = urlsplit(url).hostname or ""
    registry = f"[{host}]:{args.http_port}" if ":" in host else f"{host}:{args.http_port}"
    print(f"Docker clients use {registry} (the connector port, not {url}/repository/{repository}).")
    print(f"The connector speaks plain HTTP: on every Docker host run `sudo jr docker "
          f"insecure-registry add {registry} --reload`, and open the port on the Nexus host: "
          f"`sudo firewall-cmd --zone=public --add-port={args.http_port}/tcp --permanent && "
          "sudo firewall-cmd --reload`.")
    return 0
