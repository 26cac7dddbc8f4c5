"""Capability definitions: data, not code.

The standard ones ship as `standard.json` (the platform's standard list, as
facts) with `additions.yml` over it (what the platform added later, as the
public drivers use it); a driver package may add its own in a `capabilities/`
folder (hubrt's compact format or the platform's, YAML or JSON). One validator
here checks both event values emitted by drivers and command arguments sent to
them.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
from pathlib import Path
from typing import Any

from hubrt.capabilities.platform import (is_platform_format, is_presentation, read_lua_definition,
                                         read_platform_capability, read_types)
from hubrt.inputs import InputError, at, read_yaml

SCHEMA_TYPES = {"enum", "integer", "number", "string", "boolean", "array", "object", "any"}


class CapabilityError(InputError):
    """A bad capability definition, or a value or command that a definition refuses."""


def check_value(schema: dict, value: Any, what: str) -> str | None:
    """None if `value` fits `schema`, else a message starting with `what`."""
    kind = schema["type"]
    if kind == "any":  # what a definition does not say (a capability hubrt does not know, a $ref...)
        return None
    if kind == "enum":
        if value not in schema["values"]:
            return f"{what}: {value!r} is not one of {', '.join(map(repr, schema['values']))}"
        return None
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            return f"{what}: expected {'an' if kind == 'integer' else 'a'} {kind}, got {value!r}"
        if kind == "integer" and value != int(value):
            return f"{what}: expected an integer, got {value!r}"
        if "minimum" in schema and value < schema["minimum"]:
            return f"{what}: {value!r} is below the minimum {schema['minimum']}"
        if "maximum" in schema and value > schema["maximum"]:
            return f"{what}: {value!r} is above the maximum {schema['maximum']}"
        return None
    if kind == "string":
        return None if isinstance(value, str) else f"{what}: expected a string, got {value!r}"
    if kind == "boolean":
        return None if isinstance(value, bool) else f"{what}: expected true or false, got {value!r}"
    if kind == "array":
        if isinstance(value, dict) and not value:
            return None  # an empty Lua table
        if not isinstance(value, list):
            return f"{what}: expected a list, got {value!r}"
        for i, item in enumerate(value, 1):
            problem = check_value(schema["items"], item, f"{what}[{i}]")
            if problem:
                return problem
        return None
    if not isinstance(value, dict):
        return f"{what}: expected a table, got {value!r}"
    for key, item in value.items():
        if key not in schema["properties"]:
            if schema.get("open"):  # the definition allows fields it does not name
                continue
            return f"{what}: unknown field {key!r} (known: {', '.join(schema['properties'])})"
        problem = check_value(schema["properties"][key], item, f"{what}.{key}")
        if problem:
            return problem
    return None


def schema_text(schema: dict) -> str:
    """A value schema as a person reads it: `integer 0..100 (%)`, `enum "on", "off"`."""
    kind = schema["type"]
    if kind == "enum":
        text = "one of " + ", ".join(map(repr, schema["values"]))
    elif kind in ("integer", "number"):
        bounds = f"{schema.get('minimum', '')}..{schema.get('maximum', '')}"
        text = kind + ("" if bounds == ".." else f" {bounds}")
    elif kind == "array":
        text = f"list of ({schema_text(schema['items'])})"
    elif kind == "object":
        fields = "; ".join(f"{k}: {schema_text(v)}" for k, v in schema["properties"].items())
        text = "{" + fields + ("; ..." if schema.get("open") else "") + "}"
    else:
        text = "any value" if kind == "any" else kind
    if schema.get("units"):
        text += f" [unit {'required, ' if schema.get('unit_required') else ''}one of {', '.join(schema['units'])}]"
    return text


def describe(definition: dict) -> str:
    """A capability's attributes and commands, one per line."""
    lines = [definition["id"]]
    if definition.get("permissive"):
        return lines[0] + "\n  (no definition: any attribute, command or value)"
    for name, schema in sorted(definition["attributes"].items()):
        lines.append(f"  attribute {name}: {schema_text(schema)}")
    for name, args in sorted(definition["commands"].items()):
        shown = ", ".join(f"{a['name']}{'?' if a.get('optional') else ''}: {schema_text(a)}" for a in args)
        lines.append(f"  command {name}({shown})")
    return "\n".join(lines)


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _check_schema(schema: Any, path: Path, where: str, owner: Any, key: Any) -> dict:
    """`owner[key]` is the schema: its line is where a problem is reported."""
    line = at(path, owner, key)
    if not isinstance(schema, dict) or schema.get("type") not in SCHEMA_TYPES:
        raise CapabilityError(f"{line}: {where}: needs a 'type', one of {', '.join(sorted(SCHEMA_TYPES))}")
    if schema["type"] == "enum":
        values = schema.get("values")
        if not (isinstance(values, list) and values):
            raise CapabilityError(f"{at(path, schema, 'values')}: {where}: an enum needs a non-empty 'values' list")
        for value in values:
            if not isinstance(value, (str, int, float)) or (isinstance(value, float) and not math.isfinite(value)):
                raise CapabilityError(f"{at(path, schema, 'values')}: {where}: enum values are strings or numbers, "
                                      f"got {value!r}")
    for bound in ("minimum", "maximum"):
        if bound in schema and not _is_number(schema[bound]):
            raise CapabilityError(f"{at(path, schema, bound)}: {where}: '{bound}' must be a number, "
                                  f"got {schema[bound]!r}")
    if schema["type"] == "array":
        _check_schema(schema.get("items"), path, where + ".items", schema, "items")
    if schema["type"] == "object":
        props = schema.get("properties")
        if not isinstance(props, dict):
            raise CapabilityError(f"{at(path, schema, 'properties')}: {where}: an object needs 'properties'")
        for name, sub in props.items():
            _check_schema(sub, path, f"{where}.{name}", props, name)
    return schema


def _check_definition(cap_id: str, doc: Any, path: Path, line: str) -> dict:
    where = f"capability {cap_id!r}"
    if not isinstance(doc, dict):
        raise CapabilityError(f"{line}: {where}: expected a mapping with 'attributes' and/or 'commands'")
    attributes = doc.get("attributes") or {}
    commands = doc.get("commands") or {}
    if not isinstance(attributes, dict) or not isinstance(commands, dict):
        raise CapabilityError(f"{line}: {where}: 'attributes' and 'commands' must be mappings")
    for name, schema in attributes.items():
        _check_schema(schema, path, f"{where}, attribute {name!r}", attributes, name)
    for name, args in commands.items():
        if not isinstance(args, list):
            raise CapabilityError(f"{at(path, commands, name)}: {where}, command {name!r}: expected a list of "
                                  "arguments")
        for i, arg in enumerate(args):
            if not isinstance(arg, dict) or not isinstance(arg.get("name"), str):
                raise CapabilityError(f"{at(path, commands, name)}: {where}, command {name!r}: each argument "
                                      "needs a 'name'")
            _check_schema(arg, path, f"{where}, command {name!r}, argument {arg['name']!r}", arg, "name")
    return {"id": cap_id, "attributes": attributes, "commands": commands}


def _read_definitions(path: Path, types: dict[str, Any] | None = None) -> dict[str, dict]:
    """The definitions in one file: hubrt's format (a mapping of id to definition) or the platform's
    (one capability, also as the hub's libraries carry it in a .lua file); a presentation file gives
    none."""
    doc = read_lua_definition(path) if path.suffix == ".lua" else read_yaml(path)
    if is_presentation(path, doc):
        return {}
    if is_platform_format(doc):
        cap_id, definition = read_platform_capability(path, doc, types)
        return {cap_id: _check_definition(cap_id, definition, path, at(path, doc))}
    if not isinstance(doc, dict):
        raise CapabilityError(f"{path}: expected a mapping of capability id to definition")
    return {str(cap_id): _check_definition(str(cap_id), d, path, at(path, doc, cap_id)) for cap_id, d in doc.items()}


def _extended(base: dict | None, extra: dict) -> dict:
    """A standard definition with later additions: attributes and commands it lacks."""
    if base is None:
        return extra
    return {**base, "attributes": {**base["attributes"], **extra["attributes"]},
            "commands": {**base["commands"], **extra["commands"]}}


class Catalogue:
    """The capability definitions a driver can use."""

    def __init__(self, definitions: dict[str, dict]) -> None:
        self.definitions = definitions

    @staticmethod
    @functools.cache
    def standard(folders: tuple[str, ...] = ()) -> Catalogue:
        """The definitions hubrt ships, plus those in the user's folders (--capabilities DIR)."""
        here = Path(__file__).parent
        definitions = {cap_id: {"id": cap_id, **d} for cap_id, d in
                       json.loads((here / "standard.json").read_bytes())["capabilities"].items()}
        for cap_id, addition in _read_definitions(here / "additions.yml").items():
            definitions[cap_id] = _extended(definitions.get(cap_id), addition)
        catalogue = Catalogue(definitions)
        for folder in folders:
            if not Path(folder).is_dir():
                raise CapabilityError(f"{folder}: no such folder of capability definitions")
            generated = Path(folder) / "st" / "capabilities" / "generated"  # the root of the hub's libraries
            catalogue = catalogue.extended(generated if generated.is_dir() else Path(folder))
        return catalogue

    def extended(self, folder: Path) -> Catalogue:
        """This catalogue plus the definitions in a driver package's capabilities/ folder."""
        files = sorted(p for p in folder.glob("*") if p.suffix in (".yml", ".yaml", ".json", ".lua")) \
            if folder.is_dir() else []
        if not files:
            return self
        types = read_types(folder / "types")
        merged = dict(self.definitions)
        for path in files:
            merged.update(_read_definitions(path, types))
        return Catalogue(merged)

    def with_permissive(self, cap_ids: list[str]) -> Catalogue:
        """This catalogue plus a permissive definition for each id: any attribute, command or value."""
        if not cap_ids:
            return self
        return Catalogue({**self.definitions, **{cap_id: {"id": cap_id, "attributes": {}, "commands": {},
                                                          "permissive": True} for cap_id in cap_ids}})

    def __contains__(self, cap_id: str) -> bool:
        return cap_id in self.definitions

    def __getitem__(self, cap_id: str) -> dict:
        return self.definitions[cap_id]

    def suggestion(self, name: str, choices: Any = None) -> str:
        close = difflib.get_close_matches(name, list(choices if choices is not None else self.definitions), n=1)
        return f" (did you mean {close[0]!r}?)" if close else ""

    def check_event(self, cap_id: str, attribute: str, value: Any, unit: Any) -> str | None:
        """None if an event value fits the definition, else a message for the driver author."""
        if cap_id not in self.definitions:
            return f"unknown capability {cap_id!r}" + self.suggestion(cap_id)
        if self.definitions[cap_id].get("permissive"):
            return None
        attrs = self.definitions[cap_id]["attributes"]
        if attribute not in attrs:
            return f"capability {cap_id!r} has no attribute {attribute!r}" + self.suggestion(attribute, attrs)
        schema = attrs[attribute]
        problem = check_value(schema, value, f"{cap_id}.{attribute}")
        if problem:
            return problem
        units = schema.get("units")
        if unit is not None and units and unit not in units:
            return f"{cap_id}.{attribute}: unit {unit!r} is not one of {', '.join(map(repr, units))}"
        if unit is None and schema.get("unit_required"):
            return f"{cap_id}.{attribute}: a unit is required ({', '.join(map(repr, units))})"
        return None

    def command_args(self, cap_id: str, command: str, args: Any) -> dict:
        """Checks a command's arguments (a list in order, or a mapping by name); returns them by name."""
        if cap_id not in self.definitions:
            raise CapabilityError(f"unknown capability {cap_id!r}" + self.suggestion(cap_id))
        if self.definitions[cap_id].get("permissive"):  # names unknown: positional arguments as arg1, arg2...
            if isinstance(args, list):
                return {f"arg{i}": value for i, value in enumerate(args, 1)}
            return dict(args or {})
        commands = self.definitions[cap_id]["commands"]
        if command not in commands:
            raise CapabilityError(f"capability {cap_id!r} has no command {command!r}"
                                  + self.suggestion(command, commands))
        spec = commands[command]
        if args is None:
            args = {}
        if isinstance(args, list):
            if len(args) > len(spec):
                raise CapabilityError(f"{cap_id}.{command} takes at most {len(spec)} argument(s), got {len(args)}")
            args = {arg["name"]: value for arg, value in zip(spec, args)}
        if not isinstance(args, dict):
            raise CapabilityError(f"{cap_id}.{command}: arguments must be a list or a mapping")
        names = {arg["name"] for arg in spec}
        for name in args:
            if name not in names:
                raise CapabilityError(f"{cap_id}.{command} has no argument {name!r}" + self.suggestion(name, names))
        for arg in spec:
            if arg["name"] not in args:
                if not arg.get("optional"):
                    raise CapabilityError(f"{cap_id}.{command}: missing argument {arg['name']!r}")
                continue
            problem = check_value(arg, args[arg["name"]], f"{cap_id}.{command}({arg['name']})")
            if problem:
                raise CapabilityError(problem)
        return args
