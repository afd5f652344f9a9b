"""The Jenkins shared library (`vars/registryPush.groovy`) and a Jenkinsfile that uses it.

The library's step checks its arguments itself at run time, in Groovy, because a Jenkinsfile
passes it values this tool never sees; what is rendered here are only its defaults (registry,
credentials id, runner), validated and escaped like every other rendered value. Writing the library
checks every file first and then writes each atomically, so a refused run leaves nothing half done.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jenkins_registry import escaping, render
from jenkins_registry.errors import ConflictError, TemplateError, UsageError
from jenkins_registry.job_spec import BuildOptions, PushSpec, Runner

__all__ = [
    "LIBRARY_FILES", "LibraryDefaults", "WriteResult", "render_library_jenkinsfile",
    "render_shared_library", "write_library",
]

log = logging.getLogger(__name__)

# Library file → template (under the package jenkins_registry.templates).
LIBRARY_FILES: Mapping[str, str] = {
    "vars/registryPush.groovy": "library/vars/registryPush.groovy.j2",
    "vars/registryPush.txt": "library/vars/registryPush.txt",
    "README.md": "library/README.md.j2",
}


@dataclass(frozen=True, kw_only=True)
class LibraryDefaults:
    """What `registryPush` uses when a call leaves the argument out (None: the call must give it)."""

    registry: str | None = None
    credentials_id: str | None = None
    runner: Runner = "jr"


def _render(name: str, context: Mapping[str, object]) -> str:
    import jinja2

    try:
        return render.environment().get_template(name).render(**context)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"Template {name} failed: {exc}") from exc


def _static(name: str) -> str:
    """A shipped file used as it is (the help text has nothing to render)."""
    import importlib.resources

    try:
        return importlib.resources.files(render.TEMPLATE_PACKAGE).joinpath(name).read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"The shipped file {name} cannot be read: {exc}") from exc


def render_shared_library(defaults: LibraryDefaults) -> dict[str, str]:
    """The library's files by path relative to its root: `vars/registryPush.groovy`, its `.txt`
    help and a README. Raises UsageError subclasses (exit 2) for a default that cannot be used."""
    if defaults.runner not in ("jr", "docker"):
        raise UsageError(f"Unknown runner {escaping.describe(str(defaults.runner))}.",
                         hint="Use --runner jr (default) or --runner docker.")
    context = {
        "registry": None if defaults.registry is None else render.validate_registry(defaults.registry),
        "credentials_id": None if defaults.credentials_id is None
        else escaping.validate_credential_id(defaults.credentials_id),
        "runner": defaults.runner,
    }
    files = {}
    for path, template in LIBRARY_FILES.items():
        files[path] = _render(template, context) if template.endswith(".j2") else _static(template)
    return files


@dataclass(frozen=True, kw_only=True)
class WriteResult:
    """What `write_library` did: files written, and files already holding the same text."""

    written: tuple[Path, ...]
    unchanged: tuple[Path, ...]


def _current(path: Path) -> str | None:
    """The text at *path*, None when there is no file; UsageError when it cannot be a library file."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        return ""  # differs from any rendered text
    except OSError as exc:
        raise UsageError(f"Cannot read {path}: {exc.strerror or type(exc).__name__}.",
                         hint="Choose an output directory you can write to.") from exc


def write_library(files: Mapping[str, str], output: Path, *, force: bool = False) -> WriteResult:
    """Write *files* below *output*, each atomically.

    Every file is checked before any is written: an existing file with other content is refused
    (ConflictError, exit 11) unless *force*; a file that already holds the same text is left alone.
    """
    from jenkins_registry.atomic_file import write_atomic

    if output.exists() and not output.is_dir():
        raise UsageError(f"{output} exists and is not a directory.",
                         hint="Give --output a directory (it is created when missing).")
    plan: list[tuple[Path, str]] = []
    unchanged: list[Path] = []
    conflicts: list[str] = []
    for relative, text in files.items():
        target = output / relative
        if target.is_dir():
            raise UsageError(f"{target} is a directory, where the library has a file.",
                             hint="Choose another --output directory.")
        current = _current(target)
        if current == text:
            unchanged.append(target)
            continue
        if current is not None and not force:
            conflicts.append(relative)
        plan.append((target, text))
    if conflicts:
        raise ConflictError(
            f"{output} already holds {', '.join(conflicts)} with other content; nothing was written.",
            hint="Pass --force to replace them (commit or compare them first), or choose another "
            "--output directory.")
    for target, text in plan:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(target, text)
        except OSError as exc:
            raise UsageError(f"Cannot write {target}: {exc.strerror or type(exc).__name__}.",
                             hint="Choose an output directory you can write to.") from exc
        log.info("wrote %s", target)
    return WriteResult(written=tuple(target for target, _ in plan), unchanged=tuple(unchanged))


# ---------------------------------------------------------------------------------------------
# The Jenkinsfile that calls registryPush


def _uppercase_name(name: str) -> bool:
    return name.isascii() and name.upper() == name


def _groovy_expression(template: str) -> str:
    """A tag or build-argument value as a Groovy expression: literal parts as single-quoted
    strings, each `${NAME}` as `env.NAME`. The value is passed to registryPush, never into a
    script; an unset variable fails the build in Groovy, as `set -u` does in the rendered steps."""
    names = escaping.shell_references(template)
    if not names:
        return escaping.groovy_string(template)

    def variable(name: str) -> str:
        # env.NAME for the usual upper-case names (never a Groovy keyword or property); else env['…'].
        return f"env.{name}" if _uppercase_name(name) else f"env[{escaping.groovy_string(name)}]"

    if escaping.SHELL_REFERENCE.fullmatch(template):
        return variable(names[0])
    parts: list[str] = []
    position = 0
    for match in escaping.SHELL_REFERENCE.finditer(template):
        if match.start() > position:
            parts.append(escaping.groovy_string(template[position:match.start()]))
        name = match.group(1)
        unset = escaping.groovy_string(f"{name} is not set")
        parts.append(f"({variable(name)} ?: error({unset}))")
        position = match.end()
    if position < len(template):
        parts.append(escaping.groovy_string(template[position:]))
    return " + ".join(parts)


_ARGUMENT_INDENT = 24  # where registryPush's arguments start in the template
_LINE_MAX = 120


def _groovy_list(items: list[str], key: str) -> str:
    """A Groovy list (or map) literal of *items*: on the argument's line when it fits, else one
    item a line."""
    one_line = f"[{', '.join(items)}]"
    if _ARGUMENT_INDENT + len(key) + 2 + len(one_line) + 1 <= _LINE_MAX or len(items) < 2:
        return one_line
    inner = " " * (_ARGUMENT_INDENT + 4)
    return "[\n" + ",\n".join(inner + item for item in items) + "\n" + " " * _ARGUMENT_INDENT + "]"


_NOT_IN_LIBRARY = {"labels": "--label", "pull": "--pull", "oci_source": "--oci-source"}


def render_library_jenkinsfile(push: PushSpec, credentials_id: str, library: str, *,
                               agent: str | None = None, concurrent: bool = True) -> str:
    """A declarative Jenkinsfile: `@Library('LIBRARY') _` and one stage calling registryPush.

    *library* is the name the library is declared under, optionally `NAME@VERSION`. Options the
    step does not take (--no-build, --label, --pull, --oci-source, a local --image) are refused,
    not dropped; --tag-from git becomes `tagFrom: 'git'` (runner jr, as the step requires).
    """
    if not library or library != library.strip():
        raise UsageError("The shared library name is empty or has surrounding white space.",
                         hint="Pass --shared-library with the name the library is declared under.")
    escaping.refuse_control_characters(library, "shared library name")
    if not push.build:
        raise UsageError("--shared-library always builds: registryPush has no --no-build.",
                         hint="Drop --no-build, or render the Jenkinsfile without --shared-library.")
    defaults = BuildOptions()
    unused = [option for field, option in _NOT_IN_LIBRARY.items()
              if getattr(push.build_options, field) != getattr(defaults, field)]
    # The step tags its build REPOSITORY:jr-build-…; another local name is not among its arguments.
    if push.local_image is not None and push.local_image != push.image:
        unused.append("--image (a local name other than --repository)")
    if push.tag_from is not None and push.runner != "jr":
        raise UsageError("--tag-from git needs --runner jr: registryPush passes it to jr-push.",
                         hint="Drop --runner docker, or give the tags with --tag.")
    if unused:
        raise UsageError(f"registryPush does not take {', '.join(unused)}.",
                         hint="Drop them, or render the Jenkinsfile without --shared-library.")
    checked = render.validate_push(push)
    build = checked.build_options
    assert build is not None  # validate_push keeps the build options of a push that builds
    context = {
        "library": library, "push": checked,
        "credentials_id": escaping.validate_credential_id(credentials_id),
        "tags": _groovy_list([_groovy_expression(tag) for tag in checked.tags], "tags"),
        "dockerfile": build.dockerfile, "context": build.context,
        "build_args": _groovy_list([f"{escaping.groovy_string(name)}: {_groovy_expression(value)}"
                                    for name, value in build.build_args], "buildArgs")
        if build.build_args else None,
        "agent": render.validate_agent(agent), "concurrent": bool(concurrent),
        "tag_from": push.tag_from,
    }
    return _render("library/Jenkinsfile.j2", context)
