"""The push account of `jr nexus setup --user NAME`: a role holding the repository's docker view
privileges, and an active local Nexus user with that role, idempotently.

Facts (registry-notes.md §7; go-nexus-client `nexus3/pkg/security`, Nexus REST reference):
  * Nexus creates `nx-repository-view-docker-<repo>-<action>` for every docker repository; a push
    needs `add` (blobs, manifests), `edit` (overwrite a tag) and `read`; `browse` shows it in the UI;
  * a role is `{id, name, description, privileges, roles}`; a user is `{userId, firstName,
    lastName, emailAddress, status, roles}` plus `password` on create and `source` on update;
  * a password cannot be read back: it is checked with a request as the user and set again with
    change-password only when that request is refused.
The decisions are pure functions of what Nexus answered (`plan_role`, `plan_user`); the `ensure_*`
functions gather those facts, decide, and write only what differs (nothing in a dry run).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jenkins_registry.errors import UsageError
from jenkins_registry.nexus import NexusClient, Outcome, StepResult
from jenkins_registry.secret_types import Secret

PUSH_ACTIONS = ("browse", "read", "add", "edit")
LOCAL_SOURCE = "default"  # Nexus' own user store; LDAP or SAML users have other sources
ACTIVE = "active"
RESERVED_USERS = ("anonymous", "admin")
_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_user_id(text: str, *, admin: str) -> str:
    """A push account name: safe in a URL path and in Basic auth, not the admin or anonymous."""
    if not _USER_RE.match(text):
        raise UsageError(
            f"--user {text!r} is not a valid user name for the push account.",
            hint="Use 1-64 letters, digits, '.', '_' and '-', starting with a letter or digit "
            "(e.g. jenkins).",
        )
    if text.lower() in (*RESERVED_USERS, admin.lower()):
        raise UsageError(
            f"--user {text!r} is an administrative or built-in Nexus account; its password and "
            "roles are not for a push account.",
            hint="Name a separate account for Jenkins, e.g. --user jenkins.",
        )
    return text


@dataclass(frozen=True, kw_only=True)
class PushAccount:
    """Who pushes to which repository, and the password the account must have."""

    repository: str
    user_id: str
    password: Secret = field(repr=False)

    @property
    def role_id(self) -> str:
        return push_role_id(self.repository)


def push_role_id(repository: str) -> str:
    return f"jr-{repository}-push"


def push_privileges(repository: str) -> list[str]:
    return [f"nx-repository-view-docker-{repository}-{action}" for action in PUSH_ACTIONS]


def desired_role(repository: str) -> dict[str, Any]:
    """The role body this tool creates: a name and description saying what it is for."""
    return {
        "id": push_role_id(repository),
        "name": push_role_id(repository),
        "description": f"Push and pull docker images in {repository} "
        "(managed by jenkins-registry: jr nexus setup --user)",
        "privileges": push_privileges(repository),
        "roles": [],
    }


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What to do with one object: the outcome, the body to send (None: nothing), the reasons."""

    outcome: Outcome
    body: dict[str, Any] | None
    changes: list[str]


def plan_role(current: Mapping[str, Any] | None, wanted: Mapping[str, Any]) -> Plan:
    """Create the role, or add what is missing; privileges and roles someone added stay."""
    if current is None:
        return Plan(outcome=Outcome.CREATED, body=dict(wanted), changes=[])
    privileges = [str(p) for p in current.get("privileges") or []]
    missing = [p for p in wanted["privileges"] if p not in privileges]
    changes = [f"privileges + {', '.join(missing)}"] if missing else []
    for key in ("name", "description"):
        if current.get(key) != wanted[key]:
            changes.append(f"{key} {current.get(key)!r} -> {wanted[key]!r}")
    if not changes:
        return Plan(outcome=Outcome.UNCHANGED, body=None, changes=[])
    body = {"id": wanted["id"], "name": wanted["name"], "description": wanted["description"],
            "privileges": privileges + missing, "roles": list(current.get("roles") or [])}
    return Plan(outcome=Outcome.UPDATED, body=body, changes=changes)


def plan_user(current: Mapping[str, Any] | None, account: PushAccount) -> Plan:
    """Create the user with our role, or add our role and activate it; other roles stay."""
    if current is None:
        body = {"userId": account.user_id, "firstName": account.user_id,
                "lastName": f"push account for {account.repository}",
                # Nexus requires an address; .invalid (RFC 2606) says there is none to write to
                "emailAddress": f"{account.user_id}@example.invalid",
                "status": ACTIVE, "roles": [account.role_id]}
        return Plan(outcome=Outcome.CREATED, body=body, changes=[])
    source = current.get("source") or LOCAL_SOURCE
    if source != LOCAL_SOURCE or current.get("readOnly"):
        raise UsageError(
            f"Nexus user {account.user_id!r} comes from the {source} realm (read-only here): its "
            "password and roles cannot be set through Nexus.",
            hint="Choose another --user for a local push account, or manage this one in its "
            "directory.",
        )
    roles = [str(role) for role in current.get("roles") or []]
    changes = []
    if account.role_id not in roles:
        roles.append(account.role_id)
        changes.append(f"role + {account.role_id}")
    if current.get("status") != ACTIVE:
        changes.append(f"status {current.get('status')!r} -> {ACTIVE!r}")
    if not changes:
        return Plan(outcome=Outcome.UNCHANGED, body=None, changes=[])
    update: dict[str, Any] = {"userId": account.user_id, "firstName": current.get("firstName"),
            "lastName": current.get("lastName"), "emailAddress": current.get("emailAddress"),
            "source": LOCAL_SOURCE, "status": ACTIVE, "roles": roles}
    return Plan(outcome=Outcome.UPDATED, body=update, changes=changes)


def ensure_role(client: NexusClient, account: PushAccount, *, dry_run: bool) -> StepResult:
    wanted = desired_role(account.repository)
    plan = plan_role(client.get_role(account.role_id), wanted)
    if plan.body is not None and not dry_run:
        if plan.outcome is Outcome.CREATED:
            client.create_role(plan.body)
        else:
            client.update_role(account.role_id, plan.body)
    detail = ", ".join(plan.changes) or (
        f"privileges nx-repository-view-docker-{account.repository}-{{{','.join(PUSH_ACTIONS)}}}")
    return StepResult(step=f"role {account.role_id}", outcome=plan.outcome, dry_run=dry_run,
                      detail=detail)


def ensure_user(client: NexusClient, account: PushAccount, *, dry_run: bool) -> list[StepResult]:
    """The user step and the password step (a password is written only when it differs)."""
    current = client.find_user(account.user_id)
    plan = plan_user(current, account)
    user_step = f"user {account.user_id}"
    password_step = f"password of {account.user_id}"
    if plan.outcome is Outcome.CREATED:
        if not dry_run:
            client.create_user(plan.body or {}, account.password)
        return [
            StepResult(step=user_step, outcome=Outcome.CREATED, dry_run=dry_run,
                       detail=f"local, active, role {account.role_id}"),
            StepResult(step=password_step, outcome=Outcome.CREATED, dry_run=dry_run,
                       detail="set with the new user"),
        ]
    if plan.body is not None and not dry_run:
        client.update_user(account.user_id, plan.body)
    roles = ", ".join(str(role) for role in (plan.body or current or {}).get("roles") or [])
    steps = [StepResult(step=user_step, outcome=plan.outcome, dry_run=dry_run,
                        detail=", ".join(plan.changes) or f"active, roles {roles}")]
    if dry_run and current is not None and current.get("status") != ACTIVE:
        # Nexus refuses an inactive user whatever the password: no way to compare before.
        steps.append(StepResult(step=password_step, outcome=Outcome.UPDATED, dry_run=True,
                                detail="cannot be checked while the user is not active"))
    elif client.accepts_password(account.user_id, account.password):
        steps.append(StepResult(step=password_step, outcome=Outcome.UNCHANGED,
                                detail="Nexus accepts it"))
    else:
        if not dry_run:
            client.change_password(account.user_id, account.password)
        steps.append(StepResult(step=password_step, outcome=Outcome.UPDATED, dry_run=dry_run,
                                detail="the one given differs; set with change-password"))
    return steps


def ensure_push_account(client: NexusClient, account: PushAccount, *,
                        dry_run: bool = False) -> list[StepResult]:
    """Role first: a user can only be given a role that exists."""
    return [ensure_role(client, account, dry_run=dry_run),
            *ensure_user(client, account, dry_run=dry_run)]
