"""What every `--help` ends with, and the environment variables the tool reads, in one place.

Each command path (`jr-push`, `jr render jenkinsfile`, `jr jenkins job`, …) has its EXAMPLES and
the exit codes it can return; `epilog(path)` renders both, the codes with their meanings from
`EXIT_CODE_MEANINGS`, which covers every `errors.ExitCode` (a test keeps it so). A command group
(`jr`, `jr render`, …) shows its own examples, or else the first of each subcommand, and every
code its subcommands can return. tests/test_cli_help.py parses every example with the parser it
belongs to, so an example cannot outlive an option.

`ENVIRONMENT` lists every variable the tool reads (`jr help environment`); a test greps the
package for the variables it reads and checks each is listed.

Imported by every parser's construction: constants only, nothing heavy.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from jenkins_registry.errors import ExitCode


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Wrap a paragraph written as one line (a description), keep the lines of any other (the
    epilog's sections, examples and exit codes) as written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        import textwrap  # only when a help is shown

        paragraphs = []
        for paragraph in text.split("\n\n"):
            if "\n" in paragraph.strip("\n"):
                paragraphs.append("".join(indent + line for line in paragraph.splitlines(keepends=True)))
            else:
                paragraphs.append(textwrap.fill(paragraph.strip("\n"), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)

# One line per exit code, as ExitCode's comments define them.
EXIT_CODE_MEANINGS: Mapping[ExitCode, str] = {
    ExitCode.OK: "done (or nothing to do)",
    ExitCode.FAILURE: "unexpected error, a bug: re-run with --debug and report the traceback",
    ExitCode.USAGE: "bad option or invalid value; nothing was changed",
    ExitCode.CREDENTIALS: "a secret is missing, or the OS keyring cannot be used",
    ExitCode.AUTH: "the registry, Jenkins or Nexus rejected the credentials (401)",
    ExitCode.PERMISSION: "not allowed: authenticated but refused (403, denied, no crumb), or a "
    "file or process this user may not touch",
    ExitCode.NOT_FOUND: "a local image, Jenkins folder, credential store or repository does not exist",
    ExitCode.UNREACHABLE: "the registry, Jenkins or Nexus cannot be reached (DNS, refused, timeout)",
    ExitCode.ENGINE: "the Docker engine cannot be reached or failed",
    ExitCode.INSECURE: "the registry speaks plain HTTP where HTTPS is expected (insecure-registries, "
    "--insecure), or its certificate is not trusted",
    ExitCode.REGISTRY: "the registry refused or failed the request for another reason",
    ExitCode.CONFLICT: "a Jenkins job exists that jenkins-registry does not manage (use --force)",
    ExitCode.INVALID_INPUT_FILE: "a corrupt archive, an invalid daemon.json, an unreadable file or "
    "no room for a temporary file; nothing was changed",
    ExitCode.CHECK_FAILED: "a check found something that blocks a push or a job",
    ExitCode.SERVER: "Jenkins or Nexus answered with an unexpected server error",
    ExitCode.MISSING_PACKAGE: "a package this installation lacks (the single-file jr-push.pyz): "
    "install the full tool",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C, or SIGTERM as when Jenkins aborts a build)",
}

# Every command can end in these.
ALWAYS = (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE, ExitCode.INTERRUPTED)
# The commands that need a package the single-file jr-push lacks (cli/main.py's COMMAND_NEEDS).
NEEDS_FULL_INSTALL = ("jr render", "jr jenkins", "jr login", "jr logout")


class Example(NamedTuple):
    """A shell line running the command (after `sudo`, variable assignments or a pipe), and what
    it does."""

    command: str
    note: str


class CommandHelp(NamedTuple):
    examples: tuple[Example, ...]
    exit_codes: tuple[ExitCode, ...] = ()  # besides ALWAYS
    details: Mapping[ExitCode, str] = {}  # what a code means for this command, where it says more


REGISTRY = "10.211.55.6:8082"
_SUDO_JR = 'sudo "$(command -v jr)"'

_E = Example
_C = ExitCode

_DAEMON_JSON_CODES: Mapping[ExitCode, str] = {
    ExitCode.PERMISSION: "not allowed to write daemon.json or signal dockerd: run it as root (above)",
    ExitCode.ENGINE: "--reload: the engine cannot be reached, or never showed the change",
    ExitCode.INVALID_INPUT_FILE: "daemon.json is invalid or cannot be written; nothing was changed",
}
_JENKINS_CODES: Mapping[ExitCode, str] = {
    ExitCode.NOT_FOUND: "a folder, a credential store or the job's credential does not exist",
    ExitCode.UNREACHABLE: "Jenkins cannot be reached",
    ExitCode.AUTH: "Jenkins rejected the user or token (401)",
}

HELP: Mapping[str, CommandHelp] = {
    "jr-push": CommandHelp((
        _E(f"jr-push --image jenkins-test --registry {REGISTRY} --tag latest --tag 42",
           "push the local image jenkins-test as jenkins-test:latest and :42"),
        _E(f"jr-push --image app:build-7 --repository team/app --registry {REGISTRY} --tag 1.0 "
           "--digest-file image.digest", "push under another path; write the digest to a file"),
        _E(f"jr-push --image jenkins-test --registry {REGISTRY} --tag-from git",
           "tag from the branch, commit or tag the build checked out"),
        _E(f"jr-push --from-archive app.tar --repository team/app --registry {REGISTRY} --tag 1.0",
           "push a `docker save` archive without a Docker engine"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.NOT_FOUND, _C.UNREACHABLE, _C.ENGINE, _C.INSECURE,
        _C.REGISTRY, _C.INVALID_INPUT_FILE)),

    "jr": CommandHelp((
        _E(f"jr doctor --registry {REGISTRY}", "find out why a push to the registry fails"),
        _E(f"jr render jenkinsfile --registry {REGISTRY} --repository jenkins-test --credentials-id "
           "docker-registry-login --output Jenkinsfile", "write the Jenkinsfile to commit"),
        _E("jr help environment", "list the environment variables jr and jr-push read"),
    )),

    "jr help": CommandHelp((
        _E("jr help", "list the help topics"),
        _E("jr help environment", "every environment variable the tool reads, with its default"),
        _E("jr help exit-codes", "every exit code and what it means"),
    )),

    "jr render": CommandHelp(()),
    "jr render jenkinsfile": CommandHelp((
        _E(f"jr render jenkinsfile --registry {REGISTRY} --repository jenkins-test --credentials-id "
           "docker-registry-login --tag latest --tag '${BUILD_NUMBER}' --output Jenkinsfile",
           "build, push :latest and the build number, remove the local tags"),
        _E(f"jr render jenkinsfile --registry {REGISTRY} --repository team/app --image app "
           "--credentials-id docker-registry-login --tag-from git",
           "build the local image app, push it as team/app with the tags jr-push takes from git"),
        _E(f"jr render jenkinsfile --registry {REGISTRY} --repository team/app --image app:1.0 "
           "--no-build --runner docker --credentials-id docker-registry-login --agent docker",
           "push an image already on the agent with plain docker commands"),
    )),
    "jr render shell": CommandHelp((
        _E(f"jr render shell --registry {REGISTRY} --repository jenkins-test --tag '${{BUILD_NUMBER}}'",
           "the freestyle 'Execute shell' step: build and push"),
        _E(f"JR_REGISTRY={REGISTRY} jr render shell --repository team/app --image app:latest "
           "--no-build --runner docker --output push.sh", "push what is on the agent, without jr-push"),
    )),
    "jr render job": CommandHelp((
        _E(f"jr render job --type pipeline --registry {REGISTRY} --repository jenkins-test "
           "--credentials-id docker-registry-login --scm-url https://git.example.com/team/app.git "
           "--output config.xml", "a pipeline job that checks out, builds and pushes"),
        _E(f"jr render job --type freestyle --registry {REGISTRY} --repository jenkins-test "
           "--credentials-id docker-registry-login --no-build",
           "a freestyle job pushing an image already on the agent"),
        _E("jr render job --type pipeline --scm-url https://git.example.com/team/app.git "
           "--script-path Jenkinsfile", "a job running the repository's own Jenkinsfile"),
    )),
    "jr render casc": CommandHelp((
        _E("jr render casc --credentials-id docker-registry-login --username ci-bot --output "
           "registry.yaml", "JCasC for the credential; the password stays ${DOCKER_LOGIN_PASSWORD}"),
        _E("jr render casc --credentials-id docker-registry-login --username ci-bot --shared-library "
           "jr --library-url https://git.example.com/ci/jr-library.git",
           "also declare a global shared library"),
    )),
    "jr render shared-library": CommandHelp((
        _E(f"jr render shared-library --output jenkins-library --registry {REGISTRY} "
           "--credentials-id docker-registry-login",
           "write the library (vars/registryPush.groovy …) into a directory to commit"),
    ), (_C.CONFLICT,), {ExitCode.CONFLICT: "a file exists with other content (use --force)"}),

    "jr jenkins": CommandHelp(()),
    "jr jenkins credential": CommandHelp((
        _E("jr jenkins credential --id docker-registry-login --username ci-bot",
           "create or update the credential; the password from $DOCKER_LOGIN_PASSWORD"),
        _E("printf '%s' \"$REGISTRY_PASSWORD\" | jr jenkins credential --id docker-registry-login "
           "--username ci-bot --password-stdin", "the password from standard input"),
        _E(f"jr jenkins credential --id docker-registry-login --username ci-bot --registry {REGISTRY} "
           "--folder Team --dry-run", "the password `jr login` stored; a folder's store; only show"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.NOT_FOUND, _C.UNREACHABLE, _C.SERVER),
        _JENKINS_CODES),
    "jr jenkins job": CommandHelp((
        _E(f"jr jenkins job --name jenkins-test --type pipeline --registry {REGISTRY} --repository "
           "jenkins-test --credentials-id docker-registry-login --scm-url "
           "https://git.example.com/team/app.git --tag latest --tag '${BUILD_NUMBER}'",
           "create or update a pipeline job that builds and pushes"),
        _E(f"jr jenkins job --name app --folder Team --type freestyle --registry {REGISTRY} "
           "--repository team/app --credentials-id docker-registry-login --scm-url "
           "https://git.example.com/team/app.git --tag-from git --dry-run",
           "show the diff for a freestyle job in folder Team, tags from git"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.NOT_FOUND, _C.UNREACHABLE, _C.CONFLICT,
        _C.SERVER), _JENKINS_CODES),
    "jr jenkins check": CommandHelp((
        _E("jr jenkins check --credentials-id docker-registry-login --folder Team",
           "the plugins, the token, and the credential a job in Team would use"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.UNREACHABLE, _C.CHECK_FAILED, _C.SERVER),
        _JENKINS_CODES),

    "jr docker": CommandHelp(()),
    "jr docker insecure-registry": CommandHelp(()),
    "jr docker insecure-registry add": CommandHelp((
        _E(f"{_SUDO_JR} docker insecure-registry add {REGISTRY} --reload",
           "as root (sudo resets PATH, so name the jr of this venv or pipx install), and reload"),
        _E(f"jr docker insecure-registry add {REGISTRY} --daemon-json ./daemon.json",
           "edit another file"),
    ), (_C.PERMISSION, _C.ENGINE, _C.INVALID_INPUT_FILE), _DAEMON_JSON_CODES),
    "jr docker insecure-registry remove": CommandHelp((
        _E(f"{_SUDO_JR} docker insecure-registry remove {REGISTRY} --reload",
           "as root, and reload the engine"),
    ), (_C.PERMISSION, _C.ENGINE, _C.INVALID_INPUT_FILE), _DAEMON_JSON_CODES),
    "jr docker insecure-registry list": CommandHelp((
        _E("jr docker insecure-registry list", "print the entries of /etc/docker/daemon.json"),
    ), (_C.INVALID_INPUT_FILE,)),

    "jr login": CommandHelp((
        _E(f"jr login {REGISTRY} --username ci-bot", "prompt for the password, check it, store it"),
        _E(f"printf '%s' \"$PASSWORD\" | jr login {REGISTRY} -u ci-bot --password-stdin",
           "the password from standard input"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.UNREACHABLE, _C.INSECURE, _C.REGISTRY,
        _C.INVALID_INPUT_FILE)),
    "jr logout": CommandHelp((
        _E(f"jr logout {REGISTRY}", "remove the stored password"),
    ), (_C.CREDENTIALS,)),
    "jr doctor": CommandHelp((
        _E(f"jr doctor --registry {REGISTRY}", "every check from DNS to push permission"),
        _E(f"JR_REGISTRY={REGISTRY} jr doctor --image jenkins-test",
           "also look for the local image; check push permission on its path"),
        _E(f"jr doctor --registry {REGISTRY} --repository team/app",
           "check push permission on the path team/app"),
    ), (_C.INVALID_INPUT_FILE, _C.CHECK_FAILED),
        {ExitCode.CHECK_FAILED: "a check found something that blocks a push (the list says the fix)",
         ExitCode.INVALID_INPUT_FILE: "the CA bundle (REQUESTS_CA_BUNDLE) cannot be read"}),

    "jr nexus": CommandHelp(()),
    "jr nexus setup": CommandHelp((
        _E("jr nexus setup --url http://10.211.55.6:8081 --repository docker-hosted --http-port 8082 "
           "--user jenkins", "the docker hosted repository, the realm and the push account"),
        _E("jr nexus setup --url http://10.211.55.6:8081 --repository docker-hosted --http-port 8082 "
           "--admin-password-file admin.password --dry-run", "first run: only show what would change"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.NOT_FOUND, _C.UNREACHABLE, _C.INVALID_INPUT_FILE,
        _C.SERVER)),

    "jr registry": CommandHelp(()),
    "jr registry tag": CommandHelp((
        _E(f"jr registry tag {REGISTRY}/jenkins-test:42 stable 1.0",
           "add the tags stable and 1.0 to what :42 holds, without pulling"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.NOT_FOUND, _C.UNREACHABLE, _C.INSECURE,
        _C.REGISTRY)),
    "jr registry copy": CommandHelp((
        _E(f"jr registry copy {REGISTRY}/jenkins-test:42 {REGISTRY}/release/jenkins-test:1.0",
           "copy an image to another path"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.NOT_FOUND, _C.UNREACHABLE, _C.INSECURE,
        _C.REGISTRY)),
    "jr registry prune": CommandHelp((
        _E(f"jr registry prune {REGISTRY}/jenkins-test --keep 10 --keep-tag '^v[0-9]' "
           "--older-than 30", "show which tags would go: all but the newest 10 and v*"),
        _E(f"jr registry prune {REGISTRY}/jenkins-test --keep 10 --yes", "delete them"),
    ), (_C.CREDENTIALS, _C.AUTH, _C.PERMISSION, _C.NOT_FOUND, _C.UNREACHABLE, _C.INSECURE,
        _C.REGISTRY)),
}


def _children(path: str) -> list[str]:
    depth = len(path.split())
    return [other for other in HELP if other.startswith(path + " ") and len(other.split()) == depth + 1]


def examples(path: str) -> tuple[Example, ...]:
    """The examples of *path*: its own, else the first of each subcommand."""
    own = HELP[path].examples
    if own:
        return own
    return tuple(example for child in _children(path) for example in examples(child)[:1])


def _own_codes(path: str) -> set[ExitCode]:
    codes = set(ALWAYS) | set(HELP[path].exit_codes)
    if any(path == needs or path.startswith(needs + " ") for needs in NEEDS_FULL_INSTALL):
        codes.add(ExitCode.MISSING_PACKAGE)
    return codes


def exit_codes(path: str) -> tuple[ExitCode, ...]:
    """Every code *path* or one of its subcommands can return, in order."""
    codes = set(_own_codes(path))
    for other in HELP:
        if other.startswith(path + " "):
            codes |= _own_codes(other)
    return tuple(sorted(codes))


def exit_codes_epilog(codes: Iterable[ExitCode], details: Mapping[ExitCode, str] | None = None) -> str:
    """`exit codes:` and one line per code: its meaning from *details*, else EXIT_CODE_MEANINGS."""
    meanings = {**EXIT_CODE_MEANINGS, **(details or {})}
    lines = ["exit codes:"]
    lines += [f"  {int(code):<4} {meanings[code]}" for code in sorted(set(codes))]
    return "\n".join(lines) + "\n"


def examples_epilog(items: Iterable[Example]) -> str:
    lines = ["examples:"]
    for example in items:
        lines += [f"  # {example.note}", f"  {example.command}"]
    return "\n".join(lines) + "\n"


def epilog(path: str, preface: str = "") -> str:
    """The end of *path*'s --help: *preface* (the command's own notes), EXAMPLES, exit codes.
    Use it with `formatter_class=HelpFormatter` (or argparse.RawDescriptionHelpFormatter)."""
    parts = [preface.rstrip("\n") + "\n"] if preface.strip() else []
    parts += [examples_epilog(examples(path)), exit_codes_epilog(exit_codes(path), HELP[path].details)]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# The environment


class EnvironmentVariable(NamedTuple):
    name: str
    meaning: str  # with the default
    read_by: str


_REGISTRY_COMMANDS = ("jr-push, jr render, jr jenkins job, jr jenkins credential (keyring), jr login, "
                      "jr logout, jr doctor, jr docker insecure-registry add|remove, jr registry")
_HTTP_COMMANDS = "every request to a registry, Jenkins or Nexus (jr-push and jr)"

ENVIRONMENT: tuple[EnvironmentVariable, ...] = (
    EnvironmentVariable("JR_REGISTRY", "default for --registry (and for REGISTRY of jr login/logout, "
                        "the entry of jr docker insecure-registry add|remove); no default",
                        _REGISTRY_COMMANDS),
    EnvironmentVariable("JR_PUSH_VIA", "default for --via: auto, engine or export (default auto)",
                        "jr-push"),
    EnvironmentVariable("JR_KEEP_TAGS", "1 for --keep-tags; 0 or unset: the tags jr-push made are "
                        "removed", "jr-push"),
    EnvironmentVariable("JR_TIMEOUT", "default for --timeout, in seconds (default 3600)", "jr-push"),
    EnvironmentVariable("JR_REQUEST_TIMEOUT", "default for --request-timeout, in seconds "
                        "(default 120)", "jr-push"),
    EnvironmentVariable("DOCKER_LOGIN_USERNAME", "the registry user, as the Jenkins binding injects "
                        "it (another variable: --username-env)", "jr-push, jr doctor, jr registry"),
    EnvironmentVariable("DOCKER_LOGIN_PASSWORD", "the registry password (another variable: "
                        "--password-env); also the password of jr jenkins credential and of the "
                        "push account of jr nexus setup --user",
                        "jr-push, jr doctor, jr registry, jr jenkins credential, jr nexus setup"),
    EnvironmentVariable("DOCKER_HOST", "the Docker engine (default unix:///var/run/docker.sock)",
                        "jr-push --image, jr doctor, jr docker insecure-registry --reload"),
    EnvironmentVariable("DOCKER_TLS_VERIFY", "verify the engine's TLS certificate (as docker reads "
                        "it)", "the same as DOCKER_HOST"),
    EnvironmentVariable("DOCKER_CERT_PATH", "the engine's client certificates (as docker reads it)",
                        "the same as DOCKER_HOST"),
    EnvironmentVariable("TMPDIR", "where the temporary export of an image is written (default /tmp)",
                        "jr-push --via auto|export"),
    EnvironmentVariable("REQUESTS_CA_BUNDLE", "a PEM bundle of extra CA certificates (a registry, "
                        "Jenkins or Nexus with a private CA); no default", _HTTP_COMMANDS),
    EnvironmentVariable("SSL_CERT_FILE", "the CA bundle when REQUESTS_CA_BUNDLE is unset",
                        _HTTP_COMMANDS),
    EnvironmentVariable("HTTP_PROXY", "the http:// proxy for http:// requests (http_proxy too; "
                        "as Go and the Docker engine read it); no default", _HTTP_COMMANDS),
    EnvironmentVariable("HTTPS_PROXY", "the http:// proxy https:// requests are tunnelled through "
                        "(https_proxy too); no default", _HTTP_COMMANDS),
    EnvironmentVariable("NO_PROXY", "hosts, domains and CIDRs reached without the proxy, "
                        "comma-separated (no_proxy too); loopback never uses one", _HTTP_COMMANDS),
    EnvironmentVariable("GIT_BRANCH", "the branch the build checked out (Jenkins' git plugin), a "
                        "tag source", "jr-push --tag-from git"),
    EnvironmentVariable("BRANCH_NAME", "the branch of a multibranch build, a tag source",
                        "jr-push --tag-from git"),
    EnvironmentVariable("GIT_COMMIT", "the commit the build checked out, a tag source (the rendered "
                        "steps also label the image with it)", "jr-push --tag-from git"),
    EnvironmentVariable("TAG_NAME", "the git tag a tag build runs for, a tag source",
                        "jr-push --tag-from git"),
    EnvironmentVariable("JENKINS_URL", "the Jenkins base URL (--jenkins-url); with BUILD_NUMBER it "
                        "also means 'inside a build': never prompt", "jr jenkins; every prompt"),
    EnvironmentVariable("JENKINS_USER", "the Jenkins user (--jenkins-user)", "jr jenkins"),
    EnvironmentVariable("JENKINS_API_TOKEN", "the Jenkins API token (or password); else the OS "
                        "keyring, else a prompt", "jr jenkins"),
    EnvironmentVariable("BUILD_NUMBER", "set with JENKINS_URL: inside a Jenkins build, so never "
                        "prompt", "every prompt"),
    EnvironmentVariable("CI", "any value: never prompt", "every prompt"),
    EnvironmentVariable("NEXUS_USERNAME", "the Nexus admin user (default admin)", "jr nexus setup"),
    EnvironmentVariable("NEXUS_PASSWORD", "the Nexus admin password; else the OS keyring, "
                        "--admin-password-file or a prompt", "jr nexus setup"),
    EnvironmentVariable("PYTHON_KEYRING_BACKEND", "the OS keyring backend, e.g. "
                        "keyrings.alt.file.PlaintextKeyring on a headless agent",
                        "everything that reads or writes the keyring"),
)


def environment_text() -> str:
    """`jr help environment`: each variable, what it means (with its default), who reads it."""
    lines = ["Environment variables jr and jr-push read (an option, when given, wins):", ""]
    for variable in ENVIRONMENT:
        lines += [variable.name, f"    {variable.meaning}", f"    read by: {variable.read_by}"]
    lines += ["", "Besides these, --username-env and --password-env (jr-push), and --password-env "
              "(jr jenkins credential, jr nexus setup) name other variables to read a secret from."]
    return "\n".join(lines) + "\n"
