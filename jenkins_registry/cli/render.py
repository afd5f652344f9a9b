"""`jr render`: write the Jenkinsfile, the freestyle shell step or a job's config.xml.

Rendering is local and reads no secret: the files name the credential variables
(DOCKER_LOGIN_USERNAME / DOCKER_LOGIN_PASSWORD) and the Jenkins credentials id, never a value.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jenkins_registry.cli.common import add_common_options
from jenkins_registry.errors import ExitCode, UsageError

if TYPE_CHECKING:
    from jenkins_registry.job_spec import PushSpec

log = logging.getLogger(__name__)

EPILOG = """\
tags:
  --tag is repeatable (default: latest). A tag may reference a shell variable the build sets,
  written ${NAME}: --tag '${BUILD_NUMBER}' (single quotes keep your own shell from expanding
  it). It is expanded by the shell on the agent at run time, never by Groovy.

environment:
  JR_REGISTRY   default for --registry

exit codes: 0 written; 2 invalid option or value (nothing is written); 1 unexpected error.
"""


def _add_push_options(parser: argparse.ArgumentParser, *, build: bool = True) -> None:
    parser.add_argument("--registry", metavar="HOST[:PORT]",
                        help="the registry (default: $JR_REGISTRY), e.g. 10.211.55.6:8082")
    parser.add_argument("--image", metavar="NAME", required=True,
                        help="repository path of the image, without registry or tag, e.g. jenkins-test")
    parser.add_argument("--tag", metavar="TAG", action="append", default=[],
                        help="tag to push; repeatable (default: latest); ${NAME} expands at run time")
    if build:
        parser.add_argument("--build", action=argparse.BooleanOptionalAction, default=True,
                            help="run `docker build -t IMAGE .` first (default: yes)")
    parser.add_argument("--runner", choices=("jr", "docker"), default="jr",
                        help="push with jr-push (default) or the plain docker CLI, for agents "
                        "without jenkins-registry")
    parser.add_argument("--output", "-o", metavar="FILE", type=Path,
                        help="write to FILE (atomically) instead of standard output")


def _subparser(subparsers: Any, name: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=help_text, description=help_text, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser)
    return parser


def register(subparsers: Any) -> None:
    """Add `jr render jenkinsfile|shell|job`."""
    render = subparsers.add_parser(
        "render", help="render a Jenkinsfile, a freestyle shell step or a job config.xml",
        description="Render the Jenkins side of a push from templates, with every value escaped.",
    )
    add_common_options(render)
    render.set_defaults(handler=_handle_missing_what)
    commands = render.add_subparsers(title="what to render", metavar="WHAT")

    jenkinsfile = _subparser(commands, "jenkinsfile", "a declarative pipeline that builds and pushes")
    _add_push_options(jenkinsfile)
    jenkinsfile.add_argument("--credentials-id", metavar="ID", required=True,
                             help="id of the Jenkins 'Username with password' credential")
    jenkinsfile.set_defaults(handler=handle_jenkinsfile)

    shell = _subparser(commands, "shell", "the freestyle 'Execute shell' step (#!/bin/sh -l)")
    _add_push_options(shell)
    shell.set_defaults(handler=handle_shell)

    job = _subparser(commands, "job", "a job config.xml (pipeline or freestyle)")
    job.add_argument("--type", dest="job_type", choices=("pipeline", "freestyle"), required=True,
                     help="pipeline (inline Jenkinsfile, or from git with --scm-url) or freestyle")
    _add_push_options(job)
    job.add_argument("--credentials-id", metavar="ID", required=True,
                     help="id of the Jenkins 'Username with password' credential")
    job.add_argument("--description", metavar="TEXT", default="",
                     help="job description (a 'Managed by jenkins-registry' line is added)")
    scm = job.add_argument_group("Jenkinsfile from git (pipeline only)")
    scm.add_argument("--scm-url", metavar="URL", help="git repository holding the Jenkinsfile")
    scm.add_argument("--scm-branch", metavar="BRANCH", help="branch spec (default: */main)")
    scm.add_argument("--script-path", metavar="PATH", help="Jenkinsfile path (default: Jenkinsfile)")
    scm.add_argument("--scm-credentials-id", metavar="ID",
                     help="Jenkins credential for the git checkout")
    job.set_defaults(handler=handle_job)


def _handle_missing_what(args: argparse.Namespace) -> int:
    raise UsageError("Say what to render.", hint="Use `jr render jenkinsfile|shell|job --help`.")


def _push_spec(args: argparse.Namespace) -> PushSpec:
    from jenkins_registry.job_spec import PushSpec

    registry = args.registry or args.environ.get("JR_REGISTRY")
    if not registry:
        raise UsageError(
            "No registry given.",
            hint="Pass --registry HOST[:PORT] (e.g. 10.211.55.6:8082) or set JR_REGISTRY.",
        )
    return PushSpec(registry=registry, image=args.image, tags=tuple(args.tag),
                    build=getattr(args, "build", True), runner=args.runner)


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

    return _emit(args, render_jenkinsfile(_push_spec(args), args.credentials_id))


def handle_shell(args: argparse.Namespace) -> int:
    from jenkins_registry.render import render_shell

    return _emit(args, render_shell(_push_spec(args)))


def handle_job(args: argparse.Namespace) -> int:
    from jenkins_registry.job_spec import JobSpec, ScmSpec
    from jenkins_registry.render import render_job_xml

    scm = None
    scm_options = (args.scm_branch, args.script_path, args.scm_credentials_id)
    if args.scm_url is not None:
        defaults = ScmSpec(url=args.scm_url)
        scm = ScmSpec(
            url=args.scm_url,
            branch=args.scm_branch if args.scm_branch is not None else defaults.branch,
            script_path=args.script_path if args.script_path is not None else defaults.script_path,
            credentials_id=args.scm_credentials_id,
        )
    elif any(option is not None for option in scm_options):
        raise UsageError("--scm-branch, --script-path and --scm-credentials-id need --scm-url.",
                         hint="Add --scm-url URL, or drop the other SCM options.")
    spec = JobSpec(job_type=args.job_type, push=_push_spec(args), credentials_id=args.credentials_id,
                   description=args.description, scm=scm)
    return _emit(args, render_job_xml(spec))
