"""What a Jenkins needs before the jobs we create can build: reachable, our token accepted, the crumb,
the plugins the rendered jobs use, and the registry credential in a store the job can see.

Used by `jr jenkins check` (every check, as a checklist) and by `jr jenkins job` (the credential
only, before anything is written). Only reads. Facts: jenkins-api.md §2.1 (auth), §2.2 (crumbs),
§2.6 (stores, scopes: a SYSTEM-scoped credential is invisible to builds), §7b (plugins).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass

from jenkins_registry.checklist import CheckResult, Status
from jenkins_registry.errors import AuthenticationError, JrError, PermissionDeniedError, UnreachableError
from jenkins_registry.jenkins_client import JenkinsClient
from jenkins_registry.jenkins_provision import item_path

log = logging.getLogger(__name__)

# Plugins the rendered jobs rely on (short name → what for), in the order a job uses them.
REQUIRED_PLUGINS: dict[str, str] = {
    "credentials": "stores the registry credential",
    "credentials-binding": "binds it as DOCKER_LOGIN_USERNAME/PASSWORD (withCredentials)",
    "git": "checks out the job's source",
    "workflow-job": "pipeline jobs",
    "workflow-cps": "runs the Jenkinsfile (inline or from git)",
    "pipeline-model-definition": "the declarative `pipeline { }` syntax",
    "workflow-durable-task-step": "the `sh` step",
    "workflow-basic-steps": "archiveArtifacts and withEnv",
}
FOLDER_PLUGIN = ("cloudbees-folder", "folders and their credential stores")


def required_plugins(*, folder: bool) -> dict[str, str]:
    """The plugins a job needs; cloudbees-folder only when the job sits in a folder."""
    return {**REQUIRED_PLUGINS, **dict([FOLDER_PLUGIN])} if folder else dict(REQUIRED_PLUGINS)


@dataclass(frozen=True, kw_only=True)
class CredentialLookup:
    """Where a credential id was found for a job: `store` names the store builds can use; `invisible`
    the store where it exists but builds cannot see it (SYSTEM scope)."""

    credential_id: str
    store: str | None = None
    invisible: str | None = None


def _store_path(folder: tuple[str, ...]) -> str:
    return (item_path(folder) + "credentials/store/folder/" if folder
            else "credentials/store/system/") + "domain/_/"


def _store_name(folder: tuple[str, ...]) -> str:
    return f"folder {'/'.join(folder)}" if folder else "the system store"


def find_credential(client: JenkinsClient, credential_id: str,
                    job_folder: tuple[str, ...]) -> CredentialLookup:
    """Look for *credential_id* where a build of a job in *job_folder* looks: the folder stores from
    the job's own folder outwards, then the system store. A store that does not exist (a folder yet
    to be created, or no credentials plugin) holds nothing."""
    invisible: str | None = None
    quoted = urllib.parse.quote(credential_id, safe="")
    for depth in range(len(job_folder), -1, -1):
        folder = job_folder[:depth]
        where = _store_name(folder)
        reply = client.get(_store_path(folder) + f"credential/{quoted}/config.xml",
                           what=f"read credential {credential_id} in {where}", allow=(404,))
        if reply.status == 404:
            continue
        if _scope(reply.text) == "SYSTEM":
            invisible = invisible or where  # usable by Jenkins itself, never bound into a build
            continue
        return CredentialLookup(credential_id=credential_id, store=where)
    return CredentialLookup(credential_id=credential_id, invisible=invisible)


def _scope(config_xml: str) -> str:
    try:
        root = ET.fromstring(config_xml.lstrip("\ufeff"))  # noqa: S314 - the Jenkins we were pointed at
    except ET.ParseError:
        return "GLOBAL"  # the credential exists; an unreadable scope is not ours to judge
    return (root.findtext("scope") or "GLOBAL").strip()


def credential_fix(credential_id: str, job_folder: tuple[str, ...]) -> str:
    where = f" --folder {'/'.join(job_folder)}" if job_folder else ""
    return (f"create it: `jr jenkins credential --id {credential_id} --username USER{where}` "
            "(the password from DOCKER_LOGIN_PASSWORD), or check the id")


def check_credential(client: JenkinsClient, credential_id: str, job_folder: tuple[str, ...]) -> CheckResult:
    name = f"credential {credential_id}"
    found = find_credential(client, credential_id, job_folder)
    if found.store is not None:
        return CheckResult(name=name, status=Status.OK,
                           summary=f"in {found.store}, visible to the job's builds")
    if found.invisible is not None:
        return CheckResult(
            name=name, status=Status.FAIL,
            summary=f"in {found.invisible} with SYSTEM scope, which builds cannot use",
            fix="re-create it with GLOBAL scope (`jr jenkins credential` does), or move it",
        )
    path = "the system store" + (f" or a folder store on {'/'.join(job_folder)}" if job_folder else "")
    return CheckResult(name=name, status=Status.FAIL, summary=f"not found in {path}",
                       fix=credential_fix(credential_id, job_folder))


def _check_login(client: JenkinsClient) -> tuple[CheckResult, CheckResult]:
    """Reachable, then the token: one request to /me (401 proves the server answers)."""
    reach, token = "Jenkins reachable", "token accepted"
    try:
        reply = client.get("me/api/json", what="read the current user (me/api/json)")
    except UnreachableError as exc:
        return (CheckResult(name=reach, status=Status.FAIL, summary=exc.message, fix=exc.hint),
                CheckResult(name=token, status=Status.SKIP, summary="Jenkins did not answer"))
    except AuthenticationError as exc:
        return (CheckResult(name=reach, status=Status.OK, summary=f"{client.url} answers"),
                CheckResult(name=token, status=Status.FAIL, summary=exc.message, fix=exc.hint))
    except PermissionDeniedError as exc:
        return (CheckResult(name=reach, status=Status.OK, summary=f"{client.url} answers"),
                CheckResult(name=token, status=Status.FAIL, summary=exc.message,
                            fix="give the user Overall/Read, or use another account"))
    version = reply.headers.get("X-Jenkins")
    try:
        user = json.loads(reply.text).get("id")
    except (ValueError, AttributeError):
        user = None
    answers = f"{client.url} answers" + (f" (Jenkins {version})" if version else "")
    return (CheckResult(name=reach, status=Status.OK, summary=answers),
            CheckResult(name=token, status=Status.OK, summary=f"logged in as {user or client.user}"))


def _check_crumb(client: JenkinsClient) -> CheckResult:
    name = "crumb"
    try:
        reply = client.get("crumbIssuer/api/json", what="fetch a crumb (crumbIssuer/api/json)", allow=(404,))
    except JrError as exc:
        return CheckResult(name=name, status=Status.FAIL, summary=exc.message, fix=exc.hint)
    if reply.status == 404:
        return CheckResult(name=name, status=Status.INFO,
                           summary="CSRF protection is off; no crumb is needed")
    return CheckResult(name=name, status=Status.OK, summary="issued (sent with every write)")


def _check_plugins(client: JenkinsClient, wanted: dict[str, str]) -> list[CheckResult]:
    try:
        reply = client.get("pluginManager/api/json?depth=1&tree=plugins[shortName,version,active,enabled]",
                           what="list the installed plugins (pluginManager/api/json)")
        plugins = {p["shortName"]: p for p in json.loads(reply.text)["plugins"]
                   if isinstance(p, dict) and isinstance(p.get("shortName"), str)}
    except JrError as exc:
        return [CheckResult(name="plugins", status=Status.WARN, summary=f"cannot list them: {exc.message}",
                            fix="check them by hand: " + ", ".join(wanted))]
    except (ValueError, KeyError, TypeError):
        return [CheckResult(name="plugins", status=Status.WARN, summary="the plugin list was not JSON",
                            fix="check them by hand: " + ", ".join(wanted))]
    results = []
    for short_name, purpose in wanted.items():
        name = f"plugin {short_name}"
        plugin = plugins.get(short_name)
        if plugin is None:
            results.append(CheckResult(
                name=name, status=Status.FAIL, summary=f"not installed ({purpose})",
                fix=f"Manage Jenkins → Plugins → Available plugins: install “{short_name}”, then restart"))
        elif not (plugin.get("active") and plugin.get("enabled")):
            results.append(CheckResult(
                name=name, status=Status.FAIL, summary=f"installed but not active ({purpose})",
                fix=f"Manage Jenkins → Plugins → Installed plugins: enable “{short_name}”, then restart"))
        else:
            results.append(CheckResult(name=name, status=Status.OK,
                                       summary=f"{plugin.get('version', '?')} ({purpose})"))
    return results


def check_jenkins(client: JenkinsClient, *, credential_ids: Sequence[str] = (),
                  job_folder: tuple[str, ...] = ()) -> tuple[CheckResult, ...]:
    """Every check in order; when Jenkins does not answer or refuses the token the rest is skipped."""
    reach, token = _check_login(client)
    results = [reach, token]
    later = ["crumb", "plugins", *(f"credential {c}" for c in credential_ids)]
    if token.status is not Status.OK:
        return (*results, *(CheckResult(name=n, status=Status.SKIP, summary="needs the login above")
                            for n in later))
    results.append(_check_crumb(client))
    results += _check_plugins(client, required_plugins(folder=bool(job_folder)))
    results += [check_credential(client, cid, job_folder) for cid in credential_ids]
    return tuple(results)
