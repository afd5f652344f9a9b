"""`jr jenkins`: create or update the registry credential and the push jobs in Jenkins, idempotently.

Every subcommand connects with --jenkins-url / JENKINS_URL, --jenkins-user / JENKINS_USER and an API
token (or password) from JENKINS_API_TOKEN, else the OS keyring, else a prompt on a terminal; never
from an option. --dry-run runs the same steps but only reads from Jenkins, and prints what would
change (a diff for jobs; for credentials the action, never the password).
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Any

from jenkins_registry.cli.common import add_common_options, interactive, prompt_secret, registry_default
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.cli.job_options import TAGS_HELP, add_job_options
from jenkins_registry.credentials import DEFAULT_PASSWORD_ENV
from jenkins_registry.errors import UsageError

if TYPE_CHECKING:
    from jenkins_registry.jenkins_client import JenkinsClient
    from jenkins_registry.jenkins_provision import Change, Provisioner
    from jenkins_registry.job_spec import JobSpec
    from jenkins_registry.secret_types import Secret

log = logging.getLogger(__name__)

TOKEN_ENV = "JENKINS_API_TOKEN"
KEYRING_SERVICE = "jenkins:{url}"  # keyring service jenkins-registry:jenkins:<URL>, username <USER>

CONNECTION = f"""\
connection (every `jr jenkins` command; no option takes a token or password):
  --jenkins-url or JENKINS_URL, --jenkins-user or JENKINS_USER, and the API token (or the
  password) from {TOKEN_ENV}, else the OS keyring (service `jenkins-registry:jenkins:URL`, user
  USER, URL without the trailing slash), else a prompt when stdin is a terminal.
"""

CREDENTIAL_PASSWORD = f"""\
the registry password (never an option), first found:
  --password-stdin (one line; the trailing newline is removed), else $NAME of --password-env
  (default {DEFAULT_PASSWORD_ENV}), else the password `jr login` stored in the OS keyring for
  --registry (default: $JR_REGISTRY) and --username, else a prompt when stdin is a terminal.
"""

# The most a password read from standard input may be: a password, not a file.
PASSWORD_STDIN_MAX = 64 * 1024


def register(subparsers: Any) -> None:
    """Add `jr jenkins credential|job|check`."""
    jenkins = subparsers.add_parser(
        "jenkins", help="create or update the registry credential and push jobs in Jenkins",
        description="Provision Jenkins through its REST API (python-jenkins): the 'Username with "
        "password' credential the builds use, and the jobs that build and push the image.",
        epilog=epilog("jr jenkins", CONNECTION), formatter_class=HelpFormatter,
    )
    add_common_options(jenkins)
    jenkins.set_defaults(handler=_handle_missing_what)
    commands = jenkins.add_subparsers(title="what to provision", metavar="WHAT")

    credential = _subparser(
        commands, "credential",
        "create or update a 'Username with password' credential (system store, or a folder's)",
        f"{CREDENTIAL_PASSWORD}\n{CONNECTION}")
    credential.add_argument("--id", dest="credential_id", metavar="ID", required=True,
                            help="credential id the jobs refer to, e.g. docker-registry-login")
    credential.add_argument("--username", metavar="USER", required=True, help="the registry user")
    credential.add_argument("--description", metavar="TEXT", default="", help="credential description")
    credential.add_argument("--folder", metavar="A/B",
                            help="use this folder's credential store instead of the system store")
    password = credential.add_mutually_exclusive_group()
    password.add_argument("--password-stdin", action="store_true",
                          help="read the registry password from standard input (one line; the "
                          "trailing newline is removed)")
    password.add_argument("--password-env", metavar="NAME",
                          help=f"read the registry password from $NAME (default {DEFAULT_PASSWORD_ENV})")
    credential.add_argument("--registry", metavar="HOST[:PORT]",
                            help="when $NAME is unset, use the password `jr login` stored in the OS "
                            "keyring for this registry and --username (default: $JR_REGISTRY)")
    _connection_options(credential)
    credential.set_defaults(handler=handle_credential)

    job = _subparser(commands, "job", "create or update a job that builds and pushes the image",
                     f"{TAGS_HELP}\n{CONNECTION}")
    job.add_argument("--name", metavar="NAME", required=True, help="job name (inside --folder, if given)")
    job.add_argument("--folder", metavar="A/B", help="create the job in this folder (created if missing)")
    job.add_argument("--force", action="store_true",
                     help="replace a job of that name that jenkins-registry did not create")
    add_job_options(job)
    job.add_argument("--allow-missing-credential", action="store_true",
                     help="create the job even when no credential store on its path holds "
                     "--credentials-id (or --scm-credentials-id) yet")
    _connection_options(job)
    job.set_defaults(handler=handle_job)

    check = commands.add_parser(
        "check", help="check that Jenkins has what the jobs need (plugins, credential, token)",
        description="Check, in order: Jenkins answers, the token is accepted, the crumb, every "
        "plugin the rendered jobs use (cloudbees-folder too with --folder), and that each "
        "--credentials-id is in a store a job in --folder can use. Only reads; exits 13 when "
        "something would stop a job.",
        epilog=epilog("jr jenkins check", CONNECTION),
        formatter_class=HelpFormatter,
    )
    add_common_options(check)
    check.add_argument("--credentials-id", metavar="ID", action="append", default=[],
                       help="a credential the jobs bind; repeatable")
    check.add_argument("--folder", metavar="A/B", help="where the jobs live (default: the root)")
    _connection_options(check)
    check.set_defaults(handler=handle_check)


def _subparser(subparsers: Any, name: str, help_text: str, notes: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, epilog=epilog(f"jr jenkins {name}", notes),
        formatter_class=HelpFormatter,
    )
    add_common_options(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="only read from Jenkins and print what would change")
    return parser


def _connection_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("Jenkins connection")
    group.add_argument("--jenkins-url", metavar="URL", help="Jenkins base URL (default: $JENKINS_URL)")
    group.add_argument("--jenkins-user", metavar="USER", help="Jenkins user (default: $JENKINS_USER)")
    group.add_argument("--timeout", metavar="SECONDS", type=float, default=30.0,
                       help="timeout of each request to Jenkins (default: 30)")


def _handle_missing_what(args: argparse.Namespace) -> int:
    raise UsageError("Say what to provision.", hint="Use `jr jenkins credential|job|check --help`.")


# -- connection -----------------------------------------------------------------------------------------


def _connect(args: argparse.Namespace, secrets: tuple[Secret, ...] = ()) -> JenkinsClient:
    from jenkins_registry.credentials import resolve_secret
    from jenkins_registry.jenkins_client import JenkinsSettings, connect, normalize_url
    from jenkins_registry.keyring_store import KeyringStore

    environ = args.environ
    raw_url = args.jenkins_url or environ.get("JENKINS_URL")
    if not raw_url:
        raise UsageError("No Jenkins URL given.",
                         hint="Pass --jenkins-url http://HOST:8080/ or set JENKINS_URL.")
    url = normalize_url(raw_url)
    user = args.jenkins_user or environ.get("JENKINS_USER")
    if not user:
        raise UsageError("No Jenkins user given.", hint="Pass --jenkins-user USER or set JENKINS_USER.")
    if args.timeout <= 0:
        raise UsageError("--timeout must be a positive number of seconds.")
    service = KEYRING_SERVICE.format(url=url.rstrip("/"))
    token = resolve_secret(
        what=f"Jenkins API token for {user}", environ=environ, env_var=TOKEN_ENV,
        keyring_lookup=lambda: KeyringStore().get_secret(service, user),
        prompt=prompt_secret if interactive(environ) else None,
    )
    log.info("Jenkins: %s as %s", url, user)
    return connect(JenkinsSettings(url=url, user=user, token=token, timeout=args.timeout), secrets=secrets)


def _provisioner(client: JenkinsClient, dry_run: bool) -> Provisioner:
    from jenkins_registry.jenkins_provision import DryRunWriter, LiveWriter, Provisioner

    return Provisioner(client, DryRunWriter() if dry_run else LiveWriter(client))


def _folder(folder: str | None) -> tuple[str, ...]:
    from jenkins_registry.jenkins_provision import split_folder
    from jenkins_registry.render import validate_jenkins_name

    return tuple(validate_jenkins_name(part) for part in split_folder(folder))


def _report(change: Change, dry_run: bool) -> None:
    verb = {"created": "create", "updated": "update"}.get(change.action)
    what = f"{change.kind} {change.name}" + (f" in {change.where}" if change.where else "")
    line = f"would {verb} {what}" if dry_run and verb else f"{change.action} {what}"
    sys.stdout.write(line + (f" ({change.detail})" if change.detail else "") + "\n")
    if change.diff:
        if dry_run:
            sys.stdout.write(change.diff)
        else:
            log.debug("%s", change.diff)
    sys.stdout.flush()


# -- jr jenkins credential ------------------------------------------------------------------------------


def _password_from_stdin(args: argparse.Namespace) -> Secret:
    """--password-stdin: one line from standard input, its trailing newline removed; never shown."""
    from jenkins_registry.errors import CredentialsError
    from jenkins_registry.secret_types import Secret

    if args.registry is not None:
        raise UsageError("--registry only says which keyring entry holds the password; with "
                         "--password-stdin it would be ignored.", hint="Drop one of them.")
    text = sys.stdin.read(PASSWORD_STDIN_MAX + 1)
    if len(text) > PASSWORD_STDIN_MAX:
        raise UsageError(f"Standard input holds more than {PASSWORD_STDIN_MAX // 1024} KiB; that "
                         "is not a password.", hint="Pipe in the password alone, e.g. "
                         "`printf '%s' \"$PASSWORD\" | jr jenkins credential … --password-stdin`.")
    line = text[:-1] if text.endswith("\n") else text
    line = line[:-1] if line.endswith("\r") else line
    secret = Secret(line)  # known from here on: every message of this process hides it
    if "\n" in line or "\r" in line:
        raise UsageError("Standard input holds more than one line; the password is one line.",
                         hint="Pipe in the password alone, e.g. `printf '%s' \"$PASSWORD\" | jr "
                         "jenkins credential … --password-stdin`.")
    if not line:
        raise CredentialsError("The password read from standard input is empty.",
                               hint="Pipe in the registry password, e.g. `printf '%s' \"$PASSWORD\" "
                               "| jr jenkins credential … --password-stdin`.")
    log.info("password of %s for credential %s: from standard input", args.username,
             args.credential_id)
    return secret


def _credential_password(args: argparse.Namespace) -> Secret:
    from jenkins_registry.credentials import keyring_password_for, resolve_secret
    from jenkins_registry.errors import CredentialsError
    from jenkins_registry.keyring_store import KeyringStore

    if args.password_stdin:
        return _password_from_stdin(args)
    if args.password_env == "":
        raise UsageError("--password-env needs a variable name.",
                         hint=f"Omit it to use {DEFAULT_PASSWORD_ENV}.")
    env_var: str = args.password_env or DEFAULT_PASSWORD_ENV
    # Without a registry (--registry, else $JR_REGISTRY) the keyring is not consulted.
    registry = registry_default(args)
    lookup = (lambda: keyring_password_for(KeyringStore(), registry, args.username)) if registry else None

    try:
        return resolve_secret(
            what=f"password of {args.username} for credential {args.credential_id}", environ=args.environ,
            env_var=env_var, keyring_lookup=lookup,
            prompt=prompt_secret if interactive(args.environ) else None,
        )
    except CredentialsError as exc:
        raise CredentialsError(
            exc.message,
            hint=f"Set {env_var} (in a shell: `read -rs {env_var}; export {env_var}`), pipe it in "
            "with --password-stdin, or pass --registry HOST[:PORT] to use the password `jr login` "
            "stored in the OS keyring for --username.",
        ) from None


def handle_credential(args: argparse.Namespace) -> int:
    from jenkins_registry.job_spec import CredentialSpec
    from jenkins_registry.render import render_credential_xml, validate_credential_id

    validate_credential_id(args.credential_id)
    folder = _folder(args.folder)
    password = _credential_password(args)
    spec = CredentialSpec(credential_id=args.credential_id, username=args.username, password=password,
                          description=args.description)
    xml = render_credential_xml(spec)
    client = _connect(args, secrets=(password,))
    change = _provisioner(client, args.dry_run).apply_credential(spec, xml, folder=folder)
    _report(change, args.dry_run)
    return 0


# -- jr jenkins job -------------------------------------------------------------------------------------


def handle_job(args: argparse.Namespace) -> int:
    from jenkins_registry.cli.job_options import job_spec
    from jenkins_registry.render import render_job_xml, validate_jenkins_name

    name = validate_jenkins_name(args.name)
    folder = _folder(args.folder)
    spec = job_spec(args)
    xml = render_job_xml(spec)
    client = _connect(args)
    if not args.allow_missing_credential:
        _require_credentials(client, spec, folder)
    changes = _provisioner(client, args.dry_run).apply_job((*folder, name), xml, force=args.force)
    for change in changes:
        _report(change, args.dry_run)
    log.debug("%d requests to Jenkins (after the crumb)", client.requests_sent)
    return 0


def _require_credentials(client: JenkinsClient, spec: JobSpec, folder: tuple[str, ...]) -> None:
    """Refuse (exit 6), before any write, a credential id no store on the job's path holds: the job
    would be created and then fail at its first build."""
    from jenkins_registry.errors import NotFoundError
    from jenkins_registry.jenkins_check import credential_fix, find_credential

    wanted = [cid for cid in (spec.credentials_id, spec.scm.credentials_id if spec.scm else None) if cid]
    for cid in dict.fromkeys(wanted):
        found = find_credential(client, cid, folder)
        if found.store is not None:
            log.info("credential %s: in %s", cid, found.store)
            continue
        where = "the system store" + (f" or a folder store on {'/'.join(folder)}" if folder else "")
        seen = (f" It is in {found.invisible} with SYSTEM scope, which builds cannot use."
                if found.invisible else "")
        raise NotFoundError(
            f"No credential {cid!r} in {where}; the job's builds would fail.{seen}",
            hint=f"{credential_fix(cid, folder).capitalize()}; or pass --allow-missing-credential "
            "to create the job anyway.",
        )


# -- jr jenkins check -----------------------------------------------------------------------------------


def handle_check(args: argparse.Namespace) -> int:
    from jenkins_registry.checklist import failures
    from jenkins_registry.cli.common import print_checklist
    from jenkins_registry.errors import CheckFailedError
    from jenkins_registry.jenkins_check import check_jenkins
    from jenkins_registry.render import validate_credential_id

    for cid in args.credentials_id:
        validate_credential_id(cid)
    folder = _folder(args.folder)
    client = _connect(args)
    results = check_jenkins(client, credential_ids=list(dict.fromkeys(args.credentials_id)),
                            job_folder=folder)
    print(f"jr jenkins check: {client.url}")
    print_checklist(results)
    failed = failures(results)
    if failed:
        raise CheckFailedError(f"{len(failed)} check(s) failed: {', '.join(r.name for r in failed)}.",
                               hint="Apply each fix above, then run `jr jenkins check` again.")
    print("Jenkins has what the jobs need")
    return 0
