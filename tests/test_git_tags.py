"""`jr-push --tag-from git`: the rules (table-driven), the reader against real git repositories,
and an end-to-end push whose exact tag set is read back from the real registry."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jenkins_registry.cli.push import main as jr_push
from jenkins_registry.errors import ExitCode, UsageError
from jenkins_registry.git_tags import GitCommandReader, derive_tags, tags_for
from jenkins_registry.reference import parse_tag
from tests.support import services
from tests.support.secret_checks import assert_absent

SECRET = services.REGISTRY_PASSWORD
COMMIT = "abcdef0123456789abcdef0123456789abcdef01"
SHA = "sha-abcdef0"


@dataclass(frozen=True)
class FixedReader:
    """Stands for git in the table: what `GitCommandReader` would have read (tested below)."""

    head: str | None = COMMIT
    checked_out: str | None = None
    tag: str | None = None

    def commit(self) -> str | None:
        return self.head

    def branch(self) -> str | None:
        return self.checked_out

    def exact_tag(self) -> str | None:
        return self.tag


RULES: list[tuple[str, dict[str, str], FixedReader | None, str | None, tuple[str, ...]]] = [
    # (case, Jenkins variables, git, --default-branch, the tags)
    ("Git plugin branch build (detached HEAD)",
     {"GIT_BRANCH": "origin/feature/x", "GIT_COMMIT": COMMIT}, None, None, ("feature-x", SHA)),
    ("multibranch branch build", {"BRANCH_NAME": "feature/login", "GIT_COMMIT": COMMIT}, None, None,
     ("feature-login", SHA)),
    ("default branch main", {"BRANCH_NAME": "main", "GIT_COMMIT": COMMIT}, None, None,
     ("main", SHA, "latest")),
    ("default branch master via the Git plugin", {"GIT_BRANCH": "origin/master", "GIT_COMMIT": COMMIT},
     None, None, ("master", SHA, "latest")),
    ("BRANCH_NAME wins over GIT_BRANCH",
     {"BRANCH_NAME": "main", "GIT_BRANCH": "origin/other", "GIT_COMMIT": COMMIT}, None, None,
     ("main", SHA, "latest")),
    ("--default-branch develop", {"BRANCH_NAME": "develop", "GIT_COMMIT": COMMIT}, None, "develop",
     ("develop", SHA, "latest")),
    ("--default-branch replaces main and master", {"BRANCH_NAME": "main", "GIT_COMMIT": COMMIT},
     None, "origin/develop", ("main", SHA)),
    ("multibranch release tag build", {"TAG_NAME": "v1.4.0", "BRANCH_NAME": "v1.4.0",
                                       "GIT_COMMIT": COMMIT}, None, None, ("1.4.0", "1.4", "1", SHA)),
    ("release tag without v", {"TAG_NAME": "1.2.3", "BRANCH_NAME": "1.2.3", "GIT_COMMIT": COMMIT},
     None, None, ("1.2.3", "1.2", "1", SHA)),
    ("pre-release: no floating tags", {"TAG_NAME": "v1.4.0-rc2", "BRANCH_NAME": "v1.4.0-rc2",
                                       "GIT_COMMIT": COMMIT}, None, None, ("1.4.0-rc2", SHA)),
    ("0.x release: no 0", {"TAG_NAME": "v0.3.1", "BRANCH_NAME": "v0.3.1", "GIT_COMMIT": COMMIT},
     None, None, ("0.3.1", "0.3", SHA)),
    ("build metadata dropped", {"TAG_NAME": "v2.0.1+build.7", "GIT_COMMIT": COMMIT}, None, None,
     ("2.0.1", "2.0", "2", SHA)),
    ("a tag that is not semver: itself, cleaned", {"TAG_NAME": "Release_2024.05", "GIT_COMMIT": COMMIT},
     None, None, ("release_2024.05", SHA)),
    ("two-part version is not semver", {"TAG_NAME": "v1.2", "GIT_COMMIT": COMMIT}, None, None,
     ("v1.2", SHA)),
    ("a tag spelled in GIT_BRANCH", {"GIT_BRANCH": "refs/tags/v3.1.4", "GIT_COMMIT": COMMIT}, None,
     None, ("3.1.4", "3.1", "3", SHA)),
    ("Git plugin tag as origin/tags", {"GIT_BRANCH": "origin/tags/v3.1.4", "GIT_COMMIT": COMMIT},
     None, None, ("3.1.4", "3.1", "3", SHA)),
    ("pull request", {"BRANCH_NAME": "PR-42", "GIT_COMMIT": COMMIT}, None, None, ("pr-42", SHA)),
    ("odd characters", {"GIT_BRANCH": "origin/Feature/Über thing#1", "GIT_COMMIT": COMMIT}, None,
     None, ("feature--ber-thing-1", SHA)),
    ("leading . and - dropped", {"BRANCH_NAME": "-.hidden", "GIT_COMMIT": COMMIT}, None, None,
     ("hidden", SHA)),
    ("nothing left of the branch", {"BRANCH_NAME": "...", "GIT_COMMIT": COMMIT}, None, None, (SHA,)),
    ("long branch cut at 128", {"BRANCH_NAME": "b" * 300, "GIT_COMMIT": COMMIT}, None, None,
     ("b" * 128, SHA)),
    ("refs/heads/ prefix", {"GIT_BRANCH": "refs/heads/main", "GIT_COMMIT": COMMIT}, None, None,
     ("main", SHA, "latest")),
    ("an uppercase GIT_COMMIT", {"BRANCH_NAME": "dev", "GIT_COMMIT": COMMIT.upper()}, None, None,
     ("dev", SHA)),
    ("a branch equal to a version tag is said once", {"TAG_NAME": "v1.4.0", "BRANCH_NAME": "1.4",
                                                      "GIT_COMMIT": COMMIT}, None, None,
     ("1.4.0", "1.4", "1", SHA)),
    ("GIT_COMMIT missing under Jenkins: git gives it", {"BRANCH_NAME": "main"}, FixedReader(), None,
     ("main", SHA, "latest")),
    ("outside Jenkins: git's branch", {}, FixedReader(checked_out="main"), None, ("main", SHA, "latest")),
    ("outside Jenkins: detached HEAD", {}, FixedReader(), None, (SHA,)),
    ("outside Jenkins: a tagged commit", {}, FixedReader(checked_out="main", tag="v1.4.0"), None,
     ("1.4.0", "1.4", "1", "main", SHA, "latest")),
    ("GIT_COMMIT with git's branch", {"GIT_COMMIT": "1234567"},
     FixedReader(checked_out="topic"), None, ("topic", "sha-1234567")),
    ("under Jenkins git's tags are not asked", {"BRANCH_NAME": "main", "GIT_COMMIT": COMMIT},
     FixedReader(tag="v9.9.9"), None, ("main", SHA, "latest")),
]


@pytest.mark.parametrize(("environ", "reader", "default_branch", "expected"),
                         [case[1:] for case in RULES], ids=[case[0] for case in RULES])
def test_rules(environ: dict[str, str], reader: FixedReader | None, default_branch: str | None,
               expected: tuple[str, ...]) -> None:
    derived = derive_tags(environ, reader, default_branch=default_branch)
    assert derived.tags == expected
    assert all(parse_tag(tag) == tag for tag in derived.tags)


@pytest.mark.parametrize(("environ", "reader", "said"), [
    ({"BRANCH_NAME": "main"}, None, "git was not asked"),
    ({}, FixedReader(head=None), "no commit yet"),
    ({"BRANCH_NAME": "main", "GIT_COMMIT": "not-a-hash"}, None, "not a commit hash"),
    ({"BRANCH_NAME": "main", "GIT_COMMIT": "abc12"}, None, "not a commit hash"),
], ids=["missing commit", "repository without commits", "GIT_COMMIT not hex", "GIT_COMMIT too short"])
def test_a_missing_or_bad_commit_is_a_usage_error(environ: dict[str, str], reader: FixedReader | None,
                                                  said: str) -> None:
    with pytest.raises(UsageError) as raised:
        derive_tags(environ, reader)
    assert said in raised.value.message
    assert raised.value.exit_code == ExitCode.USAGE


def test_the_describe_line_names_variables_not_values() -> None:
    derived = derive_tags({"BRANCH_NAME": "main", "GIT_COMMIT": COMMIT}, None)
    assert derived.describe() == f"tags from git (BRANCH_NAME, GIT_COMMIT): main, {SHA}, latest"
    assert tags_for(derived.facts, ("trunk",)) == ("main", SHA)


# -- the reader, against real git ------------------------------------------------------------------


def git(repo: Path, *argv: str) -> str:
    done = subprocess.run(["git", "-c", "user.name=CI", "-c", "user.email=ci@example.test",
                           "-c", "init.defaultBranch=main", *argv], cwd=repo, check=True,
                          capture_output=True, text=True, timeout=30)
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository on branch main with one commit."""
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q")
    (path / "Dockerfile").write_text("FROM scratch\n")
    git(path, "add", "Dockerfile")
    git(path, "commit", "-q", "-m", "first")
    return path


def test_reader_on_a_branch_with_a_release_tag(repo: Path) -> None:
    git(repo, "tag", "-a", "v1.4.0", "-m", "release")
    reader = GitCommandReader(repo)
    head = git(repo, "rev-parse", "HEAD")
    assert (reader.commit(), reader.branch(), reader.exact_tag()) == (head, "main", "v1.4.0")
    assert derive_tags({}, reader).tags == ("1.4.0", "1.4", "1", "main", f"sha-{head[:7]}", "latest")


def test_reader_on_a_detached_head_without_a_tag(repo: Path) -> None:
    (repo / "app.txt").write_text("2\n")
    git(repo, "add", "app.txt")
    git(repo, "commit", "-q", "-m", "second")
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "--detach", head)
    reader = GitCommandReader(repo)
    assert (reader.branch(), reader.exact_tag()) == (None, None)
    assert derive_tags({}, reader).tags == (f"sha-{head[:7]}",)


def test_reader_in_a_repository_without_commits(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(UsageError, match="no commit yet"):
        derive_tags({}, GitCommandReader(tmp_path))


def test_reader_outside_a_repository_says_which_variables_to_set(tmp_path: Path) -> None:
    outside = tmp_path / "plain"
    outside.mkdir()
    environ = {**os.environ, "GIT_CEILING_DIRECTORIES": str(tmp_path)}
    with pytest.raises(UsageError) as raised:
        derive_tags({}, GitCommandReader(outside, environ=environ))
    assert "is not in a git repository" in raised.value.message
    assert "GIT_COMMIT" in raised.value.hint and "GIT_BRANCH" in raised.value.hint
    # GIT_COMMIT alone does not make up for the branch git cannot give
    with pytest.raises(UsageError, match="not in a git repository"):
        derive_tags({"GIT_COMMIT": COMMIT}, GitCommandReader(outside, environ=environ))


def test_reader_without_git_installed(repo: Path, tmp_path: Path) -> None:
    empty = tmp_path / "no-git-here"
    empty.mkdir()
    with pytest.raises(UsageError) as raised:
        derive_tags({}, GitCommandReader(repo, environ={"PATH": str(empty)}))
    assert "git is not installed" in raised.value.message and "GIT_BRANCH" in raised.value.hint


def test_git_is_run_without_the_credentials(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """A stand-in `git` first on PATH records its argv and environment: no shell, no secret."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "record"
    fake = bin_dir / "git"
    fake.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$*\" >> {record}\nenv >> {record}\n"
                    f"[ \"$2\" = HEAD ] && echo {COMMIT}\n"
                    "[ \"$2\" = --abbrev-ref ] && echo main\nexit 0\n")
    fake.chmod(0o755)
    workspace = tmp_path / "ws"
    workspace.mkdir()
    monkeypatch.chdir(workspace)
    code = jr_push(["--from-oci", str(tmp_path / "missing"), "--registry", "127.0.0.1:9",
                    "--tag-from", "git", "--password-env", "GIT_PUSH_TOKEN", "--username-env",
                    "GIT_PUSH_USER"],
                   {"PATH": f"{bin_dir}:{os.environ['PATH']}", "GIT_PUSH_USER": "ci-bot",
                    "GIT_PUSH_TOKEN": SECRET, "DOCKER_LOGIN_PASSWORD": SECRET,
                    "DOCKER_LOGIN_USERNAME": "ci-bot"})
    out, err = capsys.readouterr()
    assert "tags from git (git): main, sha-abcdef0, latest" in err
    assert code == ExitCode.INVALID_INPUT_FILE  # the layout is missing; the tags came first
    recorded = record.read_text()
    assert "rev-parse HEAD" in recorded and "rev-parse --abbrev-ref HEAD" in recorded
    assert "describe --tags --exact-match" in recorded and "LC_ALL=C" in recorded  # env recorded
    assert_absent(SECRET, recorded, out, err)


# -- through jr-push -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def archive(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    services.build_image(docker_client, "gittags/app:build", {"app.txt": b"tags from git\n"})
    path = tmp_path_factory.mktemp("gittags") / "app.tar"
    with open(path, "wb") as handle:
        for chunk in docker_client.images.get("gittags/app:build").save(named=True):
            handle.write(chunk)
    return path


@pytest.fixture
def in_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(repo)
    yield repo


def push_env(registry: services.Registry, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "DOCKER_LOGIN_USERNAME": registry.username or "",
            "DOCKER_LOGIN_PASSWORD": SECRET, "DOCKER_HOST": "unix:///nonexistent/docker.sock",
            **extra}


def test_a_release_build_pushes_exactly_the_derived_tags(
    archive: Path, registry: services.Registry, in_repo: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    git(in_repo, "tag", "v1.4.0")
    head = git(in_repo, "rev-parse", "HEAD")
    code = jr_push(["--from-archive", str(archive), "--registry", registry.host,
                    "--repository", "gittags/release", "--tag-from", "git"], push_env(registry))
    out, err = capsys.readouterr()
    assert_absent(SECRET, out, err)
    assert code == 0, err
    expected = ["1.4.0", "1.4", "1", "main", f"sha-{head[:7]}", "latest"]
    assert registry.tags("gittags/release") == sorted(expected)
    assert [line.split("@")[0] for line in out.splitlines()] == [
        f"{registry.host}/gittags/release:{tag}" for tag in expected]
    announced = f"jr-push: tags from git (git): {', '.join(expected)}"
    assert announced in err.splitlines()
    # printed before the push: ahead of the first progress line
    assert err.index(announced) == 0


def test_jenkins_variables_win_and_combine_with_tag(
    archive: Path, registry: services.Registry, in_repo: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    head = git(in_repo, "rev-parse", "HEAD")
    env = push_env(registry, GIT_BRANCH="origin/feature/JR-7", GIT_COMMIT=head)
    code = jr_push(["--from-archive", str(archive), "--registry", registry.host, "--name",
                    "gittags/branch", "--tag", "build-12", "--tag-from", "git"], env)
    out, err = capsys.readouterr()
    assert code == 0, err
    assert registry.tags("gittags/branch") == sorted(["build-12", "feature-jr-7", f"sha-{head[:7]}"])
    assert [line.split("@")[0].rsplit(":", 1)[1] for line in out.splitlines()] == [
        "build-12", "feature-jr-7", f"sha-{head[:7]}"]


def test_default_branch_option_and_its_misuse(
    archive: Path, registry: services.Registry, in_repo: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    git(in_repo, "checkout", "-q", "-b", "develop")
    head = git(in_repo, "rev-parse", "HEAD")
    code = jr_push(["--from-archive", str(archive), "--registry", registry.host, "--name",
                    "gittags/develop", "--tag-from", "git", "--default-branch", "develop"],
                   push_env(registry))
    assert code == 0, capsys.readouterr().err
    assert registry.tags("gittags/develop") == ["develop", "latest", f"sha-{head[:7]}"]
    capsys.readouterr()
    code = jr_push(["--from-archive", str(archive), "--registry", registry.host,
                    "--default-branch", "develop"], push_env(registry))
    assert code == ExitCode.USAGE
    assert "--default-branch applies to --tag-from git" in capsys.readouterr().err


def test_outside_a_repository_nothing_is_pushed(
    archive: Path, registry: services.Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plain = tmp_path / "workspace"
    plain.mkdir()
    monkeypatch.chdir(plain)
    env = push_env(registry, GIT_CEILING_DIRECTORIES=str(tmp_path))
    code = jr_push(["--from-archive", str(archive), "--registry", registry.host, "--name",
                    "gittags/none", "--tag-from", "git"], env)
    out, err = capsys.readouterr()
    assert code == ExitCode.USAGE
    assert out == "" and "Traceback" not in err
    assert "not in a git repository" in err and "GIT_COMMIT" in err
    assert registry.tags("gittags/none") == []

