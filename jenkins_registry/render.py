"""Rendering: the Jenkinsfile, the freestyle shell step, job config.xml and credential XML.

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
from jenkins_registry.job_spec import MANAGED_MARKER, CredentialSpec, JobSpec, PushSpec, ScmSpec

if TYPE_CHECKING:
    import jinja2

__all__ = [
    "render_credential_xml", "render_jenkinsfile", "render_job_xml", "render_shell",
    "validate_credential_id", "validate_jenkins_name", "validate_push",
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
        sh_var=escaping.shell_variable,
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
    """reference.py's hints name jr-push's --name; here the repository path is --image."""
    return InvalidReferenceError(exc.message, hint=exc.hint.replace("--name", "--image"))


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
                hint="Give the repository path with --image (e.g. jenkins-test) and each tag "
                "with --tag.",
            ) from None
        raise _with_image_hint(exc) from None


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


@dataclass(frozen=True, kw_only=True)
class ValidatedPush:
    """A validated PushSpec as the templates see it (tags defaulted and de-duplicated)."""

    registry: str
    image: str
    tags: tuple[str, ...]
    build: bool
    runner: str
    username_variable: str
    password_variable: str
    default_variables: bool
    digest_file: str


def validate_push(push: PushSpec) -> ValidatedPush:
    """Check every field of *push*; raise UnsafeValueError / InvalidReferenceError / UsageError."""
    registry = validate_registry(push.registry)
    image = validate_image(push.image)
    if push.runner not in ("jr", "docker"):
        raise UsageError(f"Unknown runner {escaping.describe(push.runner)}.",
                         hint="Use --runner jr (default) or --runner docker.")
    username_var = escaping.validate_variable_name(push.username_variable, "username variable")
    password_var = escaping.validate_variable_name(push.password_variable, "password variable")
    if username_var == password_var:
        raise UsageError("The username and password variables must differ.",
                         hint="Keep the defaults DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD.")
    reserved = (username_var, password_var)
    tags = tuple(dict.fromkeys(validate_tag(tag, reserved) for tag in push.tags)) or (DEFAULT_TAG,)
    return ValidatedPush(
        registry=registry, image=image, tags=tags, build=bool(push.build), runner=push.runner,
        username_variable=username_var, password_variable=password_var,
        default_variables=(username_var, password_var)
        == (DEFAULT_USERNAME_VARIABLE, DEFAULT_PASSWORD_VARIABLE),
        digest_file=DIGEST_FILE,
    )


def _validate_text(value: str, what: str) -> str:
    if not value:
        raise UsageError(f"The {what} is empty.")
    return escaping.refuse_control_characters(value, what)


def validate_scm(scm: ScmSpec) -> ScmSpec:
    """Check the git URL, branch and script path of a Jenkinsfile taken from SCM."""
    if not scm.url:
        raise UsageError("The SCM URL is empty.", hint="Pass --scm-url with the git repository URL.")
    if any(escaping.is_control(ch) for ch in scm.url):  # not echoed: the URL may hold a password
        raise UnsafeValueError("The SCM URL contains a control character.")
    try:
        has_password = "://" in scm.url and urlsplit(scm.url).password is not None
    except ValueError:
        has_password = False
    if has_password:
        raise UnsafeValueError(
            "The SCM URL contains a password; it would be stored in the job's config.xml.",
            hint="Remove the user:password part and store the git login as a Jenkins credential "
            "(--scm-credentials-id).",
        )
    _validate_text(scm.branch, "SCM branch")
    _validate_text(scm.script_path, "script path")
    if scm.credentials_id is not None:
        escaping.validate_credential_id(scm.credentials_id)
    return scm


# ---------------------------------------------------------------------------------------------
# Renderers


def render_jenkinsfile(push: PushSpec, credentials_id: str) -> str:
    """A declarative pipeline: an optional build stage and a push stage under withCredentials."""
    context = {"push": validate_push(push),
               "credentials_id": escaping.validate_credential_id(credentials_id)}
    return _render("Jenkinsfile.j2", context)


def render_shell(push: PushSpec) -> str:
    """The freestyle "Execute shell" step equivalent to the pipeline (`#!/bin/sh -l`, set -eu)."""
    return _render("shell.sh.j2", {"push": validate_push(push)})


def job_description(spec: JobSpec) -> str:
    """The job description: the caller's text, then the line marking the job as ours."""
    marker = (f"{MANAGED_MARKER}: pushes {spec.push.image} to {spec.push.registry}. Change it with "
              "`jr jenkins job`; edits made in Jenkins are replaced.")
    return f"{spec.description}\n\n{marker}" if spec.description else marker


def render_job_xml(spec: JobSpec) -> str:
    """A job config.xml: a pipeline (inline or from SCM) or a freestyle job with the binding."""
    escaping.validate_credential_id(spec.credentials_id)
    push = validate_push(spec.push)
    context: dict[str, object] = {"description": job_description(spec), "push": push,
                                  "credentials_id": spec.credentials_id}
    if spec.job_type == "pipeline":
        if spec.scm is not None:
            context.update(scm=validate_scm(spec.scm), jenkinsfile=None)
        else:
            context.update(scm=None, jenkinsfile=render_jenkinsfile(spec.push, spec.credentials_id))
        return _render("job-pipeline.xml.j2", context)
    if spec.job_type == "freestyle":
        if spec.scm is not None:
            raise UsageError("A Jenkinsfile from SCM only applies to pipeline jobs.",
                             hint="Use --type pipeline with --scm-url, or drop the SCM options.")
        context["shell"] = render_shell(spec.push)
        return _render("job-freestyle.xml.j2", context)
    raise UsageError(f"Unknown job type {escaping.describe(str(spec.job_type))}.",
                     hint="Use --type pipeline or --type freestyle.")


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
