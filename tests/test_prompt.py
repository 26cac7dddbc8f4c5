"""The prompt of `hubrt run`, used as a person uses it: on a pseudo-terminal (pexpect), typing,
pressing Tab, Ctrl-C, Ctrl-D and the arrow keys."""

import json
import os
import re
import signal
import sys
import time

import pexpect
import pytest

from conftest import DIMMER, ROOT, hubrt, make_driver

ENV = {**os.environ, "NO_COLOR": "1", "PROMPT_TOOLKIT_NO_CPR": "1", "TERM": "xterm"}
PROMPT = "hubrt>"  # (prompt_toolkit also redraws it when a line is accepted: not a sign a step is done)
UP = "\x1b[A"


def shown(attribute: str, value) -> str:
    """An event line's end, whatever text styles the terminal puts around the value."""
    return re.escape(attribute) + r" = (\x1b\[[0-9;]*m)*" + re.escape(repr(value))


# What a terminal may put between two characters it draws: control sequences, line moves.
_DRAWING = r"(?:\x1b\[[0-9;?]*[A-Za-z]|\r|\n)*"


def drawn(text: str) -> str:
    """The characters of `text` in order as the screen shows them, whatever the terminal interleaves
    (under load prompt_toolkit may draw a completed word in two writes, with cursor moves between)."""
    return _DRAWING.join(re.escape(c) for c in text)


def spawn(*drivers, state) -> pexpect.spawn:
    child = pexpect.spawn(sys.executable, ["-m", "hubrt", "run", *map(str, drivers), "--state", str(state)],
                          cwd=str(ROOT), env=ENV, encoding="utf-8", timeout=15, dimensions=(40, 200))
    child.expect(PROMPT)
    return child


@pytest.fixture
def prompt(tmp_path):
    children = []

    def start(*drivers, state=tmp_path / "state"):
        children.append(spawn(*(drivers or [DIMMER]), state=state))
        return children[-1]

    yield start
    for child in children:
        child.terminate(force=True)


def test_the_natural_lines_just_work(prompt, tmp_path):
    child = prompt()
    child.sendline("add_device dimmer Lamp")
    child.expect(shown("switchLevel.level", 100))
    child.sendline("command Lamp switch on")
    child.expect(shown("switch.switch", "on"))
    child.sendline('command Lamp switch "off"')
    child.expect(shown("switch.switch", "off"))
    child.sendline("command Lamp switchLevel setLevel 30")
    child.expect(shown("switchLevel.level", 30))
    child.sendline("assert device=Lamp state=switch.switch equals=on")
    child.expect("ok: Lamp switch.switch == 'on'")
    child.sendline("add_device dimmer Desk\\ lamp")  # escapes and quotes as a shell reads them
    child.expect("Desk lamp switchLevel")
    child.sendline("assert device='Desk lamp' state=switch.switch equals=off")
    child.expect("ok: Desk lamp switch.switch == 'off'")
    child.sendline("help")
    child.expect(re.escape("e.g. command Lamp switchLevel setLevel 40"))
    child.sendline("quit")
    child.expect(pexpect.EOF)
    assert child.wait() == 0
    store = json.loads(hubrt("store", "show", "virtual-dimmer", "--state", str(tmp_path / "state"), check=True).stdout)
    assert sorted(str(v.get("level")) for k, v in store.items() if k.startswith("__")) == ["30", "None"]


@pytest.mark.parametrize("line, message", [
    ("command Lamp switchLevel setLevel abc", "switchLevel.setLevel's 'level' takes an integer, got 'abc'"),
    ("command Lamp switchLevel setLevel 3.5", "switchLevel.setLevel's 'level' takes an integer, got '3.5'"),
    ("command Lamp switchLevel setLevel 150", "150 is above the maximum 100"),
    ("command Lamp switch on now", "switch.on takes 0 argument(s) (none), got 1"),
    ('add_device dimmer "unclosed', "prompt: no closing quotation"),
    ("advance soon", "advance takes a finite number of seconds >= 0, got 'soon'"),
])
def test_a_wrong_word_is_refused_naming_it(prompt, line, message):
    child = prompt()
    child.sendline("add_device dimmer Lamp")
    child.expect(shown("switchLevel.level", 100))
    child.sendline(line)
    child.expect(re.escape(message))
    child.sendline("command Lamp switch on")  # and the hub goes on
    child.expect(shown("switch.switch", "on"))




def test_tab_completes_labels_commands_and_enum_values(prompt, tmp_path):
    pkg = make_driver(tmp_path / "modes", """
        local log = require "log"
        require("st.driver")("modes", {capability_handlers = {["x.mode"] = {set = function(_, device, command)
          log.info("mode is now", command.args.mode)
        end}}}):run()
    """, key="modes", profiles={"m": "name: m\ncomponents:\n  - id: main\n    capabilities:\n      - id: x.mode\n"},
        files={"capabilities/mode.yml": "x.mode:\n  attributes:\n    mode: {type: enum, values: [eco, comfort]}\n"
                                        "  commands:\n    set: [{name: mode, type: enum, values: [eco, comfort]}]\n"})
    child = prompt(DIMMER, pkg)
    child.sendline("add_device dimmer 'Desk lamp' virtual-dimmer")
    child.expect(shown("switchLevel.level", 100))
    child.sendline("add_device m Heater modes")
    child.expect("Heater")

    def complete(typed: str, completed: str) -> None:
        child.send(typed + "\t")
        child.expect(drawn(completed))  # what a person waits to see before typing on

    complete("command De", "'Desk lamp'")  # a label with a space: completed, quoted
    complete(" switchL", "switchLevel")  # a capability of that device
    complete(" setL", "setLevel")  # a command of that capability
    child.send(" 20\r")
    child.expect(shown("switchLevel.level", 20))
    complete("command He", "Heater")
    complete(" x.m", "x.mode")
    complete(" set co", "comfort")  # an enum value of the command's argument
    child.send("\r")
    child.expect("mode is now comfort")
    complete("assert dev", "device=")  # assert is typed by name: the names, then their values
    complete("Des", "device='Desk lamp'")
    complete(" sta", "state=")
    complete("switchL", "switchLevel.level")  # the terminal redraws only what changed
    child.send(" equals=20\r")
    child.expect("ok: Desk lamp switchLevel.level == 20")


def test_ctrl_c_clears_the_line_and_ctrl_d_stops_gracefully(prompt, tmp_path):
    child = prompt()
    child.send("add_device dimmer Nope")
    child.sendcontrol("c")
    child.expect(PROMPT)
    child.sendline("add_device dimmer Lamp")
    child.expect(shown("switchLevel.level", 100))
    child.expect(PROMPT)
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    assert child.wait() == 0
    devices = hubrt("devices", "--state", str(tmp_path / "state"), check=True).stdout
    assert "'Lamp'" in devices and "Nope" not in devices


def test_ctrl_c_interrupts_a_running_step_and_the_hub_goes_on(prompt):
    child = prompt()
    child.sendline("add_device dimmer Lamp")
    child.expect(shown("switchLevel.level", 100))
    child.sendline("command Lamp switch on")
    child.expect(shown("switch.switch", "on"))
    child.sendline("wait 60")
    time.sleep(1)  # the step is running
    child.kill(signal.SIGINT)  # what Ctrl-C sends while a step runs (the terminal is not in raw mode then)
    child.expect("interrupted", timeout=10)
    child.sendline("command Lamp switch off")
    child.expect(shown("switch.switch", "off"))


def test_the_hub_goes_on_while_nobody_types(prompt, tmp_path):
    """At the prompt (real clock) a timer comes due and its handler runs without a line typed."""
    pkg = make_driver(tmp_path / "later", """
        local log = require "log"
        require("st.driver")("later", {capability_handlers = {switch = {on = function(driver)
          driver:call_with_delay(1, function() log.info("a second later") end)
          log.info("timer set")
        end}}}):run()
    """, key="later")
    child = prompt(pkg)
    child.sendline("add_device switch S")
    child.expect("hubrt> ")
    child.sendline("command S switch on")
    child.expect("timer set")
    child.expect("a second later", timeout=10)  # nothing typed meanwhile
    child.sendline("quit")
    child.expect(pexpect.EOF)


def test_history_is_kept_across_runs(prompt, tmp_path):
    child = prompt()
    child.sendline("add_device dimmer Lamp")
    child.expect(shown("switchLevel.level", 100))
    child.sendline("print devices")
    child.expect("driver=virtual-dimmer")
    child.sendline("quit")
    child.expect(pexpect.EOF)
    assert (tmp_path / "state" / "prompt-history").is_file()
    child = prompt()
    time.sleep(0.5)  # prompt_toolkit reads the history file in the background
    child.send(UP + UP + "\r")  # the line before the previous run's `quit`
    child.expect("Lamp  \\(")


def test_sigterm_at_the_prompt_stops_gracefully(prompt, tmp_path):
    child = prompt()
    child.sendline("add_device dimmer Lamp")
    child.expect(shown("switchLevel.level", 100))
    child.sendline("command Lamp switchLevel setLevel 55")
    child.expect(shown("switchLevel.level", 55))
    time.sleep(0.5)  # back at the prompt, reading
    child.kill(signal.SIGTERM)
    child.expect("told to stop")
    child.expect(pexpect.EOF)
    assert child.wait() == 0
    store = json.loads(hubrt("store", "show", "virtual-dimmer", "--state", str(tmp_path / "state"), check=True).stdout)
    assert [v["level"] for k, v in store.items() if k.startswith("__")] == [55]


def test_every_example_in_the_help_is_a_valid_step(new_hub, tmp_path):
    from hubrt.prompt import parse_line
    from hubrt.scenario import VERBS, load_scenario
    script = tmp_path / "examples.yml"
    script.write_text("".join(verb.yaml + "\n" for verb in VERBS.values()))
    assert [step.verb for step in load_scenario(script)] == list(VERBS)
    hub = new_hub()
    hub.install(DIMMER)
    hub.add_device("virtual-dimmer", "dimmer", label="Lamp")
    for name, verb in VERBS.items():
        step = parse_line(hub, verb.example)
        assert step.verb == name, verb.example
    assert parse_line(hub, VERBS["command"].example).args["args"] == [40]
