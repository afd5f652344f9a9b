"""What a Jenkins job and a registry credential are made of, shared by rendering and provisioning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jenkins_registry.secret_types import Secret

# Written into the description of every job we create; provisioning refuses to overwrite a job
# whose description lacks it unless --force is given (the way JJB marks the jobs it manages).
MANAGED_MARKER = "Managed by jenkins-registry"

JobType = Literal["pipeline", "freestyle"]
Runner = Literal["jr", "docker"]
TagSource = Literal["git"]


@dataclass(frozen=True, kw_only=True)
class BuildOptions:
    """How the build step runs `docker build` (used only when PushSpec.build is true).

    Values of build_args and labels may hold `${NAME}` references, expanded by the agent's shell.
    The OCI labels (revision from $GIT_COMMIT, source URL) are added when the build has a source:
    oci_source, else the job's git URL; oci_labels=False leaves them out.
    """

    dockerfile: str | None = None
    context: str = "."
    build_args: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    pull: bool = False
    oci_labels: bool = True
    oci_source: str | None = None


@dataclass(frozen=True, kw_only=True)
class PushSpec:
    """What the build step pushes: registry, repository, tags, and how (jr-push or the docker CLI).

    `image` is the repository path in the registry (`--repository`; the field keeps its old name).
    `local_image` is the image on the agent (`--image`): the name the build tags, with the build's
    own tag appended, or with build=False the image pushed as it is (NAME[:TAG], NAME@DIGEST or an
    image ID); None means the repository path itself. `tag_from="git"` lets jr-push add the tags
    it derives from git on the agent (`jr-push --tag-from git`; runner jr only).
    """

    registry: str
    image: str
    local_image: str | None = None
    tags: tuple[str, ...] = ()
    tag_from: TagSource | None = None
    build: bool = True
    runner: Runner = "jr"
    username_variable: str = "DOCKER_LOGIN_USERNAME"
    password_variable: str = "DOCKER_LOGIN_PASSWORD"
    build_options: BuildOptions = BuildOptions()


@dataclass(frozen=True, kw_only=True)
class ScmSpec:
    """The git repository a job checks out (GitSCM): URL, branch spec, checkout credential."""

    url: str
    branch: str = "*/main"
    credentials_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A job to render and apply.

    Two shapes: a job that builds and pushes (`push` and `credentials_id` set; `scm` is the source
    it checks out), or, with `script_path`, a pipeline that runs the Jenkinsfile at that path in
    `scm` (CpsScmFlowDefinition), where everything else lives in that Jenkinsfile.
    """

    job_type: JobType
    push: PushSpec | None = None
    credentials_id: str | None = None
    description: str = ""
    scm: ScmSpec | None = None
    script_path: str | None = None
    agent: str | None = None  # a label expression; None: any agent
    concurrent: bool = True


@dataclass(frozen=True, kw_only=True)
class CredentialSpec:
    """A "Username with password" credential; the password is only ever revealed into its XML."""

    credential_id: str
    username: str
    password: Secret = field(repr=False)
    description: str = ""
    scope: Literal["GLOBAL", "SYSTEM"] = "GLOBAL"
    username_secret: bool = False
