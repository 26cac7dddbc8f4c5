"""The platform's own capability format, read into hubrt's compact one.

The platform and its CLI write one capability per file (YAML or JSON): an `id`
(or, in some packages, only the file name), a `version`, attributes whose
values are described by a JSON Schema (`attributes.<name>.schema.properties.
value`, with the unit in `properties.unit`) and commands whose `arguments`
each carry a `schema`. hubrt keeps one value schema per attribute and per
argument (see capabilities/__init__.py); this module translates. The hub's own
Lua libraries carry the same documents as `return [[{JSON}]]` files
(st/capabilities/generated/*.lua, shared schemas in its types/ folder): a
folder of those is read as data too, so an author with the libraries gets the
platform's current list. A `$ref` is followed where the types are known; a
schema part hubrt cannot express (an unknown `$ref`, `oneOf`...) becomes
`any`: accepted without a check rather than refused. Presentation files
(`*.presentation.*`, or `dashboard`/`detailView` documents) describe how the
app shows a capability, not what it is, and are recognised and skipped.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hubrt.inputs import InputError, at

_PRESENTATION_KEYS = {"dashboard", "detailView", "automation", "mnmn", "vid"}


def is_presentation(path: Path, doc: Any) -> bool:
    return ".presentation." in path.name or (isinstance(doc, dict) and bool(_PRESENTATION_KEYS & set(doc)))


def is_platform_format(doc: Any) -> bool:
    """A platform capability document (one capability), as opposed to hubrt's {id: definition, ...}."""
    return isinstance(doc, dict) and (isinstance(doc.get("id"), str) or "attributes" in doc or "commands" in doc)


# The hub's Lua libraries carry each definition as JSON in a Lua long string: `return [[{...}]]`
_LUA_JSON = re.compile(rb"^(?:\s*--[^\n]*\n)*\s*return\s*\[(=*)\[(.*)\]\1\]\s*$", re.S)


def read_lua_definition(path: Path) -> Any:
    """The JSON document of a definition file of the hub's Lua libraries
    (st/capabilities/generated/*.lua, and its types/); read as data, never run."""
    try:
        match = _LUA_JSON.match(path.read_bytes())
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e}") from None
    if match is None:
        raise InputError(f"{path}: not a capability definition of the hub's libraries (return [[{{JSON}}]])")
    try:
        return json.loads(match[2])
    except ValueError as e:
        raise InputError(f"{path}: its JSON is invalid: {e}") from None


def read_types(folder: Path) -> dict[str, Any]:
    """The shared schemas a definition's `$ref` names (a `types/` folder beside the definitions)."""
    types = {}
    for path in sorted(folder.glob("*.lua")) if folder.is_dir() else []:
        doc = read_lua_definition(path)
        if isinstance(doc, dict):
            types[path.stem] = doc
    return types


def value_schema(schema: Any, types: dict[str, Any] | None = None, depth: int = 0) -> dict:
    """A JSON Schema of a value as hubrt's value schema (`any` where it says nothing hubrt checks);
    a `$ref` is followed into `types` when it is there."""
    if not isinstance(schema, dict) or depth > 20:
        return {"type": "any"}
    ref = schema.get("$ref")
    if isinstance(ref, str) and types and isinstance(types.get(ref), dict):
        return value_schema({**types[ref], **{k: v for k, v in schema.items() if k != "$ref"}}, types, depth + 1)
    kind = schema.get("type")
    if kind == "string" and isinstance(schema.get("enum"), list) and schema["enum"]:
        return {"type": "enum", "values": [v for v in schema["enum"] if isinstance(v, (str, int, float))]}
    if kind in ("integer", "number"):
        out: dict = {"type": kind}
        for bound in ("minimum", "maximum"):
            if isinstance(schema.get(bound), (int, float)) and not isinstance(schema.get(bound), bool):
                out[bound] = schema[bound]
        return out
    if kind in ("string", "boolean"):
        return {"type": kind}
    if kind == "array":
        return {"type": "array", "items": value_schema(schema.get("items"), types, depth + 1)}
    if kind == "object" and isinstance(schema.get("properties"), dict):
        return {"type": "object", "properties": {str(k): value_schema(v, types, depth + 1)
                                                 for k, v in schema["properties"].items()},
                "open": schema.get("additionalProperties") is not False}
    return {"type": "any"}


def read_platform_capability(path: Path, doc: dict, types: dict[str, Any] | None = None) -> tuple[str, dict]:
    """(capability id, hubrt definition) of a platform capability document (`types`: the shared
    schemas its `$ref`s name, when known)."""
    cap_id = doc["id"] if isinstance(doc.get("id"), str) else path.name.split(".")[0]
    attributes = {}
    for name, attribute in (doc.get("attributes") or {}).items():
        schema = attribute.get("schema") if isinstance(attribute, dict) else None
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and types:
            schema = types.get(schema["$ref"], schema)  # a whole attribute schema, e.g. IntegerPercent
        schema = schema if isinstance(schema, dict) else {}
        props = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        converted = value_schema(props.get("value"), types)
        unit = value_schema(props["unit"], types) if isinstance(props.get("unit"), dict) else {}
        if unit.get("type") == "enum":
            converted["units"] = [u for u in unit["values"] if isinstance(u, str)]
            if "unit" in (schema.get("required") or []):
                converted["unit_required"] = True
        attributes[str(name)] = converted
    commands = {}
    for name, command in (doc.get("commands") or {}).items():
        args = command.get("arguments") if isinstance(command, dict) else None
        commands[str(name)] = [
            {**value_schema(arg.get("schema"), types), "name": str(arg.get("name")),
             **({"optional": True} if arg.get("optional") else {})}
            for arg in (args if isinstance(args, list) else []) if isinstance(arg, dict) and arg.get("name")]
    return cap_id, {"attributes": attributes, "commands": commands, "source": at(path, doc)}
