"""A checklist line: what was checked, the verdict, and the fix. Shared by `jr doctor` (the registry
side) and `jr jenkins check` (the Jenkins side), so both print and fail the same way."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Status(StrEnum):
    OK = "ok"
    INFO = "info"
    WARN = "warn"
    FAIL = "fail"  # blocks the job (or the push)
    SKIP = "skip"


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One line of the checklist: what was checked, the verdict, and the fix when needed."""

    name: str
    status: Status
    summary: str
    fix: str | None = None


def failures(results: tuple[CheckResult, ...]) -> tuple[CheckResult, ...]:
    return tuple(r for r in results if r.status is Status.FAIL)
