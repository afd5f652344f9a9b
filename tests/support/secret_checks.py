"""Assertions that a known secret string is nowhere it must not be."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from pathlib import Path


def secret_forms(secret: str) -> list[str]:
    """The secret and the encodings a leak usually takes (base64 of `user:secret` aside)."""
    return [secret, base64.b64encode(secret.encode()).decode().rstrip("=")]


def assert_absent(secret: str, *texts: str | bytes | None) -> None:
    for text in texts:
        if text is None:
            continue
        haystack = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
        for form in secret_forms(secret):
            assert form not in haystack, f"secret leaked: {haystack[:400]!r}"


def assert_absent_in_tree(secret: str, roots: Iterable[Path]) -> None:
    """No file below *roots* contains the secret (config dirs, HOME, output dirs)."""
    for root in roots:
        if not root.exists():
            continue
        for path in [root] if root.is_file() else root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                assert_absent(secret, path.read_bytes())


def process_cmdlines() -> list[bytes]:
    """The argv of every process this user can see (Linux /proc)."""
    lines = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                lines.append(Path(f"/proc/{entry}/cmdline").read_bytes())
            except OSError:
                continue
    return lines
