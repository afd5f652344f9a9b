"""`jr nexus setup`: a Nexus 3 docker hosted repository on an HTTP port, ready for Jenkins."""

from __future__ import annotations

import argparse
import logging
from typing import TYPE_CHECKING, Any

from jenkins_registry.cli.common import add_common_options, interactive, prompt_secret
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.credentials import DEFAULT_PASSWORD_ENV
from jenkins_registry.errors import CredentialsError, UsageError

if TYPE_CHECKING:
    from jenkins_registry.secret_types import Secret

log = logging.getLogger(__name__)

USERNAME_ENV = "NEXUS_USERNAME"
PASSWORD_ENV = "NEXUS_PASSWORD"
KEYRING_SERVICE = "nexus"


def register(subparsers: Any) -> None:
    nexus = subparsers.add_parser("nexus", help="provision Nexus 3 for Docker",
                                  description="Provision Nexus Repository 3 for Docker.",
                                  epilog=epilog("jr nexus"), formatter_class=HelpFormatter)
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
        "--admin-password-file (the first-run admin.password). With --user NAME it also "
        "creates or updates the push account: a role jr-REPOSITORY-push with the repository's "
        "browse/read/add/edit privileges, and an active local user NAME holding it (other roles "
        f"kept) whose password comes from ${DEFAULT_PASSWORD_ENV} (or --password-env), the "
        "`jr login` keyring entry for HOST:HTTP-PORT and NAME, or a prompt; never from an option.",
        epilog=epilog("jr nexus setup"), formatter_class=HelpFormatter,
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
    setup.add_argument("--user", metavar="NAME",
                       help="also create or update this push account (role jr-REPOSITORY-push), "
                       "e.g. jenkins")
    setup.add_argument("--password-env", metavar="NAME",
                       help="read the --user password from $NAME (default "
                       f"{DEFAULT_PASSWORD_ENV})")
    setup.add_argument("--dry-run", action="store_true", help="only read; print what would change")
    setup.set_defaults(handler=_setup)


def _credentials(args: argparse.Namespace, url: str) -> tuple[str, Secret]:
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


class _PasswordsDiffer(Exception):
    """The two typed passwords differ (turned into a CredentialsError by `_push_password`)."""


def _confirmed_prompt(question: str) -> str:
    """A new password is typed twice: a typo would otherwise become the account's password."""
    first = prompt_secret(question)
    if first and prompt_secret("Again, to confirm: ") != first:
        raise _PasswordsDiffer
    return first


def _push_password(args: argparse.Namespace, user: str, registry: str) -> Secret:
    """The push account's password, by the package's one precedence; the same rules as
    `jr jenkins credential`, so both end up with the same secret."""
    from jenkins_registry.credentials import keyring_password_for, resolve_secret
    from jenkins_registry.keyring_store import KeyringStore

    env_var = args.password_env or DEFAULT_PASSWORD_ENV
    try:
        return resolve_secret(
            what=f"password of the push account {user}", environ=args.environ, env_var=env_var,
            keyring_lookup=lambda: keyring_password_for(KeyringStore(), registry, user),
            prompt=_confirmed_prompt if interactive(args.environ) else None,
        )
    except _PasswordsDiffer:
        raise CredentialsError("The two passwords typed differ; nothing was changed.",
                               hint="Run the command again and type the same password twice.",
                               ) from None
    except CredentialsError as exc:
        raise CredentialsError(
            exc.message,
            hint=f"Set {env_var} (in a shell: `read -rs {env_var}; export {env_var}`), or store "
            f"it with `jr login --registry {registry} --username {user}` once the account exists.",
        ) from None


def _setup(args: argparse.Namespace) -> int:
    import requests

    from jenkins_registry.nexus import (
        NexusClient,
        Outcome,
        SetupOptions,
        check_cleanup_tasks,
        docker_address,
        parse_repository_name,
        parse_url,
        setup,
        task_creation_steps,
    )
    from jenkins_registry.nexus_account import PushAccount, ensure_push_account, parse_user_id

    url = parse_url(args.url)
    repository = parse_repository_name(args.repository)
    if not 0 < args.http_port < 65536:
        raise UsageError(f"--http-port {args.http_port} is out of range (1-65535).")
    registry = docker_address(url, args.http_port)
    if args.password_env is not None and args.user is None:
        raise UsageError("--password-env is the password of --user; it needs --user NAME.",
                         hint="Add --user NAME, or drop --password-env.")
    if args.password_env == "":
        raise UsageError("--password-env needs a variable name.",
                         hint=f"Omit it to use {DEFAULT_PASSWORD_ENV}.")
    admin = args.environ.get(USERNAME_ENV) or "admin"
    user = None if args.user is None else parse_user_id(args.user, admin=admin)
    username, password = _credentials(args, url)
    # Every secret is in hand before the first request: a missing one changes nothing.
    account = (None if user is None else
               PushAccount(repository=repository, user_id=user,
                           password=_push_password(args, user, registry)))
    options = SetupOptions(repository=repository, http_port=args.http_port,
                           anonymous_pull=args.anonymous_pull, blob_store=args.blob_store)
    with requests.Session() as session:
        client = NexusClient(url, username, password, session=session)
        steps = setup(client, options, dry_run=args.dry_run)
        if account is not None:
            steps += ensure_push_account(client, account, dry_run=args.dry_run)
        tasks = check_cleanup_tasks(client)
        stored = (client.get_docker_hosted(repository) or {}).get("storage") or {}
    blob_store = str(stored.get("blobStoreName") or args.blob_store)
    prefix = "dry run: " if args.dry_run else ""
    for step in steps:
        print(f"{prefix}{step.step}: {step.verdict} ({step.detail})")
    for task in tasks:
        print(f"{prefix}{task.step}: {task.verdict} ({task.detail})")
        if task.outcome == Outcome.MISSING:
            for number, line in enumerate(task_creation_steps(task.step.removeprefix("task "),
                                                              repository, blob_store), 1):
                print(f"  {number}. {line}")
    print(f"Docker clients use {registry} (the connector port, not {url}/repository/{repository}).")
    print(f"The connector speaks plain HTTP: on every Docker host run `sudo jr docker "
          f"insecure-registry add {registry} --reload`, and open the port on the Nexus host: "
          f"`sudo firewall-cmd --zone=public --add-port={args.http_port}/tcp --permanent && "
          "sudo firewall-cmd --reload`.")
    if account is not None:
        print(f"Jenkins pushes as {account.user_id}: `jr jenkins credential --id "
              f"docker-registry-login --username {account.user_id}` stores the account for the "
              "builds (its password found as here).")
    return 0
