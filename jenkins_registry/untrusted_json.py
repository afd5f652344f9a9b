"""JSON from files a user hands us (daemon.json, an archive's manifest.json, an image config).

`json.loads` alone lets such a file crash the process or change meaning: nesting a few thousand
levels deep raises RecursionError (and a re-serialisation with `indent` recurses deeper still),
`NaN`/`Infinity` are accepted although JSON has no such values, and `1e400` silently becomes
infinity. The engine (Go's encoding/json) refuses all of these, so they are refused here too, with
a reason short enough for a one-line message.
"""

from __future__ import annotations

import json
import math
from typing import Any

# Real daemon.json files, manifests and image configs nest 3 to 6 levels; 64 leaves room for any
# honest document and stays far below the interpreter's recursion limit, whoever re-serialises it.
MAX_DEPTH = 64


class UntrustedJsonError(ValueError):
    """The text is JSON Python could read, but not a document the engine would accept."""


def _constant(name: str) -> Any:
    raise UntrustedJsonError(f"{name} is not a JSON value")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedJsonError(f"the number {text[:40]} is out of range")
    return value


def _depth(document: Any) -> int:
    """The nesting depth of *document*, counted without recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, list):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return deepest


def loads(data: str | bytes) -> Any:
    """Parse *data*; json.JSONDecodeError for bad syntax, UntrustedJsonError (also a ValueError)
    for what the engine would refuse or what would exhaust the stack."""
    try:
        document = json.loads(data, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise UntrustedJsonError(f"it nests deeper than {MAX_DEPTH} levels") from None
    except UntrustedJsonError:
        raise
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise
    except ValueError as exc:  # e.g. an integer of more than 4300 digits
        raise UntrustedJsonError(f"a value cannot be read ({str(exc)[:80]})") from None
    if _depth(document) > MAX_DEPTH:
        raise UntrustedJsonError(f"it nests deeper than {MAX_DEPTH} levels")
    return document
