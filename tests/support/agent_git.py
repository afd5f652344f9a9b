"""The git plugin's checkout as the agent harness runs it (hudson.plugins.git.GitSCM, one remote).

Source: jenkinsci/git-plugin GitSCM.java (createClient, retrieveChanges, determineRevisionToBuild,
getSingleBranch, buildEnvironment, abortIfSourceIsLocal), BranchSpec.java and
util/DefaultBuildChooser.java (getCandidateRevisions). Log lines are the plugin's.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

from tests.support.agent_build import Build, NotModelledError, StepError, children_check, text_of
from tests.support.jenkins_emulator import USERNAME_PASSWORD_CLASS

GIT_SCM_CLASS = "hudson.plugins.git.GitSCM"
ALLOW_LOCAL_CHECKOUT_PROPERTY = "hudson.plugins.git.GitSCM.ALLOW_LOCAL_CHECKOUT"


@dataclass(frozen=True, kw_only=True)
class GitSource:
    """One GitSCM: its remote, credential and branch specs; `local_branch` for the `git` step."""

    url: str
    credentials_id: str | None = None
    branches: tuple[str, ...] = ("*/master",)
    local_branch: str | None = None
    remote: str = "origin"


def parse_git_scm(scm: ET.Element) -> GitSource:
    """A `<scm class="hudson.plugins.git.GitSCM">` element (spec §3b); refuses what is not modelled."""
    if scm.get("class") != GIT_SCM_CLASS:
        raise NotModelledError(f"the SCM {scm.get('class')!r}")
    children_check(scm, ("configVersion", "userRemoteConfigs", "branches",
                         "doGenerateSubmoduleConfigurations", "submoduleCfg", "extensions", "gitTool",
                         "browser"), "GitSCM")
    remotes = scm.find("userRemoteConfigs")
    configs = [] if remotes is None else list(remotes)
    if len(configs) != 1:
        raise NotModelledError(f"a GitSCM with {len(configs)} remotes")
    config = configs[0]
    children_check(config, ("url", "credentialsId", "name", "refspec"), "UserRemoteConfig")
    if text_of(config, "name") or text_of(config, "refspec"):
        raise NotModelledError("a remote name or refspec")
    url = text_of(config, "url") or ""
    if not url:
        raise StepError("Git repository URL 1 is an empty string in job definition. Checkout requires a "
                        "valid repository URL")
    extensions = scm.find("extensions")
    if extensions is not None and len(extensions):
        raise NotModelledError(f"git extensions {[e.tag for e in extensions]}")
    branches = scm.find("branches")
    names = tuple(text_of(b, "name", "") or "" for b in ([] if branches is None else branches))
    if len(names) > 1:
        raise NotModelledError("several branch specs")
    return GitSource(url=url, credentials_id=text_of(config, "credentialsId") or None,
                     branches=names or ("*/master",))


def _git(build: Build, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**build.base_env(), "GIT_TERMINAL_PROMPT": "0"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=build.remaining(), check=False)


def _log_credential(build: Build, source: GitSource) -> None:
    """GitSCM.createClient: a credential is looked up, used when found, else only warned about."""
    if source.credentials_id is None:
        build.say("No credentials specified")
        return
    cred = build.find_credential(source.credentials_id)
    if cred is not None and cred.class_name == USERNAME_PASSWORD_CLASS:  # StandardUsernameCredentials
        build.say(f"using credential {source.credentials_id}")
    else:
        build.say(f'Warning: CredentialId "{source.credentials_id}" could not be found.')


def _fetch(build: Build, source: GitSource, target: Path) -> None:
    """retrieveChanges: init and fetch every branch of the remote into refs/remotes/<remote>/."""
    local = source.url.lower().startswith("file://") or Path(source.url).exists()
    if local and build.node_name == "built-in":  # the controller (abortIfSourceIsLocal)
        raise StepError(f"Checkout of Git remote '{source.url}' aborted because it references a local "
                        "directory, which may be insecure. You can allow local checkouts anyway by "
                        f"setting the system property '{ALLOW_LOCAL_CHECKOUT_PROPERTY}' to true.")
    target.mkdir(parents=True, exist_ok=True)
    refspec = f"+refs/heads/*:refs/remotes/{source.remote}/*"
    cloning = not (target / ".git").is_dir()
    if cloning:
        build.say("Cloning the remote Git repository")
        build.say(f"Cloning repository {source.url}")
        done = _git(build, ["init", "--quiet", str(target)], target)
        if done.returncode != 0:
            build.say(done.stderr)
            raise StepError(f"Error cloning remote repo '{source.remote}'")
    else:
        build.say("Fetching changes from the remote Git repository")
    build.say(f" > git fetch --tags --force --progress -- {source.url} {refspec} # timeout=10")
    done = _git(build, ["fetch", "--tags", "--force", "--", source.url, refspec], target)
    if done.returncode != 0:
        build.say(done.stderr)
        raise StepError(f"Error {'cloning' if cloning else 'fetching'} remote repo '{source.remote}'")
    for args in (["config", "remote.origin.url", source.url], ["config", "remote.origin.fetch", refspec]):
        _git(build, args, target)


def _rev_parse(build: Build, ref: str, cwd: Path) -> str | None:
    done = _git(build, ["rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"], cwd)
    return done.stdout.strip() if done.returncode == 0 and done.stdout.strip() else None


def _wildcard_regex(spec: str) -> re.Pattern[str]:
    """BranchSpec.getPattern without a repository name: `*` within a path segment, `**` across."""
    body = "".join(".*" if tok == "**" else "[^/]*" if tok == "*" else re.escape(tok)
                   for tok in re.split(r"(\*\*|\*)", spec) if tok)
    unqualified = "**" not in spec and "/" not in spec  # then any remote may qualify it
    lead = "(refs/heads/|refs/remotes/[^/]+/|remotes/[^/]+/|[^/]+/)?" if unqualified \
        else "(refs/heads/|refs/remotes/|remotes/)?"
    return re.compile(lead + body + r"\Z")


def resolve_revision(build: Build, source: GitSource, cwd: Path) -> tuple[str, str]:
    """DefaultBuildChooser: the commit to build and the branch name it was found under."""
    spec = source.branches[0]
    branch = spec
    if branch.startswith("*/"):  # getSingleBranch: the remote replaces the wildcard
        branch = source.remote + branch[1:]
    if branch == "":
        branch = "**"
    if "*" in branch or branch.startswith(":"):
        return _advanced_revision(build, spec, cwd)
    if re.fullmatch(r"[0-9a-f]{6,40}", branch):
        sha = _rev_parse(build, branch, cwd)
        if sha is not None:
            return sha, "detached"
    if "/" not in branch:
        candidates = [f"{source.remote}/{branch}"]
    elif branch.startswith(f"{source.remote}/"):
        candidates = [f"refs/remotes/{branch}"]
    elif branch.startswith(f"remotes/{source.remote}/"):
        candidates = [f"refs/{branch}"]
    elif branch.startswith("refs/heads/"):
        candidates = [f"refs/remotes/{source.remote}/{branch.removeprefix('refs/heads/')}"]
    else:
        candidates = [f"refs/remotes/{source.remote}/{branch}", branch]
    candidates.append(branch)  # a non-branch reference (a tag)
    for ref in candidates:
        sha = _rev_parse(build, ref, cwd)
        if sha is not None:
            return sha, ref
    raise StepError("Couldn't find any revision to build. Verify the repository and branch configuration "
                    "for this job.")


def _advanced_revision(build: Build, spec: str, cwd: Path) -> tuple[str, str]:
    """getAdvancedCandidateRevisions: matching remote branches, oldest commit first."""
    if spec.startswith(":"):
        raise NotModelledError("a regular-expression branch spec")
    pattern = _wildcard_regex(spec)
    done = _git(build, ["for-each-ref", "--format=%(committerdate:unix) %(objectname) %(refname)",
                        "refs/remotes/"], cwd)
    rows = []
    for line in done.stdout.splitlines():
        stamp, sha, ref = line.split(" ", 2)
        name = ref.removeprefix("refs/remotes/")
        if not name.endswith("/HEAD") and pattern.match(name):
            rows.append((int(stamp), name, sha))
    if not rows:
        raise StepError("Couldn't find any revision to build. Verify the repository and branch "
                        "configuration for this job.")
    _, name, sha = sorted(rows)[0]
    return sha, name


def checkout(build: Build, source: GitSource, target: Path) -> dict[str, str]:
    """Check *source* out into *target* (created when missing); returns GIT_COMMIT, GIT_BRANCH, GIT_URL
    (and GIT_LOCAL_BRANCH for a local branch). Raises StepError as the plugin fails the build."""
    build.say("The recommended git tool is: NONE")
    _log_credential(build, source)
    _fetch(build, source, target)
    sha, branch = resolve_revision(build, source, target)
    branch_name = branch.removeprefix("refs/remotes/")  # GitSCM.getBranchName
    build.say(f"Checking out Revision {sha} ({branch_name})")
    args = ["checkout", "--quiet", "-f", sha]
    if source.local_branch is not None:
        args = ["checkout", "--quiet", "-f", "-B", source.local_branch, sha]
    done = _git(build, args, target)
    if done.returncode != 0:
        build.say(done.stderr)
        raise StepError(f"Could not checkout {sha}")
    subject = _git(build, ["log", "-1", "--format=%s", sha], target).stdout.strip()
    build.say(f'Commit message: "{subject}"')
    env = {"GIT_COMMIT": sha, "GIT_BRANCH": branch_name, "GIT_URL": source.url}
    if source.local_branch is not None:
        env["GIT_LOCAL_BRANCH"] = source.local_branch
    return env


def read_file(build: Build, source: GitSource, path: str) -> str:
    """A Jenkinsfile read for CpsScmFlowDefinition: fetched away from the workspace, as the controller
    does (lightweight or in `job@script`); StepError when the branch or the file is missing."""
    _log_credential(build, source)
    with tempfile.TemporaryDirectory(prefix="jenkinsfile-") as tmp:
        scratch = Path(tmp)
        done = _git(build, ["init", "--quiet", str(scratch)], scratch)
        refspec = f"+refs/heads/*:refs/remotes/{source.remote}/*"
        done = _git(build, ["fetch", "--tags", "--force", "--", source.url, refspec], scratch)
        if done.returncode != 0:
            build.say(done.stderr)
            raise StepError(f"Error fetching remote repo '{source.remote}'")
        sha, _ = resolve_revision(build, source, scratch)
        shown = _git(build, ["show", f"{sha}:{path}"], scratch)
        if shown.returncode != 0:
            raise StepError(f"Unable to find {path} from git {source.url}")
    build.say(f"Obtained {path} from git {source.url}")
    return shown.stdout
