"""What a Jenkins job and a registry credential are made of, shared by rendering and provisioning."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jenkins_registry.credentials import Secret

# Written into the description of every job we create; provisioning refuses to overwrite a job
# whose description lacks it unless --force is given (the way JJB marks the jobs it manages).
MANAGED_MARKER = "Managed by jenkins-registry"

JobType = Literal["pipeline", "freestyle"]
Runner = Literal["jr", "docker"]


@dataclass(frozen=True, kw_only=True)
class PushSpec:
    """What the build step pushes: registry, image, tags, and how (jr-push or the docker CLI)."""

    registry: str
    image: str
    tags: tuple[str, ...] = ()
    build: bool = True
    runner: Runner = "jr"
    username_variable: str = "DOCKER_LOGIN_USERNAME"
    password_variable: str = "DOCKER_LOGIN_PASSWORD"


@dataclass(frozen=True, kw_only=True)
class ScmSpec:
    """A Jenkinsfile taken from git instead of an inline script (CpsScmFlowDefinition)."""

    url: str
    branch: str = "*/main"
    script_path: str = "Jenkinsfile"
    credentials_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class JobSpec:
    """A job to render and apply: its type, what it pushes, and with which Jenkins credential."""

    job_type: JobType
    push: PushSpec
    credentials_id: str
    description: str = ""
    scm: ScmSpec | None = None


@dataclass(frozen=True, kw_only=True)
class CredentialSpec:
    """A "Username with password" credential; the password is only ever revealed into its XML."""

    credential_id: str
    username: str
    password: Secret = field(repr=False)
    description: str = ""
    scope: Literal["GLOBAL", "SYSTEM"] = "GLOBAL"
    username_secret: bool = False
