"""Create or update Jenkins folders, jobs and credentials idempotently, reporting what changed.

Reads always go to Jenkins; writes go to a *writer*: `LiveWriter` sends them, `DryRunWriter` only
records them, so `--dry-run` runs exactly the same decisions (the way jenkins-job-builder's `test`
command reuses its builder).

Request budget (python-jenkins fetches the crumb once per connection, before the first request):
- job unchanged: 1 (GET config.xml); updated: 2 (+ POST config.xml); created: 2 or 3 (GET config.xml
  404, a folder check once per folder per run, POST createItem), plus one POST per missing folder;
- credential present: 2 (GET its config.xml, POST config.xml); absent: 3 (GET 404, GET the store's
  domain, POST createCredentials).

Jobs are compared semantically (see `canonical_xml`), so Jenkins' re-serialisation is not a change.
A credential that exists is always updated: Jenkins returns its password as `<secret-redacted/>`, so
whether the password changed cannot be known, and re-sending it is what makes a rotation take effect.
"""

from __future__ import annotations

import difflib
import json
import logging
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from jenkins_registry.errors import ConflictError, NotFoundError, ServerError, UsageError
from jenkins_registry.jenkins_client import JenkinsClient, Reply
from jenkins_registry.job_spec import MANAGED_MARKER, CredentialSpec

log = logging.getLogger(__name__)

FOLDER_CLASS = "com.cloudbees.hudson.plugins.folder.Folder"
# The minimal valid Folder (AbstractFolder.init() fills in views, icon and health metrics).
FOLDER_XML = f"""<?xml version='1.1' encoding='UTF-8'?>
<{FOLDER_CLASS}>
  <actions/>
  <description>{MANAGED_MARKER}: folder created for its jobs.</description>
  <properties/>
  <healthMetrics/>
</{FOLDER_CLASS}>
"""
# Elements of a credential whose value Jenkins never returns (they read back as <secret-redacted/>).
SECRET_FIELDS = frozenset({"password", "secret", "passphrase", "privateKey"})
JOB_TYPES = {"flow-definition": "pipeline job", "project": "freestyle job", FOLDER_CLASS: "folder"}

Action = Literal["created", "updated", "unchanged"]
Kind = Literal["job", "folder", "credential"]


@dataclass(frozen=True, kw_only=True)
class Change:
    """The outcome for one item: what it is, what was (or, in a dry run, would be) done, and why."""

    kind: Kind
    name: str  # a job or folder's full name (A/B/c), or a credential id
    action: Action
    where: str = ""  # for credentials: "the system store" or "folder A/B"
    detail: str = ""
    diff: str = ""  # jobs: unified diff of the canonical XML, Jenkins' on the left


class Writer(Protocol):
    """Where the write requests of a run go."""

    dry_run: bool

    def post_xml(self, path: str, xml: str, *, what: str, allow: Collection[int] = ()) -> int:
        """POST *xml* to *path* and return the status (a status in *allow* is not an error)."""
        ...


class LiveWriter:
    """Sends every write to Jenkins."""

    dry_run = False

    def __init__(self, client: JenkinsClient) -> None:
        self._client = client

    def post_xml(self, path: str, xml: str, *, what: str, allow: Collection[int] = ()) -> int:
        return self._client.post_xml(path, xml, what=what, allow=allow).status


@dataclass
class DryRunWriter:
    """Sends nothing: records what would be written (never the body) and answers as Jenkins would
    on success."""

    dry_run = True
    planned: list[str] = field(default_factory=list)

    def post_xml(self, path: str, xml: str, *, what: str, allow: Collection[int] = ()) -> int:
        self.planned.append(what)
        log.debug("dry run: would POST %s (%s)", path, what)
        return 200


def split_folder(folder: str | None) -> tuple[str, ...]:
    """`A/B` → ("A", "B"); None or "" → (). Empty components (`A//B`, a leading `/`) are refused."""
    if not folder:
        return ()
    parts = tuple(folder.split("/"))
    if any(not p.strip() for p in parts):
        raise UsageError(f"The folder path {folder!r} has an empty component.",
                         hint="Write nested folders as A/B, without leading, trailing or double slashes.")
    return parts


def item_path(parts: Sequence[str]) -> str:
    """The URL path of an item relative to the Jenkins root: ("A", "b") → `job/A/job/b/`."""
    return "".join(f"job/{urllib.parse.quote(p, safe='')}/" for p in parts)


# --------------------------------------------------------------------------------------------------
# Comparing job XML


def _parse(text: str, what: str) -> ET.Element:
    try:
        # Our own rendered XML, or the config.xml of the Jenkins we were pointed at; ElementTree does
        # not resolve external entities and expat (>= 2.4.1) limits entity expansion.
        return ET.fromstring(text.lstrip("\ufeff"))  # noqa: S314
    except ET.ParseError as exc:
        raise ServerError(f"The {what} is not well-formed XML ({exc}).",
                          hint="Check the item's config.xml in Jenkins; re-run with --debug.") from exc


def _normalize(elem: ET.Element, depth: int = 0) -> None:
    elem.attrib.pop("plugin", None)  # written by Jenkins, never read back
    children = list(elem)
    if depth == 0:
        for child in children:
            if child.tag == "actions":
                # Run-time state Jenkins keeps itself (e.g. the declarative pipeline's actions added
                # after the first build); not configuration we own.
                for action in list(child):
                    child.remove(action)
    if children:
        elem.text = (elem.text or "").strip() or None
    for child in elem:
        child.tail = None
        _normalize(child, depth + 1)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render(elem: ET.Element, depth: int, out: list[str]) -> None:
    attrs = "".join(f' {k}="{_escape(v).replace(chr(34), "&quot;")}"'
                    for k, v in sorted(elem.attrib.items()))
    pad = "  " * depth
    if len(elem):
        out.append(f"{pad}<{elem.tag}{attrs}>" + (_escape(elem.text) if elem.text else ""))
        for child in elem:
            _render(child, depth + 1, out)
        out.append(f"{pad}</{elem.tag}>")
    elif elem.text:
        out.append(f"{pad}<{elem.tag}{attrs}>{_escape(elem.text)}</{elem.tag}>")
    else:
        out.append(f"{pad}<{elem.tag}{attrs}/>")


def canonical_xml(text: str, what: str = "job configuration") -> str:
    """A job config in a canonical text form: equal for every way Jenkins writes the same config.

    Ignored: the XML declaration (Jenkins answers `version="1.1"`), indentation, `<x/>` vs `<x></x>`,
    attribute order and quoting, entity spelling (`&apos;` vs `'`), `plugin="…"` attributes, and the
    content of the top-level `<actions>`. Leaf text is compared exactly (scripts keep their spaces).
    """
    root = _parse(text, what)
    _normalize(root)
    lines: list[str] = []
    _render(root, 0, lines)
    return "\n".join(lines) + "\n"


def xml_diff(current: str, desired: str, name: str) -> str:
    return "".join(
        line if line.endswith("\n") else line + "\n"
        for line in difflib.unified_diff(current.splitlines(keepends=True), desired.splitlines(keepends=True),
                                         fromfile=f"{name} (in Jenkins)", tofile=f"{name} (wanted)")
    )


def _is_owned(root: ET.Element) -> bool:
    return MANAGED_MARKER in (root.findtext("description") or "")


# --------------------------------------------------------------------------------------------------
# Provisioning


class Provisioner:
    """Applies jobs and credentials through one client; remembers the folders it has seen in a run."""

    def __init__(self, client: JenkinsClient, writer: Writer) -> None:
        self._client = client
        self._writer = writer
        self._folders: set[tuple[str, ...]] = set()  # verified or created (planned, in a dry run)

    # -- folders --------------------------------------------------------------------------------------
    def _folder_state(self, parts: tuple[str, ...]) -> bool:
        """True when the folder exists; False when nothing is there; UsageError for a non-folder."""
        name = "/".join(parts)
        reply = self._client.get(item_path(parts) + "api/json?tree=_class", what=f"read folder {name}",
                                 allow=(404,))
        if reply.status == 404:
            return False
        item_class = _json_class(reply)
        if item_class != FOLDER_CLASS:
            raise UsageError(f"{name!r} on Jenkins is a {item_class or 'item of unknown type'}, "
                             "not a folder.",
                             hint="Choose another --folder (a Folder of the cloudbees-folder plugin).")
        return True

    def ensure_folders(self, parts: tuple[str, ...]) -> list[Change]:
        """Make sure folder *parts* and its parents exist, creating the missing ones top-down."""
        if not parts or parts in self._folders:
            return []
        if self._folder_state(parts):  # the usual case: one request
            self._folders.update(parts[:i] for i in range(1, len(parts) + 1))
            return []
        changes: list[Change] = []
        parent_missing = False
        for i in range(1, len(parts) + 1):
            prefix = parts[:i]
            if prefix in self._folders:
                continue
            if i < len(parts) and not parent_missing and self._folder_state(prefix):
                self._folders.add(prefix)
                continue
            parent_missing = True
            name = "/".join(prefix)
            self._writer.post_xml(_create_item_path(prefix), FOLDER_XML, what=f"create folder {name}")
            self._folders.add(prefix)
            log.debug("folder %s: %s", name, "would be created" if self._writer.dry_run else "created")
            changes.append(Change(kind="folder", name=name, action="created"))
        return changes

    # -- jobs -----------------------------------------------------------------------------------------
    def apply_job(self, parts: tuple[str, ...], xml: str, *, force: bool = False) -> list[Change]:
        """Create job *parts* (folder path + name) from *xml*, or update it when it differs.

        Returns the folders created (if any) followed by the job's own Change. Raises ConflictError for
        a job this tool does not own (no MANAGED_MARKER in its description) unless *force*, and for a
        job of another type (Jenkins cannot change a job's class in place).
        """
        if not parts:
            raise UsageError("No job name given.", hint="Pass --name NAME.")
        name = "/".join(parts)
        desired = canonical_xml(xml, "rendered job configuration")
        reply = self._client.get(item_path(parts) + "config.xml", what=f"read job {name}", allow=(404,))
        if reply.status == 404:
            changes = self.ensure_folders(parts[:-1])
            self._writer.post_xml(_create_item_path(parts), xml, what=f"create job {name}")
            created = Change(kind="job", name=name, action="created",
                             diff=self._client.redact(xml_diff("", desired, name)))
            return [*changes, created]
        self._folders.update(parts[:i] for i in range(1, len(parts)))
        current_root = _parse(reply.text, f"config.xml of job {name}")
        current = canonical_xml(reply.text, f"config.xml of job {name}")
        if current == desired:
            return [Change(kind="job", name=name, action="unchanged")]
        wanted_root = _parse(xml, "rendered job configuration")
        if current_root.tag != wanted_root.tag:
            have = JOB_TYPES.get(current_root.tag, current_root.tag)
            want = JOB_TYPES.get(wanted_root.tag, wanted_root.tag)
            raise ConflictError(
                f"{name} on Jenkins is a {have}, not a {want}; Jenkins cannot change an item's type "
                "in place.",
                hint="Delete the job in Jenkins first, or choose another --name.",
            )
        if not _is_owned(current_root):
            if not force:
                raise ConflictError(
                    f"Job {name} exists on Jenkins and was not created by jenkins-registry (its "
                    f"description lacks “{MANAGED_MARKER}”).",
                    hint="Pass --force to replace its configuration with ours, or choose another --name.",
                )
            log.warning("job %s: taking over a job jenkins-registry did not create (--force)", name)
        self._writer.post_xml(item_path(parts) + "config.xml", xml, what=f"update job {name}")
        return [Change(kind="job", name=name, action="updated",
                       diff=self._client.redact(xml_diff(current, desired, name)))]

    # -- credentials ----------------------------------------------------------------------------------
    def apply_credential(self, spec: CredentialSpec, xml: str, *, folder: tuple[str, ...] = ()) -> Change:
        """Create the credential *spec* (rendered as *xml*) in the system store, or in *folder*'s store;
        when it exists, update it in place. Never creates a duplicate."""
        self._client.remember_secret(spec.password)
        if folder and spec.scope != "GLOBAL":
            raise UsageError(
                f"A folder's credential store only offers GLOBAL scope; {spec.scope} credentials there "
                "are invisible to builds.",
                hint="Use GLOBAL scope, or put the credential in the system store (no --folder).",
            )
        where = f"folder {'/'.join(folder)}" if folder else "the system store"
        store = item_path(folder) + "credentials/store/folder/" if folder else "credentials/store/system/"
        domain = store + "domain/_/"
        config = domain + "credential/" + urllib.parse.quote(spec.credential_id, safe="") + "/config.xml"
        cid = spec.credential_id
        reply = self._client.get(config, what=f"read credential {cid} in {where}", allow=(404,))
        if reply.status == 200:
            return self._update_credential(cid, where, config, xml, reply.text)
        # Absent, or no store at all: tell the two apart before creating.
        if self._client.get(domain + "api/json?tree=_class", what=f"read the credential store of {where}",
                            allow=(404,)).status == 404:
            raise self._missing_store(folder)
        status = self._writer.post_xml(domain + "createCredentials", xml,
                                       what=f"create credential {cid} in {where}", allow=(409,))
        if status == 409:  # created meanwhile by someone else: the id exists, so update it in place
            log.info("credential %s appeared in %s meanwhile; updating it", cid, where)
            return self._update_credential(cid, where, config, xml, None)
        return Change(kind="credential", name=cid, action="created", where=where)

    def _update_credential(self, cid: str, where: str, config: str, xml: str, current: str | None) -> Change:
        wanted = _credential_fields(_parse(xml, "rendered credential"))
        changed: list[str] = []
        if current is not None:
            have = _credential_fields(_parse(current, f"config.xml of credential {cid}"))
            changed = sorted(k for k in wanted.keys() | have.keys() if wanted.get(k) != have.get(k))
        self._writer.post_xml(config, xml, what=f"update credential {cid} in {where}")
        detail = (f"changed: {', '.join(changed)}; password re-sent" if changed
                  else "password re-sent (Jenkins never returns it); other fields unchanged")
        return Change(kind="credential", name=cid, action="updated", where=where, detail=detail)

    def _missing_store(self, folder: tuple[str, ...]) -> NotFoundError | UsageError:
        plugin_hint = ("Install the Credentials plugin (Manage Jenkins → Plugins → Available plugins: "
                       "“Credentials”), and the Folders plugin for folder stores, then run this again.")
        if folder and not self._folder_state(folder):
            return NotFoundError(
                f"Folder {'/'.join(folder)} does not exist on Jenkins at {self._client.url}.",
                hint="Create the folder first (`jr jenkins job --folder …` creates folders), "
                "or check --folder.")
        store = f"folder {'/'.join(folder)}" if folder else "the Jenkins root"
        return NotFoundError(f"Jenkins at {self._client.url} has no credential store for {store} "
                             "(HTTP 404 on credentials/store/…): the Credentials plugin is missing.",
                             hint=plugin_hint)


def _create_item_path(parts: tuple[str, ...]) -> str:
    return item_path(parts[:-1]) + "createItem?name=" + urllib.parse.quote(parts[-1], safe="")


def _credential_fields(root: ET.Element) -> dict[str, str]:
    """The non-secret fields of a credential (plus its type), for comparison and reporting."""
    fields = {"type": root.tag}
    for child in root:
        if child.tag not in SECRET_FIELDS:
            fields[child.tag] = (child.text or "").strip()
    return fields


def _json_class(reply: Reply) -> str | None:
    try:
        value = json.loads(reply.text).get("_class")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None
