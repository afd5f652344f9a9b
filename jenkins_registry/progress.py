"""Push progress: plain lines for a log (the Jenkins console), a live display for a terminal.

The library reports events to a `ProgressSink`; the CLI chooses the sink. Both pushes (engine and
daemonless) report the same events, keyed by a short layer id.
"""

from __future__ import annotations

import threading
from typing import Protocol, TextIO


class ProgressSink(Protocol):
    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        """A layer changed state (`Preparing`, `Pushing`, `Pushed`, `Layer already exists`, …)."""

    def message(self, text: str) -> None:
        """A line about the push as a whole."""

    def close(self) -> None:
        """The push ended (successfully or not); finish the display."""


class NullProgress:
    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        pass

    def message(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def _human(size: int) -> str:
    value = float(size)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.1f} {unit}" if unit != "B" else f"{int(value)} B"
        value /= 1000
    return f"{value:.1f} GB"


class PlainProgress:
    """One line per state change, and per quarter of a layer's upload: readable in a build log."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._state: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        quarter = -1
        if current is not None and total:
            quarter = min(4, current * 4 // total)
        with self._lock:
            previous = self._state.get(layer_id)
            if previous == (status, quarter) or (previous and previous[0] == status and quarter < 0):
                return
            if previous and previous[0] == status and quarter <= previous[1]:
                return
            self._state[layer_id] = (status, quarter)
            detail = ""
            if current is not None and total:
                # Engine totals are uncompressed sizes; tiny layers can overshoot them.
                detail = f" {min(100, current * 100 // total)}% of {_human(total)}"
            self._stream.write(f"{layer_id}: {status}{detail}\n")
            self._stream.flush()

    def message(self, text: str) -> None:
        with self._lock:
            self._stream.write(text + "\n")
            self._stream.flush()

    def close(self) -> None:
        pass


class LiveProgress:
    """A block of one line per layer, redrawn in place (ANSI cursor movement) on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._lines: dict[str, str] = {}
        self._drawn = 0
        self._lock = threading.Lock()

    def _redraw(self) -> None:
        out = []
        if self._drawn:
            out.append(f"\x1b[{self._drawn}F")
        for layer_id, text in self._lines.items():
            out.append(f"\x1b[2K{layer_id}: {text}\n")
        self._drawn = len(self._lines)
        self._stream.write("".join(out))
        self._stream.flush()

    def layer(self, layer_id: str, status: str, current: int | None = None,
              total: int | None = None) -> None:
        text = status
        if current is not None and total:
            width = 30
            filled = min(width, current * width // total)  # capped: tiny layers overshoot
            text += f" [{'=' * filled}{' ' * (width - filled)}] {_human(current)}/{_human(total)}"
        with self._lock:
            if self._lines.get(layer_id) != text:
                self._lines[layer_id] = text
                self._redraw()

    def message(self, text: str) -> None:
        with self._lock:
            self._stream.write(f"\x1b[2K{text}\n")
            self._drawn = 0
            self._lines.clear()
            self._stream.flush()

    def close(self) -> None:
        with self._lock:
            self._drawn = 0
            self._lines.clear()
