"""The options that say what a job builds and pushes, shared by `jr render` and `jr jenkins job`,
and the one factory that turns them into a PushSpec / JobSpec.

Every option defaults to None ("not given"), so the factory can tell a value the user chose from
a default, and refuse an option the chosen kind of job would ignore instead of dropping it.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from typing import TYPE_CHECKING

from jenkins_registry.cli.common import registry_from
from jenkins_registry.errors import UsageError

if TYPE_CHECKING:
    from jenkins_registry.job_spec import BuildOptions, JobSpec, PushSpec

TAGS_HELP = """\
values that expand at run time:
  --tag, and the values of --build-arg and --label, may reference a shell variable the build
  sets, written ${NAME}: --tag '${BUILD_NUMBER}' (single quotes keep your own shell from
  expanding it). The shell on the agent expands it, never Groovy; an unset variable stops the
  step (set -u). The credential variables cannot be referenced.
"""

# dest → option, for the options a job that runs the repository's Jenkinsfile refuses.
_PUSH_AND_BUILD_OPTIONS = {
    "registry": "--registry", "repository": "--repository", "image": "--image", "tag": "--tag",
    "tag_from": "--tag-from", "credentials_id": "--credentials-id",
    "runner": "--runner", "build": "--build/--no-build", "dockerfile": "--dockerfile",
    "context": "--context", "build_arg": "--build-arg", "label": "--label", "pull": "--pull",
    "oci_labels": "--oci-labels/--no-oci-labels", "oci_source": "--oci-source", "agent": "--agent",
    "concurrent": "--concurrent/--no-concurrent",
}


# The release in which a lone --image stops meaning the repository path.
IMAGE_AS_REPOSITORY_UNTIL = "0.3"


def add_push_options(parser: argparse.ArgumentParser) -> None:
    """--registry, --repository, --image, --tag, --tag-from, --build/--no-build, --runner."""
    parser.add_argument("--registry", metavar="HOST[:PORT]",
                        help="the registry (default: $JR_REGISTRY), e.g. 10.211.55.6:8082")
    parser.add_argument("--repository", metavar="REPO/PATH",
                        help="the path in the registry, without registry or tag, e.g. jenkins-test "
                        "or team/app")
    parser.add_argument("--image", metavar="NAME",
                        help="the local image: the name the build tags (NAME:jr-build-<BUILD_TAG>) "
                        "or, with --no-build, the image pushed as it is on the agent (NAME[:TAG] "
                        "or an image ID) (default: REPO/PATH). Without --repository, --image is "
                        f"still the path in the registry, deprecated until {IMAGE_AS_REPOSITORY_UNTIL}")
    parser.add_argument("--tag", metavar="TAG", action="append",
                        help="tag to push; repeatable (default: latest, or none with --tag-from); "
                        "${NAME} expands at run time")
    parser.add_argument("--tag-from", choices=("git",),
                        help="git: jr-push adds the tags it derives on the agent from git "
                        "(GIT_BRANCH or BRANCH_NAME, GIT_COMMIT, TAG_NAME); --runner jr only")
    parser.add_argument("--build", action=argparse.BooleanOptionalAction,
                        help="run `docker build` first, tagging a local name of the build's own "
                        "(default: yes); --no-build pushes --image as it is on the agent")
    parser.add_argument("--runner", choices=("jr", "docker"),
                        help="push with jr-push (default) or the plain docker CLI, for agents "
                        "without jenkins-registry")


def add_build_options(parser: argparse.ArgumentParser) -> None:
    """The `docker build` options."""
    group = parser.add_argument_group("build (docker build)")
    group.add_argument("--dockerfile", metavar="PATH",
                       help="the Dockerfile, relative to the workspace (default: CONTEXT/Dockerfile)")
    group.add_argument("--context", metavar="DIR", help="the build context (default: .)")
    group.add_argument("--build-arg", metavar="NAME=VALUE", action="append",
                       help="a build argument; repeatable; ${NAME} in VALUE expands at run time")
    group.add_argument("--label", metavar="KEY=VALUE", action="append",
                       help="an image label; repeatable; ${NAME} in VALUE expands at run time")
    group.add_argument("--pull", action=argparse.BooleanOptionalAction,
                       help="always pull newer base images (default: no)")
    group.add_argument("--oci-labels", action=argparse.BooleanOptionalAction,
                       help="label the image with org.opencontainers.image.revision (the commit, "
                       "${GIT_COMMIT}) and .source (the repository URL) when the build has a "
                       "source: --scm-url or --oci-source (default: yes)")
    group.add_argument("--oci-source", metavar="URL",
                       help="repository URL for the org.opencontainers.image.source label "
                       "(default: --scm-url without its user part)")


def add_agent_options(parser: argparse.ArgumentParser) -> None:
    """Where and how often a pipeline or job runs: --agent, --concurrent/--no-concurrent."""
    group = parser.add_argument_group("agent")
    group.add_argument("--agent", metavar="LABEL",
                       help="run on agents matching this label expression (default: any agent)")
    group.add_argument("--concurrent", action=argparse.BooleanOptionalAction,
                       help="allow builds of the job to run at the same time (default: yes; each "
                       "build tags and pushes its own local image)")


def add_source_options(parser: argparse.ArgumentParser) -> None:
    """The git source of a job, and the mode that runs the repository's own Jenkinsfile."""
    group = parser.add_argument_group("source (git)")
    group.add_argument("--scm-url", metavar="URL",
                       help="git repository the job checks out and builds (no password in it)")
    group.add_argument("--scm-branch", metavar="SPEC", help="branch spec (default: */main)")
    group.add_argument("--scm-credentials-id", metavar="ID",
                       help="Jenkins credential for the git checkout")
    group.add_argument("--script-path", metavar="PATH",
                       help="pipeline only: run the Jenkinsfile at PATH in the repository instead "
                       "of rendering one (then the push and build options belong in that file)")


def add_job_options(parser: argparse.ArgumentParser) -> None:
    """Everything `jr render job` and `jr jenkins job` share."""
    parser.add_argument("--type", dest="job_type", choices=("pipeline", "freestyle"), required=True,
                        help="pipeline (declarative, inline, or the repository's Jenkinsfile with "
                        "--script-path) or freestyle (a shell step)")
    add_push_options(parser)
    parser.add_argument("--credentials-id", metavar="ID",
                        help="id of the Jenkins 'Username with password' credential (required "
                        "unless --script-path)")
    parser.add_argument("--description", metavar="TEXT", default="",
                        help="job description (a 'Managed by jenkins-registry' line is added)")
    add_source_options(parser)
    add_build_options(parser)
    add_agent_options(parser)


# ---------------------------------------------------------------------------------------------
# The factory


def _pairs(values: list[str] | None, option: str, shape: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for value in values or ():
        name, equals, rest = value.partition("=")
        if not equals:
            raise UsageError(f"{option} {value!r} has no '='.",
                             hint=f"Write {option} {shape}, e.g. {option} VERSION='${{BUILD_NUMBER}}'.")
        pairs.append((name, rest))
    return tuple(pairs)


def _build_options(args: argparse.Namespace) -> BuildOptions:
    from jenkins_registry.job_spec import BuildOptions

    defaults = BuildOptions()
    return BuildOptions(
        dockerfile=args.dockerfile,
        context=args.context if args.context is not None else defaults.context,
        build_args=_pairs(args.build_arg, "--build-arg", "NAME=VALUE"),
        labels=_pairs(args.label, "--label", "KEY=VALUE"),
        pull=bool(args.pull),
        oci_labels=args.oci_labels if args.oci_labels is not None else defaults.oci_labels,
        oci_source=args.oci_source,
    )


def _printable(value: str) -> bool:
    return value.isprintable() and value.strip() == value and value != ""


def repository_and_image(args: argparse.Namespace) -> tuple[str, str | None]:
    """The repository path and the local image (None: the same) from --repository and --image.

    A lone --image keeps its old meaning, the repository path, for one more release, and says so.
    """
    repository: str | None = args.repository
    image: str | None = args.image
    if repository is not None:
        return repository, image
    if image is None:
        raise UsageError("No repository given.",
                         hint="Pass --repository with the path in the registry, e.g. --repository "
                         "jenkins-test (and --image NAME when the local image is named otherwise).")
    shown = shlex.quote(image) if _printable(image) else "REPO/PATH"
    sys.stderr.write(
        f"jr: warning: --image now names the local image; use --repository {shown} for the path "
        f"in the registry. The old meaning stays until {IMAGE_AS_REPOSITORY_UNTIL}.\n")
    return image, None


def push_spec(args: argparse.Namespace) -> PushSpec:
    """The PushSpec of `jr render jenkinsfile|shell|job` and `jr jenkins job`."""
    from jenkins_registry.job_spec import PushSpec

    registry = registry_from(args)
    repository, image = repository_and_image(args)
    defaults = PushSpec(registry=registry, image=repository)
    return PushSpec(
        registry=registry, image=repository, local_image=image, tags=tuple(args.tag or ()),
        tag_from=args.tag_from, build=args.build if args.build is not None else defaults.build,
        runner=args.runner or defaults.runner, build_options=_build_options(args),
    )


def jenkinsfile_spec(args: argparse.Namespace) -> JobSpec:
    """`jr render jenkinsfile`: a pipeline without a source of its own (Jenkins checks it out)."""
    from jenkins_registry.job_spec import JobSpec

    return JobSpec(job_type="pipeline", push=push_spec(args), credentials_id=args.credentials_id,
                   agent=args.agent, concurrent=args.concurrent is not False)


def job_spec(args: argparse.Namespace) -> JobSpec:
    """`jr render job` / `jr jenkins job`: a job that builds and pushes, or, with --script-path,
    one that runs the repository's Jenkinsfile (and refuses every option that file would own)."""
    from jenkins_registry.job_spec import JobSpec, ScmSpec

    scm = None
    if args.scm_url is not None:
        defaults = ScmSpec(url=args.scm_url)
        scm = ScmSpec(url=args.scm_url,
                      branch=args.scm_branch if args.scm_branch is not None else defaults.branch,
                      credentials_id=args.scm_credentials_id)
    elif any(v is not None for v in (args.scm_branch, args.scm_credentials_id, args.script_path)):
        raise UsageError("--scm-branch, --scm-credentials-id and --script-path need --scm-url.",
                         hint="Add --scm-url with the git repository, or drop the other options.")
    if args.script_path is not None and args.job_type == "pipeline":
        given = [option for dest, option in _PUSH_AND_BUILD_OPTIONS.items()
                 if getattr(args, dest) is not None]
        if given:
            raise UsageError(
                f"With --script-path the job runs the repository's Jenkinsfile, so "
                f"{', '.join(given)} would be ignored.",
                hint="Put the build and push in that Jenkinsfile: `jr render jenkinsfile --registry "
                "… --repository … --credentials-id … --output Jenkinsfile` writes one to commit at "
                f"{args.script_path}. Or drop --script-path for a job with the steps inline.")
        return JobSpec(job_type="pipeline", description=args.description, scm=scm,
                       script_path=args.script_path)
    if args.credentials_id is None:
        raise UsageError("No credentials id given.",
                         hint="Pass --credentials-id with the id of the Jenkins 'Username with "
                         "password' credential of the registry (`jr jenkins credential` makes one).")
    return JobSpec(job_type=args.job_type, push=push_spec(args), credentials_id=args.credentials_id,
                   description=args.description, scm=scm, script_path=args.script_path,
                   agent=args.agent, concurrent=args.concurrent is not False)
