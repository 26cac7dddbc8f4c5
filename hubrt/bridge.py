"""The hub services that hubrt's Lua driver API (lua/st/*, lua/log.lua) calls.

Every Lua<->Python crossing of the driver API is here (the datastore's are in
datastore.py): the functions below are what those modules receive as their
`host` argument. Strings arrive as bytes (the Lua state uses encoding=None)
and are returned as bytes; tables are converted by `to_python`/`to_lua`.
Nothing raises into Lua: problems come back as values the Lua side turns
into errors at the driver's line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from xml.parsers import expat

import orjson

from hubrt.datastore import key_text
from hubrt.engine import as_text

if TYPE_CHECKING:
    from hubrt.driver import DriverHost
    from hubrt.worker import HubLink


NO_MEMORY = b"not enough memory: the driver's worker reached its memory cap (--max-memory)"


def to_python(value: Any, lua_type) -> Any:
    """A Lua value as plain Python: strings as str, a 1..n sequence as a list, other tables as dicts."""
    if type(value) is bytes:
        return value.decode("utf-8", "replace")
    if lua_type(value) != "table":
        return value
    items = list(value.items())
    keys = [k for k, _ in items]
    if keys and all(type(k) is int for k in keys) and min(keys) == 1 and max(keys) == len(keys):
        return [to_python(v, lua_type) for _, v in sorted(items, key=lambda kv: kv[0])]
    return {(key_text(k).decode("utf-8", "replace") if type(k) is not bool else str(k).lower()):
            to_python(v, lua_type) for k, v in items}


def to_lua(runtime: Any, obj: Any) -> Any:
    """Plain Python data as Lua values (strings as bytes, lists as 1..n tables)."""
    if isinstance(obj, str):
        return obj.encode()
    if isinstance(obj, dict):
        return runtime.table_from({to_lua(runtime, k): to_lua(runtime, v) for k, v in obj.items() if v is not None})
    if isinstance(obj, list):
        return runtime.table_from({i: to_lua(runtime, v) for i, v in enumerate(obj, 1) if v is not None})
    return obj


ANSWER_OK = {"ok": True}  # the commonest answer of a socket call


def _scalars_to_lua(runtime: Any, value: Any) -> Any:
    """A value of a network answer: a list of scalars (an address and port) in one crossing."""
    if type(value) is list and all(type(v) in (str, int, float, bool) for v in value):
        return runtime.table_from([v.encode() if type(v) is str else v for v in value])
    return to_lua(runtime, value)


def net_events(runtime: Any, events: list[dict]) -> Any:
    """What the network delivers to a driver's sockets, as Lua tables: socket bytes travel as latin-1
    text in JSON, and become the same bytes again here."""
    return runtime.table_from([runtime.table_from({k.encode(): (v.encode("latin-1") if k == "data" else to_lua(runtime, v))
                                                   for k, v in event.items()}) for event in events])


class Bridge:
    """What every Lua state running hubrt's modules gets: logging, capabilities, JSON."""

    def __init__(self, state: Any, catalogue: Any, log: Any, strict: bool = False) -> None:
        self.state = state
        self.runtime = state.runtime
        self.lua_type = state.lupa.lua_type
        self.catalogue = catalogue
        self._log = log
        self.strict = strict
        self._warned: set[tuple] = set()

    def functions(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "check_event": self.check_event,
            "capability_definition": self.capability_definition,
            "unknown_capability": self.unknown_capability,
            "unknown_member": self.unknown_member,
            "json_encode": self.json_encode,
            "json_decode": self.json_decode,
            "base64": self.base64,
            "digest": self.digest,
            "url_split": self.url_split,
            "xml_parse": self.xml_parse,
            "ws_mask": self.ws_mask,
            "utf8_error": self.utf8_error,
        }

    def api(self) -> Any:
        return self.state.lazy_table(self.functions())

    def py(self, value: Any) -> Any:
        """A value driver code handed over, as plain Python: a table is read as driver code sees it
        (a datastore table's contents, not its empty proxy). ValueError for a table that contains
        itself or nests too deep."""
        if self.lua_type(value) == "table":
            copied = self.state.helpers.plain(value)
            value, problem = copied if isinstance(copied, tuple) else (copied, None)
            if problem is not None:
                raise ValueError(as_text(problem))
        return to_python(value, self.lua_type)

    def log(self, level: bytes, text: bytes) -> None:
        self._log(as_text(level), as_text(text))

    def check_event(self, cap_id: bytes, attribute: bytes, value: Any, unit: Any) -> Any:
        try:
            value, unit = self.py(value), None if unit is None else self.py(unit)
        except ValueError as e:
            return f"{as_text(cap_id)}.{as_text(attribute)}: {e}".encode()
        problem = self.catalogue.check_event(as_text(cap_id), as_text(attribute), value, unit)
        return problem.encode() if problem else None

    def capability_definition(self, cap_id: bytes) -> Any:
        cap = as_text(cap_id)
        return to_lua(self.runtime, self.catalogue[cap]) if cap in self.catalogue else None

    def unknown_member(self, cap_id: bytes, kind: bytes, name: bytes, where: bytes) -> Any:
        """An attribute or command of a known capability that its definition lacks: refused under
        --strict (the message is returned), else let through with a warning, once per name."""
        cap, what, member = as_text(cap_id), as_text(kind), as_text(name)
        known = self.catalogue[cap]["attributes" if what == "attribute" else "commands"]
        message = (f"{as_text(where)}capability {cap!r} has no {what} {member!r}"
                   + self.catalogue.suggestion(member, known))
        if self.strict:
            return f"{message} (--strict)".encode()
        if (cap, what, member) not in self._warned:
            self._warned.add((cap, what, member))
            self._log("warn", f"{message}; hubrt lets it through unchecked")
        return None

    def unknown_capability(self, cap_id: bytes) -> bytes:
        cap = as_text(cap_id)
        return (f"unknown capability {cap!r}" + self.catalogue.suggestion(cap)).encode()

    def json_encode(self, value: Any) -> Any:
        try:
            return orjson.dumps(self.py(value))
        except (TypeError, ValueError, orjson.JSONEncodeError) as e:
            return None, f"st.json.encode: {e}".encode()
        except MemoryError:  # the worker's address-space cap, on top of the Lua state's own
            return None, NO_MEMORY

    def json_decode(self, text: bytes) -> Any:
        try:
            return to_lua(self.runtime, orjson.loads(text))
        except orjson.JSONDecodeError as e:
            return None, f"st.json.decode: invalid JSON: {e}".encode()
        except MemoryError:
            return None, NO_MEMORY


    # -- the hard parts of the libraries the hub ships (st.base64, sha1, net.url) --------

    @staticmethod
    def base64(encode: bool, data: bytes) -> Any:
        if encode:
            return base64.b64encode(data)
        try:
            return base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError) as e:
            return None, f"invalid base64: {e}".encode()

    @staticmethod
    def ws_mask(data: bytes, mask: bytes) -> bytes:
        """A WebSocket payload XORed with its 4-byte key (masking and unmasking are the same)."""
        from wsproto.frame_protocol import XorMaskerSimple  # loaded where a driver uses WebSockets

        return bytes(XorMaskerSimple(mask).process(data))

    @staticmethod
    def utf8_error(data: bytes) -> Any:
        """nil for valid UTF-8; else the 1-based position of the first bad byte and why."""
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as e:
            return e.start + 1, f"invalid UTF-8 at byte {e.start + 1}: {e.reason}".encode()
        return None

    @staticmethod
    def digest(name: bytes, data: bytes, key: Any = None) -> bytes:
        """The raw digest of `data` (an HMAC when a key is given)."""
        algorithm = as_text(name)
        if key is not None:
            return hmac.new(key, data, algorithm).digest()
        return hashlib.new(algorithm, data).digest()

    def url_split(self, text: bytes) -> Any:
        """scheme, user, password, host, port, path, query, fragment of a URL (nil for a part it lacks)."""
        try:
            parts = urlsplit(text.decode("latin-1"))
            port = parts.port
        except ValueError as e:
            return None, f"invalid URL: {e}".encode()
        fields = {"scheme": parts.scheme, "user": parts.username, "password": parts.password,
                  "host": parts.hostname, "port": port, "path": parts.path, "query": parts.query,
                  "fragment": parts.fragment}
        return self.runtime.table_from({k.encode(): (v.encode("latin-1") if isinstance(v, str) else v)
                                        for k, v in fields.items() if v not in (None, "")})


    def xml_parse(self, text: bytes) -> Any:
        """An XML document as xml2lua's tree handler shapes it ({root name = element}), or nil and why.
        Entity declarations and external entities are refused: no entity expansion bombs."""
        try:
            return to_lua(self.runtime, _xml_tree(text))
        except (expat.ExpatError, ValueError, RecursionError) as e:
            return None, f"xml2lua: not well-formed XML: {e}".encode()


def _xml_tree(text: bytes) -> dict:
    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    top: dict = {"children": []}
    stack = [top]

    def start(name: str, attrs: dict) -> None:
        stack.append({"name": name, "attrs": attrs, "children": [], "text": []})

    def end(_: str) -> None:
        node = stack.pop()
        stack[-1]["children"].append(node)

    def refuse(*_: Any) -> None:
        raise ValueError("entity declarations are not allowed")

    parser.StartElementHandler, parser.EndElementHandler = start, end
    parser.CharacterDataHandler = lambda data: stack[-1]["text"].append(data)
    parser.EntityDeclHandler = refuse
    parser.ExternalEntityRefHandler = refuse
    parser.Parse(text, True)
    return _xml_children(top)


def _xml_children(node: dict) -> dict:
    """Child elements by name: one is its value, several a list of values, in document order."""
    out: dict = {}
    for child in node["children"]:
        value, name = _xml_value(child), child["name"]
        existing = out.get(name)
        if name not in out:
            out[name] = value
        elif isinstance(existing, list):  # (a value is text or a mapping, never a list)
            existing.append(value)
        else:
            out[name] = [existing, value]
    return out


def _xml_value(node: dict) -> Any:
    text = "".join(node["text"]).strip()
    if not node["children"] and not node["attrs"]:
        return text if text else {}
    value = _xml_children(node)
    if node["attrs"]:
        value["_attr"] = dict(node["attrs"])
    if text:
        value[1] = text
    return value


class DriverBridge(Bridge):
    """The `host` table of one driver: device reads are served from the worker's copy of the
    driver's device records; everything else is a message to the hub through `link`."""

    def __init__(self, driver: DriverHost, link: HubLink, devices: dict[str, dict]) -> None:
        super().__init__(driver.state, driver.package.capabilities, link.log, driver.options.strict)
        self.driver = driver
        self.link = link
        self.devices = devices  # id -> device record; the hub keeps it up to date
        self._ok = to_lua(self.runtime, ANSWER_OK)  # (made once: Lua only reads answers)

    def functions(self) -> dict[str, Any]:
        return {
            **super().functions(),
            "register": self.register,
            "device_ids": self.device_ids,
            "device_info": self.device_info,
            "create_device": self.create_device,
            "timer_start": self.link.timer_start,
            "timer_cancel": self.link.timer_cancel,
            "emit": self.emit,
            "set_online": self.set_online,
            "device_log": self.device_log,
            "update_metadata": self.update_metadata,
            "inject_command": self.inject_command,
            "environment_info": self.environment_info,
            "task_failed": self.task_failed,
            "tls": self.tls,
            "net": self.net,
        }

    def _ask_network(self, message: dict) -> Any:
        """A socket call answered by the hub's network, or refused for a driver without LAN permission."""
        if "lan" not in self.driver.package.permissions:
            answer = {"error": "this driver has no LAN permission: add `permissions: {lan: {}}` to its config.yml",
                      "permission": True}
        else:
            answer = self.link.net(message)
            if answer == ANSWER_OK:
                return self._ok
            if "events" in answer:
                answer["events"] = net_events(self.runtime, answer["events"])
        return self.runtime.table_from({k.encode(): _scalars_to_lua(self.runtime, v) for k, v in answer.items()
                                        if v is not None})

    def net(self, call: bytes, sock: int, address: Any = None, port: Any = None, data: Any = None) -> Any:
        """A socket call; socket bytes cross as latin-1, unchanged."""
        message = {"call": as_text(call), "sock": sock}
        if address is not None:
            message["host"] = as_text(address)
        if port is not None:
            message["port"] = port
        if data is not None:
            message["data"] = data.decode("latin-1")
        return self._ask_network(message)

    def tls(self, sock: int, verify: bool, server_name: Any, timeout: Any) -> Any:
        """A TLS handshake on a connected socket (cosock.ssl): the real network wraps it, the simulated
        LAN's peers speak in clear."""
        return self._ask_network({"call": "tls", "sock": sock, "verify": bool(verify),
                                  "server_name": as_text(server_name) if server_name else None,
                                  "timeout": timeout if isinstance(timeout, (int, float)) else None})

    def task_failed(self, what: bytes, kind: bytes, message: bytes, traceback: bytes) -> None:
        """An event run by a thread, or a cosock task, ended in an error or was stopped."""
        self.driver.task_failed(as_text(what), as_text(kind), as_text(message),
                                self.state.driver_frames(as_text(traceback)))

    def register(self, lua_driver: Any) -> None:
        self.driver.lua_driver = lua_driver

    def device_ids(self) -> Any:
        return self.runtime.table_from([device_id.encode() for device_id in self.devices])

    def device_info(self, device_id: bytes) -> Any:
        device = self.devices.get(as_text(device_id))
        if device is None:
            return None
        profile = self.driver.package.profiles[device["profile"]]
        return to_lua(self.runtime, {
            "id": device["id"],
            "label": device["label"],
            "vendor_provided_label": device["label"],
            "device_network_id": device["network_id"],
            "profile": profile.as_lua(),
            "preferences": device["preferences"],
            "manufacturer": device.get("manufacturer") or None,
            "model": device.get("model") or None,
            "parent_device_id": device.get("parent_id"),
            "parent_assigned_child_key": device.get("child_key"),
        })

    def create_device(self, metadata: Any) -> Any:
        try:
            meta = self.py(metadata)
        except ValueError as e:
            return None, f"try_create_device: {e}".encode()
        if not isinstance(meta, dict):
            return None, b"try_create_device expects a table of device metadata"
        profiles = self.driver.package.profiles
        if meta.get("profile") not in profiles:
            return None, (f"try_create_device: unknown profile {meta.get('profile')!r}; "
                          f"profiles: {', '.join(profiles)}").encode()
        self.link.create_device(meta)
        return True

    def emit(self, device_id: bytes, component: bytes, capability: bytes, attribute: bytes, value: Any,
             unit: Any, state_change: bool) -> None:
        # (one of the commonest crossings, so the commonest cases are taken inline: the device id and
        # capability are strings st.device checked, the component and attribute nearly always are)
        tv = type(value)
        if tv is bytes:
            value = value.decode("utf-8", "replace")
        elif value is not None and tv is not int and tv is not float and tv is not bool:
            value = to_python(value, self.lua_type)
        self.link.emit(device_id.decode("utf-8", "replace"),
                       component.decode("utf-8", "replace") if type(component) is bytes else as_text(component),
                       capability.decode("utf-8", "replace"),
                       attribute.decode("utf-8", "replace") if type(attribute) is bytes else as_text(attribute),
                       value, None if unit is None else as_text(unit),
                       state_change is not None and state_change is not False)  # (Lua's truth: 0 is true)

    def set_online(self, device_id: bytes, online: bool) -> None:
        self.link.set_online(as_text(device_id), bool(online))

    def device_log(self, device_id: bytes, level: bytes, text: bytes) -> None:
        self.link.log(as_text(level), as_text(text), as_text(device_id))

    def update_metadata(self, device_id: bytes, metadata: Any) -> Any:
        try:
            meta = self.py(metadata)
        except ValueError as e:
            return f"try_update_metadata: {e}".encode()
        if not isinstance(meta, dict):
            return b"try_update_metadata expects a table, e.g. {profile = \"other-profile\"}"
        profiles = self.driver.package.profiles
        if "profile" in meta and meta["profile"] not in profiles:
            return (f"try_update_metadata: unknown profile {meta['profile']!r}; profiles: "
                    f"{', '.join(profiles)}").encode()
        self.link.update_metadata(as_text(device_id), meta)
        return None

    def inject_command(self, device_id: bytes, capability: bytes, command: bytes, args: Any) -> Any:
        try:
            args = None if args is None else self.py(args)
        except ValueError as e:
            return f"inject_capability_command: {e}".encode()
        self.link.inject(as_text(device_id), as_text(capability), as_text(command), args)
        return None

    def environment_info(self) -> Any:
        """What driver.environment_info holds on a hub: the hub's address on the network its drivers
        reach (no Zigbee or Z-Wave radio)."""
        return to_lua(self.runtime, self.link.environment)
