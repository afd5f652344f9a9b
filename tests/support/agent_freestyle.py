"""A freestyle build (`<project>`, spec §3c) as the agent harness runs it.

Order as AbstractBuild runs it: SCM checkout, build wrappers set up (credential bindings), builders in
order until one fails, publishers (which run after a failure too), "Finished: RESULT".
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass

from tests.support.agent_build import (
    Bound,
    Build,
    NotModelledError,
    StepError,
    children_check,
    job_properties,
    new_freestyle_script,
    removed_after,
    text_of,
)
from tests.support.agent_git import checkout, parse_git_scm

PROJECT_ELEMENTS = (
    "actions", "description", "keepDependencies", "properties", "scm", "canRoam", "assignedNode", "disabled",
    "blockBuildWhenDownstreamBuilding", "blockBuildWhenUpstreamBuilding", "triggers", "concurrentBuild",
    "builders", "publishers", "buildWrappers", "quietPeriod", "scmCheckoutRetryCount", "logRotator",
    "displayName", "authToken",
)
SECRET_BUILD_WRAPPER = "org.jenkinsci.plugins.credentialsbinding.impl.SecretBuildWrapper"
BINDINGS = {  # binding class → (kind, its variable fields)
    "org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordMultiBinding":
        ("usernamePassword", ("usernameVariable", "passwordVariable")),
    "org.jenkinsci.plugins.credentialsbinding.impl.StringBinding": ("string", ("variable",)),
    "org.jenkinsci.plugins.credentialsbinding.impl.UsernamePasswordBinding":
        ("usernameColonPassword", ("variable",)),
}
SHELL = "hudson.tasks.Shell"
ARTIFACT_ARCHIVER = "hudson.tasks.ArtifactArchiver"


@dataclass(frozen=True)
class _ShellStep:
    command: str
    unstable_return: int | None


@dataclass(frozen=True)
class _Archiver:
    artifacts: str
    excludes: str | None
    allow_empty: bool
    only_if_successful: bool
    case_sensitive: bool
    default_excludes: bool


def _label(root: ET.Element) -> str | None:
    """AbstractProject.getAssignedLabel: none when the job may roam, else `<assignedNode>`."""
    can_roam = text_of(root, "canRoam")
    assigned = text_of(root, "assignedNode") or None
    if can_roam == "true":
        return None
    if can_roam is None and assigned is None:
        raise NotModelledError("a freestyle job without <canRoam> or <assignedNode> (where Jenkins runs "
                               "it is not established here)")
    return assigned if assigned is not None else "built-in"


def _bindings(root: ET.Element) -> list[dict[str, str | None]]:
    wrappers = root.find("buildWrappers")
    specs: list[dict[str, str | None]] = []
    for wrapper in [] if wrappers is None else list(wrappers):
        if wrapper.tag != SECRET_BUILD_WRAPPER:
            raise NotModelledError(f"the build wrapper {wrapper.tag}")
        children_check(wrapper, ("bindings",), "SecretBuildWrapper")
        found = wrapper.find("bindings")
        for binding in [] if found is None else list(found):
            if binding.tag not in BINDINGS:
                raise NotModelledError(f"the binding {binding.tag}")
            kind, variables = BINDINGS[binding.tag]
            children_check(binding, ("credentialsId", *variables), binding.tag)
            specs.append({"kind": kind, "credentialsId": text_of(binding, "credentialsId"),
                          **{v: text_of(binding, v) for v in variables}})
    return specs


def _builders(root: ET.Element) -> list[_ShellStep]:
    builders = root.find("builders")
    steps = []
    for builder in [] if builders is None else list(builders):
        if builder.tag != SHELL:
            raise NotModelledError(f"the builder {builder.tag}")
        children_check(builder, ("command", "configuredLocalRules", "unstableReturn"), SHELL)
        unstable = text_of(builder, "unstableReturn")
        # The command is kept verbatim: Jenkins runs the text as written (only CRLF becomes LF).
        steps.append(_ShellStep(command=builder.findtext("command") or "",
                                unstable_return=int(unstable) if unstable else None))
    return steps


def _publishers(root: ET.Element) -> list[_Archiver]:
    publishers = root.find("publishers")
    found = []
    for publisher in [] if publishers is None else list(publishers):
        if publisher.tag != ARTIFACT_ARCHIVER:
            raise NotModelledError(f"the publisher {publisher.tag}")
        children_check(publisher, ("artifacts", "excludes", "allowEmptyArchive", "onlyIfSuccessful",
                                   "fingerprint", "defaultExcludes", "caseSensitive", "followSymlinks"),
                       ARTIFACT_ARCHIVER)
        found.append(_Archiver(
            artifacts=text_of(publisher, "artifacts") or "", excludes=text_of(publisher, "excludes") or None,
            allow_empty=text_of(publisher, "allowEmptyArchive") == "true",
            only_if_successful=text_of(publisher, "onlyIfSuccessful") == "true",
            case_sensitive=text_of(publisher, "caseSensitive", "true") != "false",
            default_excludes=text_of(publisher, "defaultExcludes", "true") != "false"))
    return found


def _run_shell(build: Build, step: _ShellStep, env: dict[str, str]) -> str:
    """hudson.tasks.Shell: the command in a WORKSPACE@tmp file, `/bin/sh -xe FILE` or its `#!` line."""
    with removed_after(new_freestyle_script(build.workspace, step.command)) as script:
        if step.command.startswith("#!"):
            first_line = step.command.split("\n", 1)[0][2:].strip()
            argv = [*first_line.split(), str(script)]
        else:
            argv = ["/bin/sh", "-xe", str(script)]
        build.say(f"[{build.workspace.name}] $ {' '.join(argv)}")
        status, _ = build.run_process(argv, cwd=build.workspace, env=env)
    if status == 0:
        return "SUCCESS"
    if step.unstable_return is not None and status == step.unstable_return:
        build.say("Build step 'Execute shell' marked build as unstable")
        return "UNSTABLE"
    build.say("Build step 'Execute shell' marked build as failure")
    return "FAILURE"


def run_freestyle(build: Build, root: ET.Element) -> str:
    """Run the freestyle *root* (a parsed config.xml); returns the build's result."""
    children_check(root, PROJECT_ELEMENTS, "a freestyle project")
    job_properties(root)
    scm = root.find("scm")
    source = None
    if scm is not None and scm.get("class") != "hudson.scm.NullSCM":
        source = parse_git_scm(scm)
    bindings = _bindings(root)
    builders = _builders(root)
    publishers = _publishers(root)
    if text_of(root, "scmCheckoutRetryCount", "0") not in ("0", ""):
        raise NotModelledError("scmCheckoutRetryCount")
    build.require_label(_label(root))
    if text_of(root, "concurrentBuild") != "true":
        build.hold_job_lock()

    build.say(f"Building remotely on {build.node_name} in workspace {build.workspace}")
    build.workspace.mkdir(parents=True, exist_ok=True)
    env = {**build.base_env(), **build.node_env()}
    status = "SUCCESS"
    try:
        if source is not None:
            env.update(checkout(build, source, build.workspace))
        build.result_env = dict(env)
        bound = build.bind(bindings) if bindings else Bound()
        step_env = {**env, **bound.public, **bound.secret}
        for step in builders:
            outcome = _run_shell(build, step, step_env)
            status = outcome if outcome != "SUCCESS" else status
            if outcome == "FAILURE":
                break
    except StepError as exc:
        build.say(f"ERROR: {exc}")
        status = "FAILURE"
    build.result_env = build.result_env or dict(env)
    for archiver in publishers:
        if archiver.only_if_successful and status != "SUCCESS":
            continue
        try:
            build.archive(build.workspace, archiver.artifacts, excludes=archiver.excludes,
                          allow_empty=archiver.allow_empty, case_sensitive=archiver.case_sensitive,
                          default_excludes=archiver.default_excludes)
        except StepError as exc:
            build.say(f"ERROR: Step \u2018Archive the artifacts\u2019 failed: {exc}")
            status = "FAILURE"
    return status
