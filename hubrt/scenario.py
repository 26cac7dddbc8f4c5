"""Scenarios: what a person does with the hub, as a YAML list of steps or typed at a prompt.

Every step is one verb with its arguments, e.g.

    - add_device: {profile: dimmer, label: Lamp}
    - command: {device: Lamp, capability: switch, command: "on"}
    - advance: 30
    - restart: power_loss
    - assert: {device: Lamp, state: switch.switch, equals: "on"}

A whole file is checked before any step runs, so a typo changes nothing;
each problem is reported as `file:line: message`.
"""

from __future__ import annotations

import datetime
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import orjson
import yaml

from hubrt.display import printable
from hubrt.hub import STOP_KINDS, Hub
from hubrt.inputs import InputError, preferences_problem, valid_seconds
from hubrt.inputs import Loader as YamlLoader
from hubrt.net.simulated import FAULTS


class ScenarioError(InputError):
    """A scenario step is malformed, or the hub refused it; names the file and line."""


class AssertionFailed(Exception):
    """An `assert` step did not hold."""


@dataclass
class Verb:
    params: tuple[str, ...]  # in the order they are given at the prompt (or as name=value)
    required: tuple[str, ...]
    help: str
    example: str  # typed at the prompt
    yaml: str  # the same in a --script file
    scalar: str | None = None  # a step written `verb: value` sets this parameter


VERBS: dict[str, Verb] = {
    "add_device": Verb(("profile", "label", "driver", "network_id", "preferences", "id", "manufacturer", "model",
                        "parent", "child_key"), ("profile",),
                       "add a device (it gets init, added, doConfigure)", "add_device dimmer Lamp",
                       "- add_device: {profile: dimmer, label: Lamp, preferences: {defaultLevel: 50}}", "profile"),
    "remove_device": Verb(("device",), ("device",), "remove a device", "remove_device Lamp",
                          "- remove_device: Lamp", "device"),
    "update_device": Verb(("device", "label", "preferences", "profile"), ("device",),
                          "change a device's label, preferences or profile (sends infoChanged)",
                          "update_device Lamp 'Desk lamp' '{defaultLevel: 40}'",
                          "- update_device: {device: Lamp, label: Desk lamp}"),
    "command": Verb(("device", "capability", "command", "args", "component"), ("device", "capability", "command"),
                    "send a capability command (arguments typed as the command defines them)",
                    "command Lamp switchLevel setLevel 40",
                    "- command: {device: Lamp, capability: switchLevel, command: setLevel, args: [40]}"),
    "discover": Verb(("driver",), (), "run a driver's discovery handler", "discover lan-bridge",
                     "- discover: lan-bridge", "driver"),
    "advance": Verb(("seconds",), ("seconds",), "move hub time forward, firing timers", "advance 30",
                    "- advance: 30", "seconds"),
    "wait": Verb(("seconds",), ("seconds",), "the same as advance", "wait 5", "- wait: 5", "seconds"),
    "restart": Verb(("kind",), ("kind",), f"stop and start again: {', '.join(STOP_KINDS)}", "restart power_loss",
                    "- restart: power_loss", "kind"),
    "flush": Verb((), (), "write the hub's saved snapshots to disk now", "flush", "- flush"),
    "print": Verb(("what", "target"), ("what",), "show datastore [DRIVER], devices, events or state DEVICE",
                  "print state Lamp", "- print: state Lamp", "what"),
    "lan_host": Verb(("ip", "name", "http", "ssdp", "mdns"), ("ip",),
                     "put a host on the simulated LAN (HTTP servers with canned routes, one per port; SSDP and "
                     "mDNS answers)",
                     "lan_host 192.168.1.50 http='{routes: {/state: {body: on}}}'",
                     "- lan_host: {ip: 192.168.1.50, http: {port: 80, routes: {GET /state: {status: 200, body: on}}}}"),
    "lan_fault": Verb(("ip", "fault"), ("ip",), f"make a host misbehave: {', '.join(FAULTS)} (none: heal it)",
                      "lan_fault 192.168.1.50 timeout", "- lan_fault: {ip: 192.168.1.50, fault: refuse}"),
    "lan_move": Verb(("ip", "to"), ("ip", "to"), "give a host a new address (its connections break)",
                     "lan_move 192.168.1.50 192.168.1.77", "- lan_move: {ip: 192.168.1.50, to: 192.168.1.77}"),
    "lan_remove": Verb(("ip",), ("ip",), "take a host off the simulated LAN", "lan_remove 192.168.1.50",
                       "- lan_remove: 192.168.1.50", "ip"),
    "lan_push": Verb(("ip", "path", "data"), ("ip", "path", "data"),
                     "send text down a host's open event streams or WebSockets (a route with stream: true or "
                     "websocket: true)",
                     "lan_push 192.168.1.50 /events 'data: {\"serial\": \"A1\", \"on\": true}'",
                     "- lan_push: {ip: 192.168.1.50, path: /events, data: \"data: {\\\"on\\\": true}\\n\\n\"}"),
    "lan_drop": Verb(("ip",), ("ip",), "a host closes its open event streams", "lan_drop 192.168.1.50",
                     "- lan_drop: 192.168.1.50", "ip"),
    "lan_close": Verb(("ip", "code", "reason"), ("ip",), "a host closes its WebSockets with a close frame",
                      "lan_close 192.168.1.60 1001", "- lan_close: {ip: 192.168.1.60, code: 1001}", "ip"),
    "lan_notify": Verb(("ip", "body"), ("ip", "body"),
                       "a host sends a UPnP event (NOTIFY) to the drivers subscribed to it",
                       "lan_notify 192.168.1.90 '<BinaryState>1</BinaryState>'",
                       "- lan_notify: {ip: 192.168.1.90, body: <BinaryState>1</BinaryState>}"),
    "hub_ip": Verb(("ip",), ("ip",), "give the hub a new LAN address (drivers' lan_info_changed_handler runs)",
                   "hub_ip 192.168.1.3", "- hub_ip: 192.168.1.3", "ip"),
    "assert": Verb(("device", "state", "field", "driver", "datastore", "equals", "component"), ("equals",),
                   "check a device's state or persisted field, or a path in a driver's datastore",
                   "assert device=Lamp state=switch.switch equals=on",
                   "- assert: {device: Lamp, state: switch.switch, equals: on}"),
}


# Parameters that name something (a device, a driver, a capability...): text, never a list or mapping.
_TEXT_PARAMS = {"profile", "label", "driver", "network_id", "id", "device", "capability", "command", "component",
                "kind", "what", "target", "state", "field", "datastore", "manufacturer", "model", "parent", "child_key",
                "ip", "to", "fault", "path", "data", "body"}


@dataclass
class Step:
    verb: str
    args: dict
    where: str  # "file:line"


def _unknown_verb(verb: Any, where: str) -> ScenarioError:
    close = difflib.get_close_matches(str(verb), VERBS, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return ScenarioError(f"{where}: unknown step {verb!r}{hint}; steps: {', '.join(VERBS)}")


def make_step(verb: Any, value: Any, where: str) -> Step:
    """Checks one step's verb and arguments."""
    if verb not in VERBS:
        raise _unknown_verb(verb, where)
    spec = VERBS[verb]
    if isinstance(value, dict):
        args = dict(value)
    elif value is None:
        args = {}
    elif verb == "print" and isinstance(value, str) and " " in value.strip():
        what, target = value.split(None, 1)  # `print: state Lamp`
        args = {"what": what, "target": target}
    elif spec.scalar:
        args = {spec.scalar: value}
    else:
        raise ScenarioError(f"{where}: {verb} takes a mapping of {', '.join(spec.params)}")
    for name in args:
        if name not in spec.params:
            close = difflib.get_close_matches(str(name), spec.params, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ScenarioError(f"{where}: {verb} has no argument {name!r}{hint}; arguments: {', '.join(spec.params)}")
    for name in spec.required:
        if name not in args:
            raise ScenarioError(f"{where}: {verb} needs {name!r}")
    for name, value in args.items():
        if name in _TEXT_PARAMS:
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ScenarioError(f"{where}: {verb}: {name!r} must be a name, got {value!r}")
            args[name] = str(value)
        elif name == "preferences":
            if isinstance(value, dict):  # a date (only an explicit !!timestamp under YAML 1.2): its text
                args[name] = value = {k: v.isoformat() if isinstance(v, datetime.date) else v
                                      for k, v in value.items()}
            problem = preferences_problem(value)
            if problem:
                raise ScenarioError(f"{where}: {verb}: {problem}")
    if verb in ("advance", "wait") and not valid_seconds(args["seconds"]):
        raise ScenarioError(f"{where}: {verb} takes a finite number of seconds >= 0, got {args['seconds']!r}")
    if verb == "restart" and args["kind"] not in STOP_KINDS:
        raise ScenarioError(f"{where}: restart takes one of {', '.join(STOP_KINDS)}, got {args['kind']!r}")
    if verb == "print" and args["what"] not in ("datastore", "devices", "events", "state"):
        raise ScenarioError(f"{where}: print takes datastore, devices, events or state, got {args['what']!r}")
    if verb == "lan_host":
        problem = _lan_host_problem(args)
        if problem:
            raise ScenarioError(f"{where}: lan_host: {problem}")
    if verb == "lan_fault" and args.get("fault") not in (None, *FAULTS):
        raise ScenarioError(f"{where}: lan_fault takes one of {', '.join(FAULTS)}, got {args['fault']!r}")
    if verb == "assert" and sum(k in args for k in ("state", "field", "datastore")) != 1:
        raise ScenarioError(f"{where}: assert needs exactly one of state, field or datastore")
    return Step(verb, args, where)


def _lan_host_problem(args: dict) -> str | None:
    http, ssdp = args.get("http"), args.get("ssdp")
    for server in (http if isinstance(http, list) else [] if http is None else [http]):
        if not isinstance(server, dict) or set(server) - {"port", "routes"}:
            return ("http is a mapping of port and routes, e.g. {port: 80, routes: {GET /state: {body: on}}} "
                    "(or a list of them, one per port)")
        port = server.get("port", 80)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            return f"http port must be a whole number from 1 to 65535, got {port!r}"
        for route, response in (server.get("routes") or {}).items():
            if not isinstance(response, dict) or set(response) - {"status", "headers", "body", "stream", "websocket",
                                                                  "echo"}:
                return (f"route {route!r}: a response is a mapping of status, headers and body (or stream: true, "
                        "or websocket: true with echo: true or false)")
            if not isinstance(response.get("status", 200), int) or not isinstance(response.get("body", ""), str):
                return f"route {route!r}: status is a number and body is text"
    if ssdp is not None and not (isinstance(ssdp, dict) and all(isinstance(v, (str, int)) for v in ssdp.values())):
        return "ssdp is a mapping of the answer's headers, e.g. {ST: ..., LOCATION: http://...}"
    mdns = args.get("mdns")
    if mdns is not None and not (isinstance(mdns, list) and all(
            isinstance(s, dict) and isinstance(s.get("service_type"), str) for s in mdns)):
        return "mdns is a list of services, e.g. [{service_type: _hue._tcp, port: 443, txt: [bridgeid=1]}]"
    return None


def load_scenario(path: Path) -> list[Step]:
    """Parses and checks a whole scenario file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(f"{path}: cannot read: {e}") from None
    loader = None
    try:
        loader = YamlLoader(text)  # YAML 1.2, as the platform reads it; may refuse the text at once
        root = loader.get_single_node()
        if root is None:
            return []
        if not isinstance(root, yaml.SequenceNode):
            raise ScenarioError(f"{path}:{root.start_mark.line + 1}: a scenario is a list of steps")
        steps = []
        for node in root.value:
            where = f"{path}:{node.start_mark.line + 1}"
            item = loader.construct_document(node)
            if isinstance(item, str):
                item = {item: None}
            if not isinstance(item, dict) or len(item) != 1:
                raise ScenarioError(f"{where}: each step is one verb, like `- advance: 10`")
            (verb, value), = item.items()
            steps.append(make_step(verb, value, where))
        return steps
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ScenarioError(f"{path}{line}: invalid YAML: {problem}") from None
    finally:
        if loader is not None:
            loader.dispose()


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


def _lookup(data: Any, path: str, what: str) -> Any:
    for part in path.split("."):
        if not isinstance(data, dict) or part not in data:
            raise AssertionFailed(f"{what}: {path!r} is not there")
        data = data[part]
    return data


class Runner:
    """Runs steps against a hub; `out` receives what `print` shows."""

    def __init__(self, hub: Hub, out: Callable[[str], None] = print) -> None:
        self.hub = hub
        self.out = out

    def run(self, steps: list[Step]) -> None:
        for step in steps:
            self.hub.check_stop()
            self.run_step(step)

    def run_step(self, step: Step) -> None:
        try:
            getattr(self, "do_" + step.verb)(**step.args)
        except AssertionFailed as e:
            raise AssertionFailed(f"{step.where}: assertion failed: {e}") from None
        except InputError as e:
            raise ScenarioError(f"{step.where}: {e}") from None

    def _only_driver(self, driver: str | None) -> str:
        if driver:
            return driver
        if len(self.hub.packages) != 1:
            raise ScenarioError("several drivers are installed; say which with `driver:`")
        return next(iter(self.hub.packages))

    def do_add_device(self, profile, label=None, driver=None, network_id=None, preferences=None, id=None,
                      manufacturer=None, model=None, parent=None, child_key=None):
        if driver is None and parent is not None:
            driver = self.hub.device(parent).driver  # a child belongs to its parent's driver
        self.hub.add_device(self._only_driver(driver), str(profile), label=label, network_id=network_id,
                            preferences=preferences, device_id=id, manufacturer=manufacturer, model=model,
                            parent=parent, child_key=child_key)

    def do_remove_device(self, device):
        self.hub.remove_device(str(device))

    def do_update_device(self, device, label=None, preferences=None, profile=None):
        self.hub.update_device(str(device), label=label, preferences=preferences, profile=profile)

    def do_command(self, device, capability, command, args=None, component="main"):
        if args is not None and not isinstance(args, (list, dict)):
            args = [args]
        self.hub.command(str(device), str(capability), str(command), args, component=component)

    def do_discover(self, driver=None):
        self.hub.discover(self._only_driver(driver))

    def do_advance(self, seconds):
        self.hub.advance(float(seconds))

    do_wait = do_advance

    def do_lan_host(self, ip, name=None, http=None, ssdp=None, mdns=None):
        self.hub.lan.add_host(ip, name=name, http=http, mdns=mdns,
                              ssdp={str(k): str(v) for k, v in ssdp.items()} if ssdp else None)

    def do_lan_fault(self, ip, fault=None):
        self.hub.lan.set_fault(ip, fault)

    def do_lan_move(self, ip, to):
        self.hub.lan.move_host(ip, to)
        self.hub.settle()

    def do_lan_remove(self, ip):
        self.hub.lan.remove_host(ip)
        self.hub.settle()

    def do_lan_notify(self, ip, body):
        self.hub.lan.notify(ip, body)
        self.hub.settle()

    def do_hub_ip(self, ip):
        self.hub.set_hub_ip(ip)

    def do_lan_push(self, ip, path, data):
        self.hub.lan.push(ip, path, data)
        self.hub.settle()

    def do_lan_close(self, ip, code=1000, reason=""):
        self.hub.lan.close_websockets(ip, int(code), str(reason))
        self.hub.settle()

    def do_lan_drop(self, ip):
        self.hub.lan.drop_streams(ip)
        self.hub.settle()

    def do_restart(self, kind):
        self.hub.restart(kind)

    def do_flush(self):
        self.hub.flush()

    def _datastore(self, driver: str | None) -> dict:
        return self.hub.store.load(self._only_driver(driver))

    def do_print(self, what, target=None):
        if what == "datastore":
            self.out(_json(self._datastore(target)))
        elif what == "devices":
            for d in self.hub.devices.values():
                self.out(f"{printable(d.label)}  ({d.id})  driver={d.driver} profile={d.profile} "
                         f"{'online' if d.online else 'offline'}")
        elif what == "events":
            if self.hub.events.dropped:
                self.out(f"... {self.hub.events.dropped:,} earlier events not kept")
            for e in self.hub.events:
                self.out(printable(f"{e.time:9.3f} {e.device} {e.component}.{e.capability}.{e.attribute} = "
                                   f"{e.value!r}"))
        else:
            if target is None:
                raise ScenarioError("print state needs a device")
            self.out(_json(self.hub.saved_device_data(target).get("__state_cache", {})))

    def do_assert(self, equals, device=None, state=None, field=None, driver=None, datastore=None,
                  component="main"):
        if datastore is not None:
            actual = _lookup(self._datastore(driver), str(datastore), "datastore")
            what = f"datastore {datastore}"
        elif device is None:
            raise ScenarioError("assert with state or field needs a device")
        elif state is not None:
            cap, _, attr = str(state).partition(".")
            entry = _lookup(self.hub.saved_device_data(device), f"__state_cache.{component}.{cap}.{attr}",
                            f"{device} state")
            actual, what = entry.get("value"), f"{device} {state}"
        else:
            actual = _lookup(self.hub.saved_device_data(device), str(field), f"{device} field")
            what = f"{device} field {field}"
        if actual != equals:
            raise AssertionFailed(f"{what} is {actual!r}, expected {equals!r}")
        self.out(f"ok: {what} == {equals!r}")


def prompt_help() -> str:
    """The steps, each with a line to type at the prompt."""
    lines = ["Steps (the same as in a --script file; words may also be given as name=value):"]
    for name, verb in VERBS.items():
        lines += [f"  {name:14} {verb.help}", f"  {'':14}   e.g. {verb.example}"]
    lines += ["  help           this list", "  quit           graceful stop and exit (also Ctrl-D)"]
    return "\n".join(lines)


def script_help() -> str:
    """The steps, each with its line in a --script file and at the prompt."""
    lines = ["Scenario steps (a YAML list in --script, or typed at the prompt):"]
    for name, verb in VERBS.items():
        lines += [f"  {name:14} {verb.help}", f"      {verb.yaml}", f"      hubrt> {verb.example}"]
    return "\n".join(lines)
