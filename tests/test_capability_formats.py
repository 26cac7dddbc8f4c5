"""Capability definitions in the platform's own format, unknown capabilities (a warning, or an error
under --strict) and what a driver can do with them."""

import json
import textwrap

import pytest

from conftest import hubrt, make_driver
from hubrt.capabilities import Catalogue
from hubrt.inputs import InputError
from hubrt.package import load_package

PLATFORM = textwrap.dedent("""\
    id: x.fan
    version: 1
    status: proposed
    name: Fan
    attributes:
      speed:
        schema:
          type: object
          properties:
            value: {type: integer, minimum: 0, maximum: 4}
            unit: {type: string, enum: [rpm], default: rpm}
          additionalProperties: false
          required: [value]
      mode:
        schema:
          type: object
          properties:
            value: {type: string, enum: [quiet, turbo]}
      shape:
        schema:
          type: object
          properties:
            value: {$ref: SomethingShared}
    commands:
      setSpeed:
        name: setSpeed
        arguments:
          - name: speed
            optional: false
            schema: {type: integer, minimum: 0, maximum: 4}
          - name: boost
            optional: true
            schema: {type: boolean}
    """)

PRESENTATION = '{"dashboard": {"states": []}, "detailView": [], "id": "x.fan", "version": 1}'

PROFILE = "name: fan\ncomponents:\n  - id: main\n    capabilities:\n      - id: x.fan\n      - id: switch\n"


def fan_driver(root, body="", profile=PROFILE, files=None):
    return make_driver(root, f"""
        local caps = require "st.capabilities"
        local log = require "log"
        require("st.driver")("fan", {{capability_handlers = {{["x.fan"] = {{setSpeed = function(driver, device, cmd)
          {body}
        end}}}}}}):run()
    """, key="fan", profiles={"fan": profile}, files=files)


@pytest.mark.parametrize("ext, text", [("yml", PLATFORM), ("json", None)])
def test_the_platforms_format_is_read_and_presentations_are_skipped(tmp_path, ext, text):
    import json

    import yaml
    text = text or json.dumps(yaml.safe_load(PLATFORM))
    pkg = fan_driver(tmp_path / "fan", files={f"capabilities/fan.{ext}": text,
                                              "capabilities/fan.presentation.json": PRESENTATION})
    definition = load_package(pkg, Catalogue.standard()).capabilities["x.fan"]
    assert definition["attributes"]["speed"] == {"type": "integer", "minimum": 0, "maximum": 4, "units": ["rpm"]}
    assert definition["attributes"]["mode"] == {"type": "enum", "values": ["quiet", "turbo"]}
    assert definition["attributes"]["shape"] == {"type": "any"}
    assert definition["commands"]["setSpeed"] == [{"type": "integer", "minimum": 0, "maximum": 4, "name": "speed"},
                                                  {"type": "boolean", "name": "boost", "optional": True}]


def test_platform_definitions_check_commands_and_events(new_hub, tmp_path):
    pkg = fan_driver(tmp_path / "fan", """
        device:emit_event(caps["x.fan"].speed({value = cmd.args.speed, unit = "rpm"}))
        device:emit_event(caps["x.fan"].mode.turbo())
        local ok, err = pcall(caps["x.fan"].speed, 9)
        log.info("speed 9:", ok, err)
    """, files={"capabilities/fan.yml": PLATFORM})
    hub = new_hub()
    hub.install(pkg)
    hub.add_device("fan", "fan", label="Fan")
    hub.command("Fan", "x.fan", "setSpeed", [3])
    assert [(e.attribute, e.value, e.unit) for e in hub.events] == [("speed", 3, "rpm"), ("mode", "turbo", None)]
    assert any("speed 9: false" in r.text and "above the maximum 4" in r.text for r in hub.logs)
    from hubrt.hub import HubError
    with pytest.raises(HubError, match="above the maximum 4"):
        hub.command("Fan", "x.fan", "setSpeed", [5])


def test_a_capability_nobody_defines_is_a_warning_and_usable(new_hub, tmp_path):
    pkg = fan_driver(tmp_path / "fan", """
        device:emit_event(caps["x.fan"].speed(cmd.args.arg1))
        device:emit_event(caps["x.fan"].direction.reverse())
        log.info("command name:", caps["x.fan"].commands.setSpeed.NAME)
    """)
    hub = new_hub()
    hub.install(pkg)
    warnings = [r.text for r in hub.logs if r.level == "warn"]
    assert any("profiles/fan.yml:5: unknown capability 'x.fan'" in w and "unchecked" in w for w in warnings), warnings
    hub.add_device("fan", "fan", label="Fan")
    hub.command("Fan", "x.fan", "setSpeed", [7])
    assert [(e.attribute, e.value) for e in hub.events] == [("speed", 7), ("direction", "reverse")]
    assert any("command name: setSpeed" in r.text for r in hub.logs)


def test_strict_refuses_what_no_definition_describes(new_hub, tmp_path):
    hub = new_hub(strict=True)
    with pytest.raises(InputError, match=r"profiles/fan.yml:5: unknown capability 'x.fan'.*--strict"):
        hub.install(fan_driver(tmp_path / "fan"))


UNKNOWN_MEMBER = """
local caps = require "st.capabilities"
require("st.driver")("m", {capability_handlers = {switch = {on = function(driver, device)
  device:emit_event(caps.switch.sparkle("lots"))
  driver.datastore.command = caps.switch.commands.blink.NAME
end}}}):run()
"""


@pytest.mark.parametrize("strict", [False, True])
def test_an_unknown_attribute_or_command_of_a_known_capability(new_hub, tmp_path, strict):
    hub = new_hub(strict=strict)
    hub.install(make_driver(tmp_path / "m", UNKNOWN_MEMBER))
    hub.add_device("test-driver", "switch", label="S")
    hub.command("S", "switch", "on")
    texts = [r.text for r in hub.logs if r.level in ("warn", "error")]
    if strict:
        assert any("init.lua:4: capability 'switch' has no attribute 'sparkle'" in t and "--strict" in t
                   for t in texts), texts
        assert not hub.events
    else:
        assert any("init.lua:4: capability 'switch' has no attribute 'sparkle'" in t for t in texts), texts
        assert any("init.lua:5: capability 'switch' has no command 'blink'" in t for t in texts), texts
        assert [(e.attribute, e.value) for e in hub.events] == [("sparkle", "lots")]
        assert hub.store.load("test-driver")["command"] == "blink"


def test_an_event_for_a_capability_the_profile_lacks_is_dropped_with_a_warning(new_hub, tmp_path):
    hub = new_hub()
    hub.install(make_driver(tmp_path / "d", """
        local caps = require "st.capabilities"
        require("st.driver")("d", {capability_handlers = {switch = {on = function(driver, device)
          local ok, why = device:emit_event(caps.temperatureMeasurement.temperature({value = 20, unit = "C"}))
          driver.datastore.dropped = {ok, why}
          driver.datastore.sent = device:emit_event(caps.switch.switch.on()) ~= nil
        end}}}):run()
    """, profiles={"p": "name: p\ncomponents:\n  - id: main\n    capabilities:\n      - id: switch\n"}))
    hub.add_device("test-driver", "p", label="Plug")
    hub.command("Plug", "switch", "on")
    assert [(e.capability, e.value) for e in hub.events] == [("switch", "on")]
    saved = hub.store.load("test-driver")  # as the hub's library answers: false and why; the event when sent
    assert saved["dropped"][0] is False and "does not support capability temperatureMeasurement" in saved["dropped"][1]
    assert saved["sent"] is True
    assert any("init.lua:4:" in r.text and "does not support capability temperatureMeasurement" in r.text
               and "not sent" in r.text for r in hub.logs if r.level == "warn")


def test_a_users_capability_folder_and_environment(tmp_path):
    folder = tmp_path / "caps"
    folder.mkdir()
    (folder / "fan.yml").write_text(PLATFORM)
    pkg = fan_driver(tmp_path / "fan", 'device:emit_event(caps["x.fan"].speed(2))')
    script = tmp_path / "s.yml"
    script.write_text("- add_device: {profile: fan, label: Fan}\n"
                      "- command: {device: Fan, capability: x.fan, command: setSpeed, args: [9]}\n")
    import os
    for n, (args, env) in enumerate(((["--capabilities", str(folder)], {}), ([], {"HUBRT_CAPABILITIES": str(folder)}))):
        result = hubrt("run", str(pkg), "--script", str(script), "--state", str(tmp_path / f"st{n}"), *args,
                       env={**os.environ, **env})
        assert result.returncode == 2 and "above the maximum 4" in result.stderr, result.stderr
        assert "unknown capability" not in result.stderr


def test_the_hub_libraries_definition_files_are_read_as_data(tmp_path):
    """A folder like the hub's Lua libraries' st/capabilities/generated: each definition a Lua file
    returning its JSON in a long string, shared schemas in types/ (their `$ref`s followed). Read,
    never run: a file that is anything else is refused with its name."""
    folder = tmp_path / "generated"
    (folder / "types").mkdir(parents=True)
    header = "-- a comment, as the libraries' files start with\n"
    (folder / "types" / "Speed.lua").write_text(header + 'return [[{"type": "integer", "minimum": 0, "maximum": 4}]]\n')
    (folder / "types" / "Rpm.lua").write_text(header + 'return [[{"type": "string", "enum": ["rpm"]}]]\n')
    (folder / "x.fan.lua").write_text(header + "return [==[" + json.dumps({
        "id": "x.fan", "version": 1,
        "attributes": {"speed": {"schema": {"type": "object", "properties": {
            "value": {"$ref": "Speed"}, "unit": {"$ref": "Rpm"}}, "required": ["value", "unit"]}},
                       "shape": {"schema": {"type": "object", "properties": {"value": {"$ref": "Unknown"}}}}},
        "commands": {"setSpeed": {"arguments": [{"name": "speed", "schema": {"$ref": "Speed"}}]}}}) + "]==]\n")
    fan = Catalogue({}).extended(folder)["x.fan"]
    assert fan["attributes"]["speed"] == {"type": "integer", "minimum": 0, "maximum": 4, "units": ["rpm"],
                                          "unit_required": True}
    assert fan["attributes"]["shape"] == {"type": "any"}
    assert fan["commands"]["setSpeed"] == [{"type": "integer", "minimum": 0, "maximum": 4, "name": "speed"}]
    shown = hubrt("capabilities", "x.fan", "--capabilities", str(folder), check=True).stdout
    assert "attribute speed: integer 0..4 [unit required, one of rpm]" in shown
    libs = tmp_path / "lua_libs-api_v99"  # the libraries' root will do too
    (libs / "st" / "capabilities").mkdir(parents=True)
    folder.rename(libs / "st" / "capabilities" / "generated")
    assert "attribute speed" in hubrt("capabilities", "x.fan", "--capabilities", str(libs), check=True).stdout
    folder = libs / "st" / "capabilities" / "generated"
    (folder / "broken.lua").write_text("os.execute('echo run')\n")
    result = hubrt("capabilities", "--capabilities", str(folder))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{folder / 'broken.lua'}: not a capability definition of the hub's libraries" in result.stderr
