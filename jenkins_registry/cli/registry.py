"""`jr registry tag|copy|prune`: registry-side operations on images already pushed.

Each runs on the registry client of jr-push's daemonless route: the same scheme rule (loopback
may use plain HTTP; elsewhere HTTPS unless --insecure), CA bundle, retries, exit codes and
credential precedence (--username-env/--password-env, DOCKER_LOGIN_USERNAME/PASSWORD, the
`jr login` keyring entry, else anonymous). A copy's source has its own: --src-username-env/
--src-password-env, else the source registry's keyring entry, else (same registry) the
destination's credentials, else anonymous; the destination's variables never go to another
registry. No option takes a password.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from jenkins_registry.cli.common import add_common_options
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.credentials import DEFAULT_PASSWORD_ENV, DEFAULT_USERNAME_ENV
from jenkins_registry.errors import UsageError

if TYPE_CHECKING:
    from jenkins_registry.reference import ImageReference
    from jenkins_registry.registry_client import RegistryClient
    from jenkins_registry.secret_types import UsernamePassword

CREDENTIALS_NOTE = (
    f"credentials: --username-env/--password-env, else {DEFAULT_USERNAME_ENV}/"
    f"{DEFAULT_PASSWORD_ENV}, else the `jr login` keyring entry, else anonymous.")


def register(subparsers: Any) -> None:
    registry = subparsers.add_parser(
        "registry", help="tag, copy and prune images in a registry (no local engine needed)",
        description="Operations on images already in a registry, through the registry API: "
        "no Docker engine, no local disk. " + CREDENTIALS_NOTE,
        epilog=epilog("jr registry"), formatter_class=HelpFormatter)
    add_common_options(registry)
    commands = registry.add_subparsers(title="registry commands", metavar="COMMAND")

    tag = commands.add_parser(
        "tag", help="add tags to a manifest or index, keeping its digest",
        usage="jr registry tag REF NEW_TAG...",
        description="Read the manifest (or index) REF names and put it back under each NEW_TAG "
        "byte for byte: the digest is kept and no blob is read or uploaded. Prints "
        "REGISTRY/REPO:NEW_TAG@DIGEST per tag. " + CREDENTIALS_NOTE,
        epilog=epilog("jr registry tag"), formatter_class=HelpFormatter)
    tag.add_argument("ref", metavar="REF", help="HOST[:PORT]/REPO:TAG or HOST[:PORT]/REPO@sha256:…")
    tag.add_argument("new_tags", metavar="NEW_TAG", nargs="+", help="tag to add")
    _shared_options(tag)
    tag.set_defaults(handler=_tag)

    copy = commands.add_parser(
        "copy", help="copy an image or index to another repository or registry",
        usage="jr registry copy SRC DST",
        description="Copy the image (or whole index) SRC names to DST, keeping its digest. On "
        "one registry blobs are mounted across repositories (no blob bytes through jr); "
        "between registries they are streamed from source to destination without touching "
        "the disk. Blobs the destination has are skipped; manifests go last. DST without a "
        "tag takes SRC's tag (SRC by digest: DST is written by digest only). Source "
        "credentials: --src-username-env/--src-password-env, else the source registry's "
        "keyring entry, else (same registry) the destination's, else anonymous.",
        epilog=epilog("jr registry copy"), formatter_class=HelpFormatter)
    copy.add_argument("src", metavar="SRC", help="HOST[:PORT]/REPO:TAG or …@sha256:…")
    copy.add_argument("dst", metavar="DST", help="HOST[:PORT]/REPO[:TAG]")
    copy.add_argument("--src-username-env", metavar="NAME",
                      help="read the source registry's username from $NAME")
    copy.add_argument("--src-password-env", metavar="NAME",
                      help="read the source registry's password from $NAME")
    _shared_options(copy)
    copy.set_defaults(handler=_copy)

    prune = commands.add_parser(
        "prune", help="delete old images of a repository (dry run unless --yes)",
        usage="jr registry prune HOST[:PORT]/REPO --keep N [--keep-tag REGEX]... "
        "[--older-than DAYS] [--yes]",
        description="Order the repository's images by their config's created time and delete, "
        "by digest, those beyond the newest N that no --keep-tag pattern matches (the whole "
        "tag) and that are older than --older-than days. A digest any kept tag points at is "
        "never deleted; images without a created time are kept. Without --yes only the plan "
        "is printed. On Nexus, blob space comes back only once its cleanup tasks run "
        "(docs/registry-operations.md).",
        epilog=epilog("jr registry prune"), formatter_class=HelpFormatter)
    prune.add_argument("repository", metavar="HOST[:PORT]/REPO")
    prune.add_argument("--keep", metavar="N", type=int, required=True,
                       help="keep the N newest images (every tag on them)")
    prune.add_argument("--keep-tag", metavar="REGEX", action="append", default=[],
                       help="keep images with a tag this regular expression matches whole; "
                       "repeatable")
    prune.add_argument("--older-than", metavar="DAYS", type=float, default=None,
                       help="delete only images created more than DAYS days ago")
    prune.add_argument("--yes", action="store_true",
                       help="delete (without it: print the plan, change nothing)")
    _shared_options(prune)
    prune.set_defaults(handler=_prune)


def _shared_options(parser: argparse.ArgumentParser) -> None:
    add_common_options(parser)
    parser.add_argument("--json", action="store_true", help="print a JSON list of objects")
    parser.add_argument("--insecure", action="store_true",
                        help="allow plain HTTP and unverified HTTPS to a registry that is not "
                        "this machine")
    parser.add_argument("--username-env", metavar="NAME",
                        help=f"read the username from $NAME (default {DEFAULT_USERNAME_ENV})")
    parser.add_argument("--password-env", metavar="NAME",
                        help=f"read the password from $NAME (default {DEFAULT_PASSWORD_ENV})")


# -- inputs ----------------------------------------------------------------------------------------


def _image(text: str, what: str, *, tag: str = "required") -> ImageReference:
    """*text* parsed: a registry always; a tag or digest as *tag* says (required/optional/none)."""
    from jenkins_registry.reference import parse_reference

    reference = parse_reference(text)
    if reference.registry is None:
        raise UsageError(f"{what} {text!r} names no registry.",
                         hint="Write HOST[:PORT]/REPO…, e.g. 10.211.55.6:8082/team/app:v1.")
    if tag == "required" and reference.tag is None and reference.digest is None:
        raise UsageError(f"{what} {text!r} names no tag or digest.",
                         hint="Add :TAG or @sha256:… to say which image.")
    if tag == "none" and (reference.tag is not None or reference.digest is not None):
        raise UsageError(f"{what} {text!r} names a tag or digest; prune takes a repository.",
                         hint="Give HOST[:PORT]/REPO only.")
    if reference.tag is not None and reference.digest is not None:
        raise UsageError(f"{what} {text!r} names both a tag and a digest.",
                         hint="Give one: :TAG or @sha256:….")
    return reference


def _client(args: argparse.Namespace, registry: str,
            credentials: UsernamePassword | None) -> RegistryClient:
    from jenkins_registry.http_transport import ca_bundle_from
    from jenkins_registry.registry_client import RegistryClient, SchemePolicy

    return RegistryClient(registry, credentials=credentials,
                          policy=SchemePolicy.from_insecure_flag(registry, insecure=args.insecure),
                          ca_bundle=ca_bundle_from(args.environ))


def _credentials(args: argparse.Namespace, registry: str) -> UsernamePassword | None:
    from jenkins_registry.credentials import resolve_registry_credentials
    from jenkins_registry.keyring_store import KeyringStore

    return resolve_registry_credentials(
        registry, environ=args.environ, username_env=args.username_env,
        password_env=args.password_env, keyring_store=KeyringStore(),
        anonymous_note="going on anonymously")


def _source_credentials(args: argparse.Namespace, registry: str) -> UsernamePassword | None:
    """The source's own variables when given; else only its keyring entry (the destination's
    default variables are the destination's: they never go to another registry)."""
    from jenkins_registry.credentials import resolve_registry_credentials
    from jenkins_registry.keyring_store import KeyringStore

    chosen = args.src_username_env is not None or args.src_password_env is not None
    if chosen and not (args.src_username_env and args.src_password_env):
        raise UsageError("--src-username-env and --src-password-env go together.",
                         hint="Name both variables, or neither to use the keyring.")
    return resolve_registry_credentials(
        registry, environ=args.environ if chosen else {}, username_env=args.src_username_env,
        password_env=args.src_password_env, keyring_store=KeyringStore(),
        anonymous_note="reading the source anonymously")


def _print(args: argparse.Namespace, lines: list[str], documents: list[Any]) -> None:
    if args.json:
        sys.stdout.write(json.dumps(documents, indent=2) + "\n")
    else:
        for line in lines:
            sys.stdout.write(line + "\n")
    sys.stdout.flush()


# -- handlers --------------------------------------------------------------------------------------


def _tag(args: argparse.Namespace) -> int:
    from jenkins_registry.reference import parse_tag
    from jenkins_registry.registry_tag import add_tags

    reference = _image(args.ref, "REF")
    new_tags = [parse_tag(tag) for tag in args.new_tags]
    assert reference.registry is not None
    with _client(args, reference.registry, _credentials(args, reference.registry)) as client:
        done = add_tags(client, reference.path, reference.digest or str(reference.tag), new_tags)
    _print(args, [item.reference for item in done], [item.to_json() for item in done])
    return 0


def _copy(args: argparse.Namespace) -> int:
    from jenkins_registry.registry_copy import ImageCopier

    source = _image(args.src, "SRC")
    destination = _image(args.dst, "DST", tag="optional")
    if destination.digest is not None:
        raise UsageError(f"DST {args.dst!r} names a digest.",
                         hint="The digest is kept from SRC; give DST as HOST[:PORT]/REPO[:TAG].")
    assert source.registry is not None and destination.registry is not None
    tags = [destination.tag] if destination.tag else [source.tag] if source.tag else []
    same = source.registry == destination.registry
    dst_credentials = _credentials(args, destination.registry)
    own_source = not same or args.src_username_env is not None or args.src_password_env is not None
    with _client(args, destination.registry, dst_credentials) as dst_client:
        if own_source:
            src_credentials = _source_credentials(args, source.registry)
            with _client(args, source.registry, src_credentials) as src_client:
                result = ImageCopier(src_client, source.path, dst_client, destination.path,
                                     same_registry=same).copy(source.digest or str(source.tag), tags)
        else:
            result = ImageCopier(dst_client, source.path, dst_client, destination.path,
                                 same_registry=True).copy(source.digest or str(source.tag), tags)
    counts = result.blobs
    if not args.json:
        sys.stderr.write(f"blobs: {counts.present} present, {counts.mounted} mounted, "
                         f"{counts.streamed} streamed ({counts.streamed_bytes} bytes)\n")
    _print(args, result.references(), result.to_json())
    return 0


def _prune(args: argparse.Namespace) -> int:
    import re

    from jenkins_registry.push_target import PushTarget
    from jenkins_registry.registry_prune import PrunePolicy, apply_prune, plan_prune

    reference = _image(args.repository, "HOST[:PORT]/REPO", tag="none")
    if args.keep < 0:
        raise UsageError(f"--keep {args.keep} is negative.", hint="Give the number of images to keep.")
    if args.older_than is not None and not 0 <= args.older_than < 100_000:
        raise UsageError(f"--older-than {args.older_than:g} is not a number of days.",
                         hint="Give days, e.g. --older-than 30.")
    patterns = []
    for text in args.keep_tag:
        try:
            patterns.append(re.compile(text))
        except re.error as exc:
            raise UsageError(f"--keep-tag {text!r} is not a regular expression ({exc.msg}).",
                             hint="Use Python's re syntax, e.g. --keep-tag 'release-.*'.") from None
    policy = PrunePolicy(keep=args.keep, keep_tags=tuple(patterns), older_than_days=args.older_than)
    assert reference.registry is not None
    with _client(args, reference.registry, _credentials(args, reference.registry)) as client:
        plan = plan_prune(client, reference.path, policy)
        deleted = apply_prune(client, plan) if args.yes else []
    doomed = plan.doomed()
    prefix = "" if args.yes else "dry run: "
    target = PushTarget(registry=plan.registry, repository=plan.repository, tags=())
    lines = [f"{prefix}{'delete' if e.delete else 'keep'} {target.reference(e.tag)} "
             f"{e.digest[:19]} "
             f"{e.created.strftime('%Y-%m-%dT%H:%M:%SZ') if e.created else '(no created time)'}"
             f" ({e.reason})" for e in plan.tags]
    if args.yes:
        lines.append(f"deleted {len(deleted)} of {len(doomed)} manifests")
    else:
        lines.append(f"dry run: nothing deleted; --yes deletes {len(doomed)} manifests")
    _print(args, lines, [{**entry.to_json(), "deleted": entry.digest in deleted}
                         for entry in plan.tags])
    return 0
