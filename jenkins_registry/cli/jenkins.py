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

from jenkins_registry.cli.common import add_common_options, interactive, prompt_secret
from jenkins_registry.credentials import DEFAULT_PASSWORD_ENV
from jenkins_registry.errors import UsageError

if TYPE_CHECKING:
    from jenkins_registry.credentials import Secret
    from jenkins_registry.jenkins_client import JenkinsClient
    from jenkins_registry.jenkins_provision import Change, Provisioner

log = logging.getLogger(__name__)

TOKEN_ENV = "JENKINS_API_TOKEN"
KEYRING_SERVICE = "jenkins:{url}"  # keyring service jenkins-registry:jenkins:<URL>, username <USER>

EPILOG = f"""\
connection (every `jr jenkins` command; no option takes a token or password):
  --jenkins-url or JENKINS_URL, --jenkins-user or JENKINS_USER, and the API token (or the
  password) from {TOKEN_ENV}, else the OS keyring (service `jenkins-registry:jenkins:URL`, user
  USER, URL without the trailing slash), else a prompt when stdin is a terminal.

exit codes: 0 done (or nothing to do); 2 invalid option or value, or a name Jenkins refused;
  3 a secret is missing; 4 Jenkins rejected the user or token (401); 5 no permission or no valid
  crumb (403); 6 folder or credential store not found (404); 7 Jenkins unreachable;
  11 the job exists and is not managed by jenkins-registry (use --force); 14 Jenkins server error.
"""


def register(subparsers: Any) -> None:
    """Add `jr jenkins credential|job`."""
    jenkins = subparsers.add_parser(
        "jenkins", help="create or update the registry credential and push jobs in Jenkins",
        description="Provision Jenkins through its REST API (python-jenkins): the 'Username with "
        "password' credential the builds use, and the jobs that build and push the image.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(jenkins)
    jenkins.set_defaults(handler=_handle_missing_what)
    commands = jenkins.add_subparsers(title="what to provision", metavar="WHAT")

    credential = _subparser(
        commands, "credential",
        "create or update a 'Username with password' credential (system store, or a folder's)")
    credential.add_argument("--id", dest="credential_id", metavar="ID", required=True,
                            help="credential id the jobs refer to, e.g. docker-registry-login")
    credential.add_argument("--username", metavar="USER", required=True, help="the registry user")
    credential.add_argument("--description", metavar="TEXT", default="", help="credential description")
    credential.add_argument("--folder", metavar="A/B",
                            help="use this folder's credential store instead of the system store")
    credential.add_argument("--password-env", metavar="NAME", default=DEFAULT_PASSWORD_ENV,
                            help=f"read the registry password from $NAME (default {DEFAULT_PASSWORD_ENV})")
    credential.add_argument("--registry", metavar="HOST[:PORT]",
                            help="when $NAME is unset, use the password `jr login --registry` stored "
                            "in the OS keyring for this registry and --username")
    _connection_options(credential)
    credential.set_defaults(handler=handle_credential)

    job = _subparser(commands, "job", "create or update a job that builds and pushes the image")
    job.add_argument("--name", metavar="NAME", required=True, help="job name (inside --folder, if given)")
    job.add_argument("--type", dest="job_type", choices=("pipeline", "freestyle"), required=True,
                     help="pipeline (inline Jenkinsfile, or from git with --scm-url) or freestyle")
    job.add_argument("--registry", metavar="HOST[:PORT]",
                     help="the registry (default: $JR_REGISTRY), e.g. 10.211.55.6:8082")
    job.add_argument("--image", metavar="IMAGE", required=True,
                     help="repository path of the image, without registry or tag, e.g. jenkins-test")
    job.add_argument("--credentials-id", metavar="ID", required=True,
                     help="id of the Jenkins 'Username with password' credential")
    job.add_argument("--tag", metavar="TAG", action="append", default=[],
                     help="tag to push; repeatable (default: latest); ${NAME} expands at run time")
    job.add_argument("--build", action=argparse.BooleanOptionalAction, default=True,
                     help="run `docker build -t IMAGE .` first (default: yes)")
    job.add_argument("--runner", choices=("jr", "docker"), default="jr",
                     help="push with jr-push (default) or the plain docker CLI")
    job.add_argument("--description", metavar="TEXT", default="",
                     help="job description (a 'Managed by jenkins-registry' line is added)")
    job.add_argument("--folder", metavar="A/B", help="create the job in this folder (created if missing)")
    job.add_argument("--force", action="store_true",
                     help="replace a job of that name that jenkins-registry did not create")
    scm = job.add_argument_group("Jenkinsfile from git (pipeline only)")
    scm.add_argument("--scm-url", metavar="URL", help="git repository holding the Jenkinsfile")
    scm.add_argument("--scm-branch", metavar="BRANCH", help="branch spec (default: */main)")
    scm.add_argument("--script-path", metavar="PATH", help="Jenkinsfile path (default: Jenkinsfile)")
    scm.add_argument("--scm-credentials-id", metavar="ID", help="Jenkins credential for the git checkout")
    _connection_options(job)
    job.set_defaults(handler=handle_job)


def _subparser(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    raise UsageError("Say what to provision.", hint="Use `jr jenkins credential|job --help`.")


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


def _credential_password(args: argparse.Namespace) -> Secret:
    from jenkins_registry.credentials import resolve_secret
    from jenkins_registry.errors import CredentialsError
    from jenkins_registry.keyring_store import KeyringStore

    if not args.password_env:
        raise UsageError("--password-env needs a variable name.",
                         hint=f"Omit it to use {DEFAULT_PASSWORD_ENV}.")

    def from_keyring() -> Secret | None:
        if not args.registry:
            return None
        stored = KeyringStore().get(args.registry)
        if stored is None:
            return None
        if stored.username != args.username:
            log.info("keyring: the entry for %s is for user %s, not %s; not used",
                     args.registry, stored.username, args.username)
            return None
        return stored.password

    try:
        return resolve_secret(
            what=f"password of {args.username} for credential {args.credential_id}", environ=args.environ,
            env_var=args.password_env, keyring_lookup=from_keyring,
            prompt=prompt_secret if interactive(args.environ) else None,
        )
    except CredentialsError as exc:
        raise CredentialsError(
            exc.message,
            hint=f"Set {args.password_env} (in a shell: `read -rs {args.password_env}; export "
            f"{args.password_env}`), or pass --registry HOST[:PORT] to use the password "
            "`jr login` stored in the OS keyring for --username.",
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
    from jenkins_registry.job_spec import JobSpec, PushSpec, ScmSpec
    from jenkins_registry.render import render_job_xml, validate_jenkins_name

    name = validate_jenkins_name(args.name)
    folder = _folder(args.folder)
    registry = args.registry or args.environ.get("JR_REGISTRY")
    if not registry:
        raise UsageError("No registry given.",
                         hint="Pass --registry HOST[:PORT] (e.g. 10.211.55.6:8082) or set JR_REGISTRY.")
    scm_options = (args.scm_branch, args.script_path, args.scm_credentials_id)
    if args.scm_url is None and any(v is not None for v in scm_options):
        raise UsageError("--scm-branch, --script-path and --scm-credentials-id need --scm-url.",
                         hint="Pass --scm-url with the git repository that holds the Jenkinsfile.")
    scm = None
    if args.scm_url is not None:
        scm = ScmSpec(url=args.scm_url, branch=args.scm_branch or "*/main",
                      script_path=args.script_path or "Jenkinsfile", credentials_id=args.scm_credentials_id)
    spec = JobSpec(
        job_type=args.job_type, credentials_id=args.credentials_id, description=args.description, scm=scm,
        push=PushSpec(registry=registry, image=args.image, tags=tuple(args.tag), build=args.build,
                      runner=args.runner),
    )
    xml = render_job_xml(spec)
    client = _connect(args)
    changes = _provisioner(client, args.dry_run).apply_job((*folder, name), xml, force=args.force)
    for change in changes:
        _report(change, args.dry_run)
    log.debug("%d requests to Jenkins (after the crumb)", client.requests_sent)
    return 0
