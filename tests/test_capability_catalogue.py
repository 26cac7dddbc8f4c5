"""The standard capability catalogue hubrt ships: its shape (it reads as any capability file must),
every enum value's constructor in Lua on both engines, what later platform versions added, and the
`hubrt capabilities` command that shows it."""

import json
import re

import pytest
import yaml

from conftest import ROOT, hubrt
from hubrt.capabilities import Catalogue, CapabilityError
from hubrt.package import load_package

STANDARD = Catalogue.standard()


def test_the_catalogue_reads_as_a_capability_file_must(tmp_path):
    """Written out in hubrt's own format and read back the way a package's capabilities/ folder
    is read, every definition passes the same checks, unchanged."""
    assert len(STANDARD.definitions) >= 263
    (tmp_path / "all.json").write_text(json.dumps(
        {cap_id: {"attributes": d["attributes"], "commands": d["commands"]} for cap_id, d in
         STANDARD.definitions.items()}))
    again = Catalogue({}).extended(tmp_path)
    assert set(again.definitions) == set(STANDARD.definitions)
    for cap_id, definition in STANDARD.definitions.items():
        assert again[cap_id]["attributes"] == definition["attributes"], cap_id
        assert again[cap_id]["commands"] == definition["commands"], cap_id


def enum_values():
    for cap_id, definition in sorted(STANDARD.definitions.items()):
        for attr_id, schema in sorted(definition["attributes"].items()):
            if schema["type"] == "enum":
                for value in schema["values"]:
                    yield cap_id, attr_id, value


def lua_text(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid Lua string literal for these texts


def test_every_enum_value_has_its_constructor(lua_hub):
    """capabilities.<cap>.<attribute>.<value>() makes the event, and .NAME is the value (drivers
    compare command arguments with it)."""
    values = list(enum_values())
    assert len(values) > 500
    rows = ",\n".join(f"{{{lua_text(c)}, {lua_text(a)}, {lua_text(v)}, {lua_text(re.sub(r'[^0-9A-Za-z_]', '_', v))}}}"
                      for c, a, v in values)
    wrong, seen = lua_hub.run(f"""
        local caps = require "st.capabilities"
        local wrong, seen = {{}}, 0
        for _, row in ipairs({{ {rows} }}) do
          local cap, attr, value, name = row[1], row[2], row[3], row[4]
          local ok, event = pcall(function() return caps[cap][attr][name]() end)
          if not ok or event.state.value ~= value or event.capability_id ~= cap or event.attribute_id ~= attr
              or caps[cap][attr][name].NAME ~= value then
            wrong[#wrong + 1] = cap .. "." .. attr .. "." .. name .. ": " .. tostring(ok and event.state.value or event)
          end
          seen = seen + 1
        end
        return table.concat(wrong, "\\n"), seen
        """)
    assert wrong.decode() == ""
    assert seen == len(values)


def test_the_standard_list_has_what_the_platform_added_by_api_13(lua_hub):
    """Attributes, values and commands of the 2025 definitions that the API 3 list lacked, as the
    public drivers use them (ranges, lock values, thermostat modes...)."""
    assert lua_hub.run("""
        local caps = require "st.capabilities"
        local range = caps.switchLevel.levelRange({value = {minimum = 1, maximum = 100}})
        local temp = caps.temperatureMeasurement.temperatureRange({value = {minimum = 5, maximum = 40}, unit = "C"})
        return range.state.value.maximum, temp.state.unit, caps.lock.lock.unlatched().state.value,
               caps.thermostatMode.thermostatMode.comfort().state.value, caps.lock.commands.unlatch.NAME,
               caps.operationalState.operationalState.running().state.value
        """) == (100, b"C", b"unlatched", b"comfort", b"unlatch", b"running")
    assert "is not one of" in lua_hub.fails('return require("st.capabilities").lock.lock("ajar")')
    assert "expected an integer" in lua_hub.fails(
        'return require("st.capabilities").switchLevel.levelRange({value = {minimum = "low"}})')
    assert "a unit is required" in lua_hub.fails(
        'return require("st.capabilities").temperatureMeasurement.temperatureRange({value = {minimum = 5}})')
    assert STANDARD.command_args("thermostatMode", "setThermostatMode", ["rush hour"]) == {"mode": "rush hour"}
    with pytest.raises(CapabilityError, match="is not one of"):
        STANDARD.command_args("thermostatMode", "setThermostatMode", ["tepid"])


def test_later_additions_add_only_what_the_standard_list_lacks(lua_hub):
    """additions.yml (what public drivers use beyond API 13) adds attributes and commands to the
    standard definitions and changes none of theirs."""
    standard = json.loads((ROOT / "hubrt" / "capabilities" / "standard.json").read_text())["capabilities"]
    additions = yaml.safe_load((ROOT / "hubrt" / "capabilities" / "additions.yml").read_text())
    for cap_id, addition in additions.items():
        for kind in ("attributes", "commands"):
            overlap = set(addition.get(kind) or {}) & set(standard.get(cap_id, {}).get(kind) or {})
            assert not overlap, f"additions.yml changes {cap_id}'s own {kind}: {overlap}"
    assert lua_hub.run("""
        local caps = require "st.capabilities"
        return caps.thermostatOperatingState.supportedThermostatOperatingStates({"idle", "heating"}).state.value[2],
               caps.lockCodes.commands.migrate.NAME, caps.windowShadePreset.position(30).state.value,
               caps.windowShadePreset.commands.presetPosition.NAME
        """) == (b"heating", b"migrate", 30, b"presetPosition")


@pytest.mark.parametrize("package", sorted(p.name for p in (ROOT / "drivers").iterdir() if (p / "config.yml").exists()))
def test_our_drivers_need_no_capability_beyond_the_catalogue(package):
    load_package(ROOT / "drivers" / package, STANDARD, strict=True)


def test_the_capabilities_command_lists_and_shows_definitions(tmp_path):
    listing = hubrt("capabilities", check=True).stdout
    assert "mediaPlayback" in listing and "switchLevel" in listing
    shown = hubrt("capabilities", "mediaPlayback", check=True).stdout
    assert "playbackStatus" in shown and "fast forwarding" in shown and "setPlaybackStatus" in shown
    (tmp_path / "fan.yml").write_text("x.fan:\n  attributes:\n    speed: {type: integer, minimum: 0, maximum: 4}\n")
    assert "speed" in hubrt("capabilities", "x.fan", "--capabilities", str(tmp_path), check=True).stdout
    unknown = hubrt("capabilities", "mediaPlaybak")
    assert unknown.returncode == 2 and "mediaPlayback" in unknown.stderr and "Traceback" not in unknown.stderr
