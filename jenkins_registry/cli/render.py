"""`jr render`: write the Jenkinsfile, the freestyle shell step, a job's config.xml, JCasC YAML or
the shared library.

Rendering is local and reads no secret: the files name the credential variables
(DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD) and the Jenkins credentials id, never a value.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from jenkins_registry.cli.common import add_common_options, registry_default
from jenkins_registry.cli.help_text import HelpFormatter, epilog
from jenkins_registry.cli.job_options import (
    TAGS_HELP,
    add_agent_options,
    add_build_options,
    add_job_options,
    add_push_options,
    jenkinsfile_spec,
    job_spec,
    push_spec,
)
from jenkins_registry.errors import ExitCode, UsageError
from jenkins_registry.render import DEFAULT_LIBRARY_VERSION, DEFAULT_PASSWORD_VARIABLE

log = logging.getLogger(__name__)

EPILOG = f"""\
{TAGS_HELP}
the build:
  Each build tags a local name of its own, IMAGE:jr-build-<BUILD_TAG>, so builds running at once
  never push each other's image, and removes it when it ends. `jr render job`: a job that builds
  needs --scm-url (it checks the repository out), or --no-build to push an image already on the
  agent; --script-path runs the repository's own Jenkinsfile instead (from `jr render jenkinsfile`).
  The OCI labels need a source URL: --scm-url, or --oci-source for jenkinsfile and shell.
"""


def _subparser(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, epilog=epilog(f"jr render {name}", EPILOG),
        formatter_class=HelpFormatter,
    )
    add_common_options(parser)
    return parser


def _add_output_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", metavar="FILE", type=Path,
                        help="write to FILE (atomically) instead of standard output")


def register(subparsers: Any) -> None:
    """Add `jr render jenkinsfile|shell|job|casc|shared-library`."""
    render = subparsers.add_parser(
        "render", help="render a Jenkinsfile, a freestyle shell step, a job config.xml, JCasC YAML or "
        "a shared library",
        description="Render the Jenkins side of a push from templates, with every value escaped.",
        epilog=epilog("jr render"), formatter_class=HelpFormatter,
    )
    add_common_options(render)
    render.set_defaults(handler=_handle_missing_what)
    commands = render.add_subparsers(title="what to render", metavar="WHAT")

    jenkinsfile = _subparser(commands, "jenkinsfile",
                             "a declarative pipeline to commit: build, push, remove the local tags")
    add_push_options(jenkinsfile)
    jenkinsfile.add_argument("--credentials-id", metavar="ID", required=True,
                             help="id of the Jenkins 'Username with password' credential")
    _add_output_option(jenkinsfile)
    add_build_options(jenkinsfile)
    add_agent_options(jenkinsfile)
    jenkinsfile.add_argument("--shared-library", metavar="NAME[@VERSION]",
                             help="call the registryPush step of this shared library (`jr render "
                             "shared-library`) instead of inline sh steps")
    jenkinsfile.set_defaults(handler=handle_jenkinsfile)

    shell = _subparser(commands, "shell", "the freestyle 'Execute shell' step (#!/bin/sh -l)")
    add_push_options(shell)
    _add_output_option(shell)
    add_build_options(shell)
    shell.set_defaults(handler=handle_shell)

    job = _subparser(commands, "job", "a job config.xml (pipeline or freestyle)")
    add_job_options(job)
    _add_output_option(job)
    job.set_defaults(handler=handle_job)

    casc = commands.add_parser(
        "casc", help="JCasC YAML for the registry credential (and a shared library)",
        description="JCasC YAML for the registry credential; the password is a ${VARIABLE} that "
        "JCasC resolves on the controller, never a value.",
        epilog=epilog("jr render casc"), formatter_class=HelpFormatter)
    add_common_options(casc)
    casc.add_argument("--credentials-id", metavar="ID", required=True,
                      help="id of the 'Username with password' credential")
    casc.add_argument("--username", metavar="USER", required=True, help="the registry account")
    casc.add_argument("--description", metavar="TEXT", help="the credential's description")
    casc.add_argument("--password-variable", metavar="NAME", default=DEFAULT_PASSWORD_VARIABLE,
                      help="controller variable or secret holding the password "
                      "(default: %(default)s)")
    casc.add_argument("--shared-library", metavar="NAME", help="also declare this global library")
    casc.add_argument("--library-url", metavar="URL", help="the library's git repository")
    casc.add_argument("--library-version", metavar="REF", default=DEFAULT_LIBRARY_VERSION,
                      help="default branch or tag of the library (default: %(default)s)")
    casc.add_argument("--library-credentials-id", metavar="ID",
                      help="Jenkins credential to read the library repository")
    _add_output_option(casc)
    casc.set_defaults(handler=handle_casc)

    library = commands.add_parser(
        "shared-library", help="a Jenkins shared library with the registryPush step",
        description="Write a shared library (vars/registryPush.groovy, its .txt help, a README) "
        "into DIR: commit DIR as a git repository and declare it as a global library "
        "(`jr render casc --shared-library`).",
        epilog=epilog("jr render shared-library", "Files that exist with other content are refused "
                      "(exit 11) unless --force; nothing is written then.\n"),
        formatter_class=HelpFormatter)
    add_common_options(library)
    library.add_argument("--output", "-o", metavar="DIR", type=Path, required=True,
                         help="the library's root directory (created when missing)")
    library.add_argument("--registry", metavar="HOST[:PORT]",
                         help="default registry of registryPush (default: $JR_REGISTRY, else none: "
                         "each call gives it)")
    library.add_argument("--credentials-id", metavar="ID",
                         help="default 'Username with password' credential (default: none, each "
                         "call gives it)")
    library.add_argument("--runner", choices=("jr", "docker"), default="jr",
                         help="default runner: jr-push (jr) or the docker CLI (default: %(default)s)")
    library.add_argument("--force", action="store_true",
                         help="replace library files that exist with other content")
    library.set_defaults(handler=handle_shared_library)


def _handle_missing_what(args: argparse.Namespace) -> int:
    raise UsageError("Say what to render.",
                     hint="Use `jr render jenkinsfile|shell|job|casc|shared-library --help`.")


def _emit(args: argparse.Namespace, text: str) -> int:
    """Write the fully rendered *text*: to --output atomically, else to standard output."""
    if args.output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
        return ExitCode.OK
    from jenkins_registry.atomic_file import write_atomic

    try:
        write_atomic(args.output, text)
    except OSError as exc:
        raise UsageError(
            f"Cannot write {args.output}: {exc.strerror or type(exc).__name__}.",
            hint="Choose a path in a directory you can write to.",
        ) from exc
    log.info("wrote %s", args.output)
    return ExitCode.OK


def handle_jenkinsfile(args: argparse.Namespace) -> int:
    from jenkins_registry.render import render_jenkinsfile

    spec = jenkinsfile_spec(args)
    assert spec.push is not None and spec.credentials_id is not None  # built so by jenkinsfile_spec
    if args.shared_library is not None:
        from jenkins_registry.render_library import render_library_jenkinsfile

        return _emit(args, render_library_jenkinsfile(
            spec.push, spec.credentials_id, args.shared_library, agent=spec.agent,
            concurrent=spec.concurrent))
    return _emit(args, render_jenkinsfile(spec.push, spec.credentials_id, agent=spec.agent,
                                          concurrent=spec.concurrent))


def handle_shell(args: argparse.Namespace) -> int:
    from jenkins_registry.render import render_shell

    return _emit(args, render_shell(push_spec(args)))


def handle_job(args: argparse.Namespace) -> int:
    from jenkins_registry.render import render_job_xml

    return _emit(args, render_job_xml(job_spec(args)))


def handle_casc(args: argparse.Namespace) -> int:
    from jenkins_registry.render import render_casc

    return _emit(args, render_casc(
        credentials_id=args.credentials_id, username=args.username, description=args.description,
        password_variable=args.password_variable, library_name=args.shared_library,
        library_url=args.library_url, library_version=args.library_version,
        library_credentials_id=args.library_credentials_id))


def handle_shared_library(args: argparse.Namespace) -> int:
    from jenkins_registry.render_library import (
        LibraryDefaults,
        render_shared_library,
        write_library,
    )

    files = render_shared_library(LibraryDefaults(
        registry=registry_default(args), credentials_id=args.credentials_id, runner=args.runner))
    result = write_library(files, args.output, force=args.force)
    if not result.written:
        log.info("%s already holds this library; nothing changed", args.output)
    return ExitCode.OK
