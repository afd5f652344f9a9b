"""Tags derived from git for `jr-push --tag-from git`: the rules (pure), and a reader that asks `git`.

Where the facts come from (docs/tags-from-git.md):
  * the Jenkins environment first. The branch is `BRANCH_NAME` (multibranch jobs), else
    `GIT_BRANCH` (the Git plugin; `origin/feature/x` on its detached HEAD checkout); the release
    tag is `TAG_NAME` (multibranch tag builds), else a `GIT_BRANCH` of the form `refs/tags/T` or
    `origin/tags/T`; the commit is `GIT_COMMIT`. A branch equal to the tag (multibranch sets
    `BRANCH_NAME` to the tag's name in a tag build) is no branch.
  * `git` in the working directory for what the environment does not say: the commit
    (`git rev-parse HEAD`) when `GIT_COMMIT` is unset; the branch (`git rev-parse --abbrev-ref
    HEAD`; a detached HEAD has none) and the tag (`git describe --tags --exact-match`) only when
    none of `BRANCH_NAME`, `GIT_BRANCH` and `TAG_NAME` is set (then the directory must be a
    repository even when `GIT_COMMIT` is set). Under Jenkins only `TAG_NAME` (or a tag in
    `GIT_BRANCH`) makes a release, whatever tags the checkout happens to have.

The tags, in this order, without repeats:
  1. for a release tag `vX.Y.Z` or `X.Y.Z` (SemVer 2.0, build metadata `+…` dropped): `X.Y.Z`,
     `X.Y` and `X` (not `X` when it is 0); for a pre-release (`v1.4.0-rc2`) only `1.4.0-rc2`;
     for any other tag the tag itself, cleaned as a branch is;
  2. the branch: without `refs/heads/`, `refs/remotes/origin/`, `remotes/origin/` or `origin/`,
     lowercased, every character a Docker tag refuses replaced by `-`, leading `.` and `-`
     dropped (a tag starts with [a-z0-9_]), at most 128 characters;
  3. `sha-` and the first 7 hex digits of the commit;
  4. `latest` when the branch is a default branch (`main` or `master`, or the one given).

Every tag returned passes `reference.parse_tag`. Bad input raises UsageError (exit 2), naming
the variables to set.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from jenkins_registry.errors import UsageError
from jenkins_registry.reference import parse_tag

JENKINS_VARIABLES = ("BRANCH_NAME", "GIT_BRANCH", "TAG_NAME", "GIT_COMMIT")
DEFAULT_BRANCHES = ("main", "master")
TAG_MAX = 128  # Docker's limit on a tag's length
SHORT_COMMIT = 7
GIT_TIMEOUT = 10.0  # seconds per git command: these are local reads, never the network

_BRANCH_PREFIXES = ("refs/heads/", "refs/remotes/origin/", "remotes/origin/", "origin/")
_TAG_PREFIXES = ("refs/tags/", "origin/tags/")
_COMMIT = re.compile(r"^[0-9a-fA-F]{7,64}$")
_NUMBER = r"(?:0|[1-9][0-9]*)"
_IDENTIFIER = r"[0-9A-Za-z-]+"
_SEMVER = re.compile(
    rf"^v?(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<pre>{_IDENTIFIER}(?:\.{_IDENTIFIER})*))?(?:\+{_IDENTIFIER}(?:\.{_IDENTIFIER})*)?$")
_REFUSED = re.compile(r"[^a-z0-9_.-]")

# The environment a git read needs besides GIT_* (GIT_DIR, GIT_CEILING_DIRECTORIES, …).
_GIT_NEEDS = frozenset({"PATH", "HOME", "XDG_CONFIG_HOME", "SYSTEMROOT", "TZ"})
_WHAT_TO_SET = ("Run it in a git checkout, or set the Jenkins variables GIT_COMMIT and GIT_BRANCH "
                "(or BRANCH_NAME; TAG_NAME for a release), or give the tags with --tag.")


class GitReader(Protocol):
    """What the rules ask of git when the environment does not say it."""

    def commit(self) -> str | None:
        """HEAD's commit hash; None in a repository without commits."""
        ...

    def branch(self) -> str | None:
        """The checked-out branch; None for a detached HEAD."""
        ...

    def exact_tag(self) -> str | None:
        """A tag pointing at HEAD; None when there is none."""
        ...


@dataclass(frozen=True, kw_only=True)
class GitFacts:
    """What the tags are derived from; `sources` names where each fact came from."""

    commit: str  # lowercase hex, at least 7 digits
    branch: str | None = None  # without the remote prefix; None: a tag build or a detached HEAD
    tag: str | None = None  # the git tag of a tag build
    sources: tuple[str, ...] = ()  # e.g. ("BRANCH_NAME", "GIT_COMMIT") or ("git",)


@dataclass(frozen=True, kw_only=True)
class DerivedTags:
    facts: GitFacts
    tags: tuple[str, ...]

    def describe(self) -> str:
        """One line for the build log: the tags and where their facts came from (names of
        variables, never their values)."""
        return f"tags from git ({', '.join(self.facts.sources)}): {', '.join(self.tags)}"


def derive_tags(environ: Mapping[str, str], reader: GitReader | None, *,
                default_branch: str | None = None) -> DerivedTags:
    """The tags for the build *environ* describes (see the module docstring). *reader* answers
    what the environment does not say; None: nothing but the environment (a missing fact is an
    error)."""
    facts = read_facts(environ, reader)
    defaults = DEFAULT_BRANCHES if default_branch is None else (_strip_branch(default_branch),)
    return DerivedTags(facts=facts, tags=tags_for(facts, defaults))


def tags_for(facts: GitFacts, default_branches: Sequence[str] = DEFAULT_BRANCHES) -> tuple[str, ...]:
    """The tags of *facts*, in the module docstring's order, without repeats, each valid."""
    tags: list[str] = []
    if facts.tag is not None:
        tags += release_tags(facts.tag)
    if facts.branch is not None:
        cleaned = clean_name(facts.branch)
        if cleaned is not None:
            tags.append(cleaned)
    tags.append(f"sha-{facts.commit[:SHORT_COMMIT]}")
    if facts.branch is not None and facts.branch in default_branches:
        tags.append("latest")
    return tuple(dict.fromkeys(parse_tag(tag) for tag in tags))


def release_tags(tag: str) -> list[str]:
    """`v1.4.0` or `1.4.0` → 1.4.0, 1.4, 1 (no `0` for 0.x); a pre-release → itself without the
    `v`; any other tag → itself cleaned (`clean_name`), or nothing when nothing is left."""
    match = _SEMVER.match(tag)
    if match is None:
        cleaned = clean_name(tag)
        return [cleaned] if cleaned is not None else []
    major, minor, patch, pre = match.group("major", "minor", "patch", "pre")
    if pre is not None:
        return [f"{major}.{minor}.{patch}-{pre}"[:TAG_MAX]]
    return [f"{major}.{minor}.{patch}", f"{major}.{minor}"] + ([major] if major != "0" else [])


def clean_name(name: str) -> str | None:
    """*name* as a Docker tag: lowercased, each refused character `-`, no leading `.`/`-`, at most
    128 characters; None when nothing is left."""
    cleaned = _REFUSED.sub("-", name.lower()).lstrip(".-")[:TAG_MAX]
    return cleaned or None


def read_facts(environ: Mapping[str, str], reader: GitReader | None) -> GitFacts:
    """The commit, branch and tag: from the Jenkins variables, else from *reader*."""
    given = {name: environ[name].strip() for name in JENKINS_VARIABLES
             if environ.get(name, "").strip()}
    sources = [name for name in JENKINS_VARIABLES if name in given]
    branch_text = given.get("BRANCH_NAME") or given.get("GIT_BRANCH")
    tag = given.get("TAG_NAME")
    branch: str | None = None
    if branch_text is not None:
        spelled_tag = _tag_in_branch(branch_text)
        if spelled_tag is not None:
            tag = tag or spelled_tag
        elif branch_text != tag:
            branch = _strip_branch(branch_text)
    from_git = branch_text is None and tag is None
    if "GIT_COMMIT" in given and not from_git:
        commit = _check_commit(given["GIT_COMMIT"], "GIT_COMMIT")
    else:
        # asked even when GIT_COMMIT is set: it also proves the directory is a repository, so a
        # branch and tag that git cannot give are an error rather than silently none
        git_commit = _commit_from_git(reader)
        sources.append("git")
        commit = _check_commit(given["GIT_COMMIT"], "GIT_COMMIT") if "GIT_COMMIT" in given \
            else git_commit
    if from_git:
        assert reader is not None  # _commit_from_git refused a missing reader
        branch = reader.branch()
        tag = reader.exact_tag()
    return GitFacts(commit=commit, branch=branch, tag=tag, sources=tuple(sources))


def _commit_from_git(reader: GitReader | None) -> str:
    if reader is None:
        raise UsageError("--tag-from git: the Jenkins variables do not say which commit and branch "
                         "this is, and git was not asked.", hint=_WHAT_TO_SET)
    text = reader.commit()
    if text is None:
        raise UsageError("--tag-from git: the git repository has no commit yet.",
                         hint="Commit first, or set GIT_COMMIT, or give the tags with --tag.")
    return _check_commit(text, "git rev-parse HEAD")


def _check_commit(text: str, where: str) -> str:
    if not _COMMIT.match(text):
        raise UsageError(f"--tag-from git: {where} gave {text[:80]!r}, which is not a commit hash.",
                         hint="GIT_COMMIT must be the commit's hex hash (as the Git plugin sets "
                         "it); unset it to ask git.")
    return text.lower()


def _strip_branch(name: str) -> str:
    for prefix in _BRANCH_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def _tag_in_branch(name: str) -> str | None:
    for prefix in _TAG_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return name[len(prefix):]
    return None


# -- asking git ------------------------------------------------------------------------------------


class GitCommandReader:
    """Reads HEAD's commit, branch and tag with `git` (an argv list, no shell, each command bounded
    in time) in *directory*. A missing `git`, or a directory outside any repository, is a
    UsageError naming the variables that would do instead."""

    def __init__(self, directory: Path | None = None, *, environ: Mapping[str, str] | None = None,
                 timeout: float = GIT_TIMEOUT) -> None:
        self.directory = directory
        base = os.environ if environ is None else environ
        # Only what git reads: the push's credential variables never reach another process.
        kept = {name: value for name, value in base.items()
                if name in _GIT_NEEDS or (name.startswith("GIT_") and name not in JENKINS_VARIABLES)}
        # C locale: the messages below are matched; no prompt: a read never waits for a person.
        self.environ = {**kept, "LC_ALL": "C", "GIT_TERMINAL_PROMPT": "0"}
        self.timeout = timeout

    def _git(self, *argv: str) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(["git", *argv], cwd=self.directory, env=self.environ,
                                  capture_output=True, text=True, timeout=self.timeout,
                                  stdin=subprocess.DEVNULL, check=False)
        except FileNotFoundError:
            raise UsageError("--tag-from git: git is not installed (or not on PATH).",
                             hint=_WHAT_TO_SET) from None
        except subprocess.TimeoutExpired:
            raise UsageError(f"--tag-from git: `git {' '.join(argv)}` did not finish within "
                             f"{self.timeout:g} s.", hint=_WHAT_TO_SET) from None
        except OSError as exc:
            raise UsageError(f"--tag-from git: git could not be run ({exc.strerror or exc}).",
                             hint=_WHAT_TO_SET) from None

    def commit(self) -> str | None:
        done = self._git("rev-parse", "HEAD")
        if done.returncode == 0:
            return done.stdout.strip()
        message = done.stderr.strip()
        if "unknown revision" in message or "ambiguous argument 'HEAD'" in message:
            return None  # a repository without commits
        where = self.directory or Path.cwd()
        first_line = message.splitlines()[0][:200] if message else f"exit {done.returncode}"
        if "not a git repository" in message:
            raise UsageError(f"--tag-from git: {where} is not in a git repository.",
                             hint=_WHAT_TO_SET)
        hint = _WHAT_TO_SET
        if "dubious ownership" in message:
            hint = (f"The checkout belongs to another user: run `git config --global --add "
                    f"safe.directory {where}` as this user, or set GIT_COMMIT and GIT_BRANCH.")
        raise UsageError(f"--tag-from git: git could not read HEAD in {where} ({first_line}).",
                         hint=hint)

    def branch(self) -> str | None:
        done = self._git("rev-parse", "--abbrev-ref", "HEAD")
        name = done.stdout.strip()
        return name if done.returncode == 0 and name and name != "HEAD" else None

    def exact_tag(self) -> str | None:
        done = self._git("describe", "--tags", "--exact-match")
        name = done.stdout.strip()
        return name if done.returncode == 0 and name else None
