"""Rendering: the Jenkinsfile, the freestyle shell step, job config.xml, credential XML and JCasC.

One jinja2 environment (StrictUndefined, no autoescape) loads the templates shipped in the package
`jenkins_registry.templates`; every value reaches a template through an explicit escaping filter
(`jenkins_registry.escaping`). Every value is validated before anything is rendered, so a value
that cannot be represented safely is refused with a clear error instead of producing a file.
Templates name secret *variables*; only the credential XML ever receives a secret value.
"""

from __future__ import annotations

import functools
import importlib.resources
import logging
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from jenkins_registry import escaping, reference
from jenkins_registry.credentials import DEFAULT_PASSWORD_ENV, DEFAULT_USERNAME_ENV
from jenkins_registry.errors import (
    InvalidReferenceError,
    TemplateError,
    UnsafeValueError,
    UsageError,
    redact,
)
from jenkins_registry.escaping import validate_credential_id, validate_jenkins_name
from jenkins_registry.job_spec import (
    MANAGED_MARKER,
    BuildOptions,
    CredentialSpec,
    JobSpec,
    PushSpec,
    ScmSpec,
)

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "render_casc", "render_credential_xml", "render_jenkinsfile", "render_job_xml", "render_shell",
    "validate_credential_id", "validate_jenkins_name", "validate_local_image", "validate_push",
]

log = logging.getLogger(__name__)

TEMPLATE_PACKAGE = "jenkins_registry.templates"
DEFAULT_TAG = "latest"
# jr-push writes the pushed manifest digest here; the pipeline archives it.
DIGEST_FILE = "image.digest"
DEFAULT_USERNAME_VARIABLE = DEFAULT_USERNAME_ENV
DEFAULT_PASSWORD_VARIABLE = DEFAULT_PASSWORD_ENV
TAG_MAX = 128

_TAG_LITERAL = re.compile(r"[A-Za-z0-9_.-]*")


# ---------------------------------------------------------------------------------------------
# The environment


def _always_fresh() -> bool:
    return True


def _load_template(name: str) -> tuple[str, str, Callable[[], bool]]:
    resource = importlib.resources.files(TEMPLATE_PACKAGE).joinpath(name)
    try:
        source = resource.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as exc:
        import jinja2

        raise jinja2.TemplateNotFound(name) from exc
    return source, str(resource), _always_fresh


@functools.cache
def environment() -> jinja2.Environment:
    """The one jinja2 environment: strict about undefined names, escaping only through filters."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FunctionLoader(_load_template),
        undefined=jinja2.StrictUndefined,
        # HTML autoescaping fits none of our targets; each value is escaped by an explicit filter.
        autoescape=False,  # noqa: S701
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        auto_reload=False,
    )
    env.filters.update(
        xml=escaping.xml_text,
        xml_secret=escaping.xml_secret,
        groovy=escaping.groovy_string,
        groovy_block=escaping.groovy_block,
        sh=escaping.shell_word,
        sh_tag=escaping.shell_tag_word,
        sh_template=escaping.shell_tag_word,
        sh_var=escaping.shell_variable,
        yaml=escaping.yaml_string,
        casc=escaping.casc_string,
    )
    return env


def template_origin(name: str) -> str:
    """Where template *name* is loaded from (a path inside the installed package)."""
    return _load_template(name)[1]


def _render(name: str, context: Mapping[str, object], secrets: Collection[str] = ()) -> str:
    import jinja2

    log.debug("rendering %s", name)
    try:
        return environment().get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        error = TemplateError(f"Template {name} failed: {redact(str(exc), secrets)}")
        if secrets:  # the chained exception could carry the secret into a --debug traceback
            raise error from None
        raise error from exc


# ---------------------------------------------------------------------------------------------
# Validation


def _with_image_hint(exc: InvalidReferenceError) -> InvalidReferenceError:
    """reference.py's hints name jr-push's --name; here the repository path is --repository."""
    return InvalidReferenceError(exc.message, hint=exc.hint.replace("--name", "--repository"))


def validate_registry(registry: str) -> str:
    """HOST[:PORT] per Docker's reference grammar, with no control characters."""
    escaping.refuse_control_characters(registry, "registry")
    try:
        return reference.parse_registry(registry)
    except InvalidReferenceError as exc:
        raise _with_image_hint(exc) from None


def validate_image(image: str) -> str:
    """A repository path without registry, tag or digest (e.g. `jenkins-test`, `team/app`)."""
    escaping.refuse_control_characters(image, "image name")
    try:
        return reference.parse_path(image)
    except InvalidReferenceError as exc:
        last = image.rsplit("/", 1)[-1]
        if ":" in last or "@" in last:
            raise InvalidReferenceError(
                f"The image name {escaping.describe(image)} includes a tag or digest.",
                hint="Give the repository path with --repository (e.g. jenkins-test) and each "
                "tag with --tag.",
            ) from None
        raise _with_image_hint(exc) from None


def validate_local_image(local: str, *, build: bool) -> str:
    """The image on the agent (`--image`). With *build*, the name the build tags (`NAME`, the
    build's own tag is appended, so no tag or digest); without, the image pushed as it is:
    `NAME[:TAG]`, `NAME@DIGEST` or an image ID."""
    escaping.refuse_control_characters(local, "local image")
    if not build and reference.looks_like_image_id(local):
        return local
    try:
        parsed = reference.parse_reference(local)
    except InvalidReferenceError as exc:
        raise InvalidReferenceError(
            f"The local image {escaping.describe(local)} is not a valid image name: {exc.message}",
            hint="--image names the image on the agent, e.g. --image jenkins-test (with --no-build "
            "also jenkins-test:1.0 or an image ID); the path in the registry is --repository.",
        ) from None
    if build and (parsed.tag is not None or parsed.digest is not None):
        raise InvalidReferenceError(
            f"The local image {escaping.describe(local)} has a tag or digest, but the build tags "
            "its own (NAME:jr-build-<BUILD_TAG>).",
            hint="Give --image without the tag, or add --no-build to push that image as it is.")
    return local


def validate_tag(tag: str, reserved_variables: Collection[str] = ()) -> str:
    """A tag, or a tag template whose `${NAME}` parts the shell expands at run time.

    The literal parts must follow Docker's tag grammar; a reference to a credential variable is
    refused, because it would publish the secret as a tag name.
    """
    escaping.refuse_control_characters(tag, "tag")
    literal = escaping.SHELL_REFERENCE.sub("", tag)
    if "$" in literal:
        raise InvalidReferenceError(
            f"The tag {escaping.describe(tag)} has a '$' that is not a ${{NAME}} reference.",
            hint="Write a shell variable as ${NAME}, e.g. --tag '${BUILD_NUMBER}' (in single "
            "quotes, so that your own shell leaves it alone).",
        )
    names = escaping.shell_references(tag)
    if not names:
        return reference.parse_tag(tag)
    for name in names:
        if name in reserved_variables:
            raise UnsafeValueError(
                f"The tag {escaping.describe(tag)} references ${{{name}}}, a credential variable.",
                hint="A tag is public; use a build variable such as ${BUILD_NUMBER} instead.",
            )
    if not _TAG_LITERAL.fullmatch(literal) or tag[0] in ".-" or len(literal) > TAG_MAX:
        raise InvalidReferenceError(
            f"The tag {escaping.describe(tag)} is not valid.",
            hint="Outside ${NAME} references a tag uses only [A-Za-z0-9_.-], does not start with "
            "'.' or '-', and has at most 128 characters.",
        )
    return tag


# A `--label` key: Docker takes any text before the first '='; we keep to the reverse-DNS style
# the OCI annotations use, so a key never needs quoting or expands anything.
_LABEL_KEY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._/-]*[A-Za-z0-9])?")
OCI_REVISION = "org.opencontainers.image.revision"
OCI_SOURCE = "org.opencontainers.image.source"


def validate_expandable(value: str, what: str, reserved_variables: Collection[str] = ()) -> str:
    """A value whose `${NAME}` parts the agent's shell expands (a build argument, a label).

    Any other `$` is refused (it would be ambiguous), and so is a reference to a credential
    variable: build arguments and labels are stored in the image, readable by anyone who pulls it.
    """
    escaping.refuse_control_characters(value, what)
    if "$" in escaping.SHELL_REFERENCE.sub("", value):
        raise UsageError(
            f"The {what} {escaping.describe(value)} has a '$' that is not a ${{NAME}} reference.",
            hint="Write a shell variable as ${NAME} (in single quotes, so that your own shell "
            "leaves it alone); a literal '$' cannot be rendered.",
        )
    for name in escaping.shell_references(value):
        if name in reserved_variables:
            raise UnsafeValueError(
                f"The {what} {escaping.describe(value)} references ${{{name}}}, a credential "
                "variable.",
                hint="Build arguments and labels are stored in the image; never put the registry "
                "login in them.",
            )
    return value


def _validate_path(value: str, option: str) -> str:
    escaping.refuse_control_characters(value, f"{option} path")
    if not value:
        raise UsageError(f"{option} is empty.", hint=f"Give a path relative to the workspace, e.g. "
                         f"{option} {'docker/Dockerfile' if option == '--dockerfile' else '.'}.")
    if value.startswith("-"):
        raise UsageError(f"The {option} path {escaping.describe(value)} starts with '-', which "
                         "docker would read as an option.", hint=f"Write it as ./{value}.")
    return value


def _has_password(url: str) -> bool:
    try:
        return "://" in url and urlsplit(url).password is not None
    except ValueError:
        return False


def _check_url(url: str, what: str, option: str,
               credentials_option: str = "--scm-credentials-id") -> str:
    """A git or web URL: no control character, no password (neither is echoed: both may hold one)."""
    if not url:
        raise UsageError(f"The {what} is empty.", hint=f"Pass {option} with the repository URL.")
    if any(escaping.is_control(ch) for ch in url):
        raise UnsafeValueError(f"The {what} contains a control character.")
    if _has_password(url):
        raise UnsafeValueError(
            f"The {what} contains a password; it would be stored in the job and the image.",
            hint="Remove the user:password part and store the git login as a Jenkins credential "
            f"({credentials_option}).",
        )
    return url


def public_url(url: str) -> str:
    """*url* without a user part (`https://user@host/x` → `https://host/x`), for an image label."""
    if "://" in url:
        scheme, rest = url.split("://", 1)
        authority, slash, path = rest.partition("/")
        return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"
    scp = re.fullmatch(r"[^/@:]+@([^/:]+:.*)", url)  # git's scp-like form user@host:path
    return scp.group(1) if scp else url


@dataclass(frozen=True, kw_only=True)
class ValidatedBuild:
    """Validated BuildOptions as the templates see them, OCI labels decided."""

    dockerfile: str | None
    context: str
    pull: bool
    build_args: tuple[tuple[str, str], ...]
    labels: tuple[tuple[str, str], ...]
    oci_revision: bool  # add org.opencontainers.image.revision="${GIT_COMMIT:-}"
    oci_source: str | None  # the source label's URL; None: no source label


def validate_build(options: BuildOptions, source_url: str | None,
                   reserved_variables: Collection[str]) -> ValidatedBuild:
    """Check the build options; *source_url* is the job's git URL (the OCI source by default)."""
    build_args = []
    for name, value in options.build_args:
        escaping.validate_variable_name(name, "build argument name")
        build_args.append((name, validate_expandable(value, f"value of build argument {name}",
                                                     reserved_variables)))
    labels = []
    for key, value in options.labels:
        escaping.refuse_control_characters(key, "label key")
        if not _LABEL_KEY.fullmatch(key):
            raise UsageError(f"The label key {escaping.describe(key)} is not valid.",
                             hint="Use letters, digits, '.', '-', '_' and '/', starting and ending "
                             "with a letter or digit, e.g. --label org.example.team=web.")
        labels.append((key, validate_expandable(value, f"value of label {key}", reserved_variables)))
    if options.oci_source is not None and not options.oci_labels:
        raise UsageError("--oci-source and --no-oci-labels contradict each other.",
                         hint="Drop one of them.")
    source = options.oci_source if options.oci_source is not None else source_url
    if source is not None:
        source = public_url(_check_url(source, "OCI source URL", "--oci-source"))
    given = {key for key, _ in labels}
    with_oci = options.oci_labels and source is not None
    return ValidatedBuild(
        dockerfile=None if options.dockerfile is None else _validate_path(options.dockerfile,
                                                                           "--dockerfile"),
        context=_validate_path(options.context, "--context"), pull=options.pull,
        build_args=tuple(build_args), labels=tuple(labels),
        oci_revision=with_oci and OCI_REVISION not in given,
        oci_source=source if with_oci and OCI_SOURCE not in given else None,
    )


_BUILD_OPTION_NAMES = {"dockerfile": "--dockerfile", "context": "--context",
                      "build_args": "--build-arg", "labels": "--label", "pull": "--pull",
                      "oci_labels": "--no-oci-labels", "oci_source": "--oci-source"}


def _refuse_unused_build_options(options: BuildOptions) -> None:
    """Without the build step the build options would be silently ignored: refuse them."""
    defaults = BuildOptions()
    given = [option for field, option in _BUILD_OPTION_NAMES.items()
             if getattr(options, field) != getattr(defaults, field)]
    if given:
        raise UsageError(f"{', '.join(given)} only apply to the build step, which --no-build drops.",
                         hint="Drop them, or drop --no-build to build the image in the job.")


@dataclass(frozen=True, kw_only=True)
class ValidatedPush:
    """A validated PushSpec as the templates see it (tags defaulted and de-duplicated)."""

    registry: str
    image: str  # the repository path
    local_image: str  # the image on the agent: the repository path unless --image says otherwise
    tags: tuple[str, ...]  # none with tag_from and no --tag: jr-push derives them all
    tag_from: str | None
    build: bool
    runner: str
    username_variable: str
    password_variable: str
    default_variables: bool
    digest_file: str
    build_options: ValidatedBuild | None  # None without the build step


TAG_SOURCES = ("git",)


def _check_tag_from(push: PushSpec) -> None:
    """`--tag-from git` is rendered as jr-push's own option: the plain docker steps have no way
    to derive the tags, so it is refused there rather than dropped."""
    if push.tag_from is None:
        return
    if push.tag_from not in TAG_SOURCES:
        raise UsageError(f"Unknown tag source {escaping.describe(str(push.tag_from))}.",
                         hint="Use --tag-from git.")
    if push.runner != "jr":
        raise UsageError(
            "--tag-from git needs --runner jr: jr-push derives the tags from git on the agent; "
            "the plain docker commands cannot.",
            hint="Use --runner jr (the default), or drop --tag-from and name the tags, e.g. "
            "--tag '${GIT_COMMIT}'.")


def validate_push(push: PushSpec, *, source_url: str | None = None) -> ValidatedPush:
    """Check every field of *push*; raise UnsafeValueError / InvalidReferenceError / UsageError.

    *source_url* is the git repository the job checks out, the default OCI source label.
    """
    registry = validate_registry(push.registry)
    image = validate_image(push.image)
    local_image = image if push.local_image is None else validate_local_image(
        push.local_image, build=bool(push.build))
    if push.runner not in ("jr", "docker"):
        raise UsageError(f"Unknown runner {escaping.describe(push.runner)}.",
                         hint="Use --runner jr (default) or --runner docker.")
    _check_tag_from(push)
    username_var = escaping.validate_variable_name(push.username_variable, "username variable")
    password_var = escaping.validate_variable_name(push.password_variable, "password variable")
    if username_var == password_var:
        raise UsageError("The username and password variables must differ.",
                         hint="Keep the defaults DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD.")
    reserved = (username_var, password_var)
    tags = tuple(dict.fromkeys(validate_tag(tag, reserved) for tag in push.tags))
    if not tags and push.tag_from is None:
        tags = (DEFAULT_TAG,)
    if not push.build:
        _refuse_unused_build_options(push.build_options)
    build = validate_build(push.build_options, source_url, reserved) if push.build else None
    return ValidatedPush(
        registry=registry, image=image, local_image=local_image, tags=tags, tag_from=push.tag_from,
        build=bool(push.build), runner=push.runner,
        username_variable=username_var, password_variable=password_var,
        default_variables=(username_var, password_var)
        == (DEFAULT_USERNAME_VARIABLE, DEFAULT_PASSWORD_VARIABLE),
        digest_file=DIGEST_FILE, build_options=build,
    )


def _validate_text(value: str, what: str) -> str:
    if not value:
        raise UsageError(f"The {what} is empty.")
    return escaping.refuse_control_characters(value, what)


def validate_scm(scm: ScmSpec) -> ScmSpec:
    """Check the git URL, branch spec and checkout credential of a job's source."""
    _check_url(scm.url, "SCM URL", "--scm-url")
    _validate_text(scm.branch, "SCM branch")
    if scm.credentials_id is not None:
        escaping.validate_credential_id(scm.credentials_id)
    return scm


def validate_agent(agent: str | None) -> str | None:
    """A label expression for the agent (`linux && docker`), or None for any agent."""
    return None if agent is None else _validate_text(agent, "agent label")


# ---------------------------------------------------------------------------------------------
# Renderers


def render_jenkinsfile(push: PushSpec, credentials_id: str, *, agent: str | None = None,
                       concurrent: bool = True, checkout: ScmSpec | None = None) -> str:
    """A declarative pipeline: checkout (*checkout* given), build, push, and removal of local tags.

    A Jenkinsfile committed to the repository gets its checkout from Jenkins ("Declarative:
    Checkout SCM"); an inline script in a job's XML needs *checkout*, whose URL is then also the
    default OCI source label.
    """
    if checkout is not None:
        validate_scm(checkout)
    context = {
        "push": validate_push(push, source_url=None if checkout is None else checkout.url),
        "credentials_id": escaping.validate_credential_id(credentials_id),
        "agent": validate_agent(agent), "concurrent": bool(concurrent), "checkout": checkout,
    }
    return _render("Jenkinsfile.j2", context)


def render_shell(push: PushSpec, *, scm: ScmSpec | None = None) -> str:
    """The freestyle "Execute shell" step equivalent to the pipeline (`#!/bin/sh -l`, set -eu).

    *scm* is the job's git source (checked out by the job itself): the default OCI source label.
    """
    source_url = None if scm is None else validate_scm(scm).url
    return _render("shell.sh.j2", {"push": validate_push(push, source_url=source_url)})


def job_description(spec: JobSpec) -> str:
    """The job description: the caller's text, then the line marking the job as ours."""
    if spec.push is not None:
        does = f"pushes {spec.push.image} to {spec.push.registry}"
    elif spec.scm is not None:
        does = f"runs {spec.script_path} from {public_url(spec.scm.url)}"
    else:
        does = "builds and pushes an image"
    marker = (f"{MANAGED_MARKER}: {does}. Change it with `jr jenkins job`; edits made in Jenkins "
              "are replaced.")
    return f"{spec.description}\n\n{marker}" if spec.description else marker


_FROM_REPOSITORY_ONLY = ("--scm-url, --scm-branch, --scm-credentials-id, --script-path, --name, "
                         "--folder and --description")


def _job_shape(spec: JobSpec) -> tuple[PushSpec, str] | None:
    """The push settings and credentials id of a job that pushes; None for a Jenkinsfile from the
    repository. Refuses a JobSpec whose parts would be ignored, or a build without a source."""
    if spec.job_type not in ("pipeline", "freestyle"):
        raise UsageError(f"Unknown job type {escaping.describe(str(spec.job_type))}.",
                         hint="Use --type pipeline or --type freestyle.")
    if spec.script_path is not None:
        if spec.job_type != "pipeline":
            raise UsageError("--script-path only applies to --type pipeline.",
                             hint="A freestyle job runs the rendered shell step; drop --script-path.")
        if spec.scm is None:
            raise UsageError("--script-path needs --scm-url.",
                             hint="Pass --scm-url with the git repository that holds the Jenkinsfile.")
        unused = [what for what, value in (
            ("the push settings", spec.push), ("the credentials id", spec.credentials_id),
            ("the agent", spec.agent)) if value is not None]
        if not spec.concurrent:
            unused.append("--no-concurrent")
        if unused:
            raise UsageError(
                "A job that runs the Jenkinsfile from the repository takes only "
                f"{_FROM_REPOSITORY_ONLY}; {', '.join(unused)} would be ignored.",
                hint="Put them in the Jenkinsfile: `jr render jenkinsfile … --output Jenkinsfile` "
                "writes one to commit.")
        return None
    if spec.push is None or spec.credentials_id is None:
        raise UsageError("A job that pushes needs the push settings and a credentials id.",
                         hint="Pass --registry, --repository and --credentials-id.")
    if spec.push.build and spec.scm is None:
        raise UsageError(
            "A job that builds the image needs a source to build from.",
            hint="Pass --scm-url URL (the git repository with the Dockerfile), or --no-build to "
            "push an image that is already on the agent.")
    return spec.push, spec.credentials_id


def render_job_xml(spec: JobSpec) -> str:
    """A job config.xml: an inline pipeline, a pipeline from the repository, or a freestyle job."""
    shape = _job_shape(spec)
    scm = None if spec.scm is None else validate_scm(spec.scm)
    context: dict[str, object] = {"description": job_description(spec), "scm": scm,
                                  "agent": validate_agent(spec.agent),
                                  "concurrent": bool(spec.concurrent)}
    if shape is None:
        context["script_path"] = _validate_text(str(spec.script_path), "script path")
        return _render("job-pipeline.xml.j2", context)
    push, credentials_id = shape
    context.update(push=validate_push(push, source_url=None if scm is None else scm.url),
                   credentials_id=escaping.validate_credential_id(credentials_id))
    if spec.job_type == "pipeline":
        context.update(script_path=None, jenkinsfile=render_jenkinsfile(
            push, credentials_id, agent=spec.agent, concurrent=spec.concurrent, checkout=scm))
        return _render("job-pipeline.xml.j2", context)
    context["shell"] = render_shell(push, scm=scm)
    return _render("job-freestyle.xml.j2", context)


def render_credential_xml(spec: CredentialSpec) -> str:
    """The UsernamePasswordCredentialsImpl XML; the only rendering that holds a secret.

    The result contains the password in clear text (Jenkins encrypts it on save): send it, never
    log or write it. `usernameSecret` is always explicit, because Jenkins treats a missing element
    as true and would then mask the username everywhere.
    """
    escaping.validate_credential_id(spec.credential_id)
    if spec.scope not in ("GLOBAL", "SYSTEM"):
        raise UsageError(f"Unknown credential scope {escaping.describe(str(spec.scope))}.",
                         hint="Use GLOBAL (visible to jobs) or SYSTEM.")
    _validate_text(spec.username, "username")
    password = spec.password.reveal()
    if not password:
        raise UsageError("The password is empty.", hint="Provide the registry password.")
    context = {"credential": spec, "password": password}
    return _render("credential.xml.j2", context, secrets=(password,))


DEFAULT_LIBRARY_VERSION = "main"


def render_casc(*, credentials_id: str, username: str, description: str | None = None,
                password_variable: str = DEFAULT_PASSWORD_VARIABLE,
                library_name: str | None = None, library_url: str | None = None,
                library_version: str = DEFAULT_LIBRARY_VERSION,
                library_credentials_id: str | None = None) -> str:
    """JCasC YAML for the registry credential and, with *library_name*, the shared library.

    The password is a `${VARIABLE}` reference JCasC resolves from the controller's secret sources,
    never a value; every other value is a literal (`${` in it is written `^${`).
    """
    library_options = (library_url, library_credentials_id,
                       None if library_version == DEFAULT_LIBRARY_VERSION else library_version)
    if library_name is None and any(value is not None for value in library_options):
        raise UsageError("--library-url, --library-version and --library-credentials-id need "
                         "--shared-library.", hint="Pass --shared-library NAME, or drop them.")
    library = None
    if library_name is not None:
        if library_url is None:
            raise UsageError("--shared-library needs --library-url.",
                             hint="Pass --library-url with the library's git repository.")
        library = {
            "name": _validate_text(library_name, "shared library name"),
            "version": _validate_text(library_version, "library version"),
            "url": _check_url(library_url, "library URL", "--library-url",
                              "--library-credentials-id"),
            "credentials_id": None if library_credentials_id is None
            else escaping.validate_credential_id(library_credentials_id),
        }
    variable = escaping.validate_variable_name(password_variable, "password variable")
    context = {
        "credentials_id": escaping.validate_credential_id(credentials_id),
        "username": _validate_text(username, "username"),
        "description": description,
        "password_reference": f"${{{variable}}}",
        "library": library,
    }
    return _render("casc.yaml.j2", context)
