"""Line coverage of a driver's own Lua files (`--lua-cov`).

The driver's Lua state records every line it runs (a line hook, see
lua/host/sandbox.lua); this module adds up those records across Lua states
and tests and reports, per file, lines hit of lines of code, and the line
numbers missed. Which lines are code is decided from the source, the way
luacov does: blank lines, comments and lines holding only `end`, `else`,
brackets and the like are not counted.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path
from typing import Any

_HEADER = re.compile(r"\bfunction\b[^()]*\([^)]*\)$")  # a line that ends with a function's parameters
_NOT_CODE = re.compile(r"^(end|else|do|then|repeat|[(){}\[\],;]*|end[),;]*|[}\])]+[),;]*)$")


def code_lines(source: str) -> set[int]:
    """Line numbers that hold code, by a luacov-like reading of the text.

    Not counted: blank and comment lines, lines of only `end`/`else`/brackets,
    function headers (Lua reports a closure's creation on its `end` line) and
    continuation lines of a table or argument list that call nothing. A line that ran is
    always counted, whatever this reading says.
    """
    lines: set[int] = set()
    previous = ""  # the last line of code seen
    in_long = False  # inside a --[[ ]] comment or a [[ ]] string
    for number, text in enumerate(source.splitlines(), 1):
        stripped = text.strip()
        if in_long:
            if "]]" in stripped:
                in_long = False
            continue
        if stripped.startswith("--[["):
            in_long = "]]" not in stripped[4:]
            continue
        code = stripped.split("--", 1)[0].strip() if not stripped.startswith("--") else ""
        if "[[" in code and "]]" not in code.split("[[", 1)[1]:
            in_long = True
        if not code:
            continue
        continuation = (previous.endswith((",", "{", "(")) and "(" not in code and "function" not in code) \
            or code.startswith(("}", ")"))
        header = _HEADER.search(code) is not None
        if not (continuation or header or _NOT_CODE.match(code)):
            lines.add(number)
        previous = code
    return lines


class LineCoverage:
    """Lines hit per driver file, gathered from many Lua states."""

    def __init__(self) -> None:
        self.hits: dict[str, set[int]] = defaultdict(set)
        self._states: list[Any] = []

    def track(self, state: Any) -> None:
        """Turns line recording on in a driver's Lua state (before it runs any code)."""
        state.helpers.enable_coverage()
        self._states.append(state)

    def harvest(self) -> None:
        """Adds up what the tracked states recorded, and lets them go."""
        for state in self._states:
            for src, lines in state.helpers.take_coverage().items():
                name = src.decode("utf-8", "replace") if isinstance(src, bytes) else str(src)
                self.hits[name.removeprefix("@")].update(lines.values())
        self._states.clear()

    def merge(self, data: dict[str, list[int]]) -> None:
        for name, lines in data.items():
            self.hits[name].update(lines)

    def as_data(self) -> dict[str, list[int]]:
        return {name: sorted(lines) for name, lines in self.hits.items()}

    def report(self) -> list[str]:
        rows = []
        for name in sorted(self.hits):
            path = Path(name)
            if not path.is_file():
                continue
            code = code_lines(path.read_text(encoding="utf-8", errors="replace")) | self.hits[name]
            hit = self.hits[name] & code
            missed = sorted(code - hit)
            percent = 100.0 * len(hit) / len(code) if code else 100.0
            rows.append(f"{name}: {len(hit)}/{len(code)} lines ({percent:.0f}%)"
                        + (f", missed: {_ranges(missed)}" if missed else ""))
        return rows


def _ranges(numbers: list[int]) -> str:
    parts = []
    start = prev = None
    for n in numbers + [None]:
        if start is not None and (n is None or n != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if n is not None and start is None:
            start = n
        prev = n
    return ", ".join(parts)
