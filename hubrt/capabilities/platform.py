"""The platform's own capability format, read into hubrt's compact one.

The platform and its CLI write one capability per file (YAML or JSON): an `id`
(or, in some packages, only the file name), a `version`, attributes whose
values are described by a JSON Schema (`attributes.<name>.schema.properties.
value`, with the unit in `properties.unit`) and commands whose `arguments`
each carry a `schema`. hubrt keeps one value schema per attribute and per
argument (see capabilities/__init__.py); this module translates. A schema part
hubrt cannot express (a `$ref` to a shared definition, `oneOf`...) becomes
`any`: accepted without a check rather than refused. Presentation files
(`*.presentation.*`, or `dashboard`/`detailView` documents) describe how the
app shows a capability, not what it is, and are recognised and skipped.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubrt.inputs import at

_PRESENTATION_KEYS = {"dashboard", "detailView", "automation", "mnmn", "vid"}


def is_presentation(path: Path, doc: Any) -> bool:
    return ".presentation." in path.name or (isinstance(doc, dict) and bool(_PRESENTATION_KEYS & set(doc)))


def is_platform_format(doc: Any) -> bool:
    """A platform capability document (one capability), as opposed to hubrt's {id: definition, ...}."""
    return isinstance(doc, dict) and (isinstance(doc.get("id"), str) or "attributes" in doc or "commands" in doc)


def value_schema(schema: Any) -> dict:
    """A JSON Schema of a value as hubrt's value schema (`any` where it says nothing hubrt checks)."""
    if not isinstance(schema, dict):
        return {"type": "any"}
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
        return {"type": "array", "items": value_schema(schema.get("items"))}
    if kind == "object" and isinstance(schema.get("properties"), dict):
        return {"type": "object", "properties": {str(k): value_schema(v) for k, v in schema["properties"].items()},
                "open": schema.get("additionalProperties") is not False}
    return {"type": "any"}


def read_platform_capability(path: Path, doc: dict) -> tuple[str, dict]:
    """(capability id, hubrt definition) of a platform capability document."""
    cap_id = doc["id"] if isinstance(doc.get("id"), str) else path.name.split(".")[0]
    attributes = {}
    for name, attribute in (doc.get("attributes") or {}).items():
        schema = attribute.get("schema") if isinstance(attribute, dict) else None
        props = schema.get("properties") if isinstance(schema, dict) else None
        props = props if isinstance(props, dict) else {}
        converted = value_schema(props.get("value"))
        unit = props.get("unit")
        if isinstance(unit, dict) and isinstance(unit.get("enum"), list):
            converted["units"] = [u for u in unit["enum"] if isinstance(u, str)]
        attributes[str(name)] = converted
    commands = {}
    for name, command in (doc.get("commands") or {}).items():
        args = command.get("arguments") if isinstance(command, dict) else None
        commands[str(name)] = [
            {**value_schema(arg.get("schema")), "name": str(arg.get("name")),
             **({"optional": True} if arg.get("optional") else {})}
            for arg in (args if isinstance(args, list) else []) if isinstance(arg, dict) and arg.get("name")]
    return cap_id, {"attributes": attributes, "commands": commands, "source": at(path, doc)}
