"""Every YAML file hubrt reads means what it means to the platform's tools (YAML 1.2 core schema):
`on`, `off`, `yes`, `no` and dates are text, only true/false are booleans."""

import textwrap

from conftest import DIMMER, hubrt, make_driver
from hubrt.capabilities import Catalogue
from hubrt.inputs import read_yaml
from hubrt.package import load_package

WORDS = ["on", "off", "yes", "no", "2024-01-02", "Yes", "OFF"]


def test_plain_words_and_dates_are_text_and_numbers_are_yaml_1_2(tmp_path):
    path = tmp_path / "x.yml"
    path.write_text("[" + ", ".join(WORDS) + ", true, FALSE, 017, 0o17, 0x1f, 1e3, .inf, ~, 12:30]\n")
    assert read_yaml(path)[:len(WORDS)] == WORDS
    assert read_yaml(path)[len(WORDS):-2] == [True, False, 17, 15, 31, 1000.0, float("inf")]
    assert read_yaml(path)[-2:] == [None, "12:30"]


def test_config_profile_and_capability_files_read_words_as_text(tmp_path):
    profile = textwrap.dedent("""\
        name: p
        components:
          - id: main
            capabilities:
              - id: switch
              - id: x.mode
        preferences:
    """) + "".join(f"  - {{name: pref{i}, definition: {{default: {w}}}}}\n" for i, w in enumerate(WORDS))
    pkg = make_driver(tmp_path / "pkg", "", profiles={"p": profile}, files={
        "capabilities/mode.yml": "x.mode:\n  attributes:\n    mode: {type: enum, values: [on, off, yes, no]}\n"
                                 "  commands:\n    set: [{name: mode, type: enum, values: [on, off, yes, no]}]\n"})
    (pkg / "config.yml").write_text("name: yes\npackageKey: on\n")
    package = load_package(pkg, Catalogue.standard())
    assert (package.name, package.package_key) == ("yes", "on")
    assert list(package.profiles["p"].default_preferences().values()) == WORDS
    assert package.capabilities["x.mode"]["attributes"]["mode"]["values"] == ["on", "off", "yes", "no"]
    assert package.capabilities.command_args("x.mode", "set", ["yes"]) == {"mode": "yes"}


def test_a_scenario_can_say_on_and_off_unquoted(tmp_path):
    script = tmp_path / "s.yml"
    script.write_text(textwrap.dedent("""\
        - add_device: {profile: dimmer, label: Lamp, preferences: {since: 2024-01-02}}
        - command: {device: Lamp, capability: switch, command: on}
        - assert: {device: Lamp, state: switch.switch, equals: on}
        - command: {device: Lamp, capability: switch, command: off}
        - assert: {device: Lamp, state: switch.switch, equals: off}
    """))
    result = hubrt("run", str(DIMMER), "--script", str(script), "--state", str(tmp_path / "st"))
    assert result.returncode == 0, result.stderr
    assert "ok: Lamp switch.switch == 'off'" in result.stdout
