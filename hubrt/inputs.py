"""What people give hubrt: files they write (driver packages, capability definitions,
scenarios) and values they hand the hub (spans of time, device preferences).

Every problem with them is an InputError whose message names the file, and the
line where YAML can tell, so the CLI can show it as one line instead of a
traceback. Mappings read here remember the line of each key (`Mapping`), so
that a check made long after parsing can still point at the line.

All YAML is read as the platform's own tools read it: YAML 1.2's core schema.
Only true/false are booleans; `on`, `off`, `yes`, `no` and dates are text (YAML
1.1, PyYAML's default, makes `command: on` a boolean and a bare date a date
object); `017` is seventeen, `0o17` fifteen. libyaml still does the parsing:
only the resolving of plain scalars is replaced.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

import yaml

# libyaml's parser when PyYAML was built with it: several times faster
_Base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class InputError(Exception):
    """Bad input; the message names the file (and line) and what is wrong."""


class Mapping(dict):
    """A YAML mapping that knows where it and each of its keys stand (1-based lines)."""

    line = 0
    lines: dict[Any, int] = {}

    def line_of(self, key: Any) -> int:
        return self.lines.get(key, self.line)


class Loader(_Base):
    """libyaml's parser with the YAML 1.2 core schema's resolvers instead of YAML 1.1's."""

    yaml_implicit_resolvers: dict = {}


_CORE_SCHEMA = [  # (tag, plain scalars it takes, the first characters they may start with)
    ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
    ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
    ("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN)",
     "-+0123456789."),
    ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
    ("merge", r"<<", "<"),  # not in the core schema, but what YAML users expect of `<<: *defaults`
]
for _tag, _pattern, _first in _CORE_SCHEMA:
    Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(f"^(?:{_pattern})$"), list(_first))


def _construct_int(loader: Loader, node: yaml.ScalarNode) -> int:
    text = loader.construct_scalar(node)
    if text.startswith("0o"):
        return int(text[2:], 8)
    if text.startswith("0x"):
        return int(text[2:], 16)
    return int(text)  # decimal, leading zeros and all (YAML 1.1 read 017 as octal)


def _construct_mapping(loader: Loader, node: yaml.MappingNode):
    data = Mapping()
    data.line = node.start_mark.line + 1
    yield data
    data.update(loader.construct_mapping(node))
    data.lines = {}
    for key_node, _ in node.value:
        try:
            data.lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1
        except TypeError:  # an unhashable key: construct_mapping has refused it already
            pass


Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)


def at(path: Path, node: Any, key: Any = None) -> str:
    """"file:line" of a key of a mapping read by read_yaml (of the mapping itself without a key)."""
    if isinstance(node, Mapping):
        return f"{path}:{node.line_of(key) if key is not None else node.line}"
    return str(path)


def read_yaml(path: Path) -> Any:
    """Parses a YAML (or JSON) file; a syntax error names the file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    try:
        return yaml.load(text, Loader=Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise InputError(f"{where}: invalid YAML: {problem}") from None


def valid_seconds(value: Any) -> bool:
    """A span of hub time: a finite number >= 0 (time only moves forward, and never for ever)."""
    return not isinstance(value, bool) and isinstance(value, (int, float)) and 0 <= value < math.inf


def preferences_problem(preferences: Any) -> str | None:
    """Why these device preferences cannot be given to a driver (None if they can): a mapping of
    preference names to plain values, as the hub's device settings are."""
    if not isinstance(preferences, dict):
        return f"'preferences' must be a mapping of names to values, got {preferences!r}"
    for name, value in preferences.items():
        if not isinstance(name, str):
            return f"preference names are text, got {name!r}"
        if not (isinstance(value, (str, bool, int)) or (isinstance(value, float) and math.isfinite(value))):
            return f"preference {name!r}: a value is text, a number or true/false, got {value!r}"
    return None
