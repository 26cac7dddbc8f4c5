"""The interactive prompt of `hubrt run`: one scenario step per line, typed like a shell command.

A line is split as a shell splits it (quotes, backslashes), and each word gets the type
its step expects: `advance 10` a number; `command Lamp switchLevel setLevel 30` an integer
level, because setLevel's definition says so; `command Lamp switch on` the text "on".
A word that does not fit is refused, naming the word and what was expected. Tab completes
step names, device labels, the capabilities and commands of that device and enum values;
history is kept in the state directory across runs. Ctrl-C clears the line (or
interrupts the step that is running), Ctrl-D or `quit` stops the hub gracefully.
Line editing is prompt_toolkit's.
"""

from __future__ import annotations

import asyncio
import shlex
import signal
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml
from prompt_toolkit import PromptSession
from prompt_toolkit.application import run_in_terminal
from prompt_toolkit.completion import Completer, Completion
from prompt_toolkit.document import Document
from prompt_toolkit.history import FileHistory

from hubrt.hub import STOP_KINDS, Hub, HubError, StopRequested
from hubrt.inputs import InputError, Loader
from hubrt.scenario import VERBS, AssertionFailed, Runner, ScenarioError, Step, make_step, prompt_help

HISTORY_NAME = "prompt-history"
PRINTABLE = ("datastore", "devices", "events", "state")
_TEXT_TYPES = ("string", "enum")


def split_words(line: str) -> list[tuple[str, bool]]:
    """(word, whether it was quoted) for each word of a line, split as a shell splits it: a word that
    starts with a quote is text, whatever it looks like ("on", '40')."""
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    words: list[tuple[str, bool]] = []
    end = 0
    try:
        while True:
            start = end + len(line[end:]) - len(line[end:].lstrip())
            token = lexer.get_token()
            if token is None:
                return words
            words.append((token, line[start:start + 1] in "'\""))
            end = lexer.instream.tell()
    except ValueError as e:  # an unclosed quote, a backslash at the end
        raise ScenarioError(f"prompt: {str(e).lower()}") from None


def yaml_word(word: str) -> Any:
    """A word as YAML 1.2 reads it (40 is a number, on is text, {a: 1} a mapping); itself if not YAML."""
    try:
        return yaml.load(word, Loader=Loader)
    except yaml.YAMLError:
        return word


def _typed(schema: dict, word: str, quoted: bool, what: str) -> Any:
    kind = schema["type"]
    if kind in _TEXT_TYPES and (kind == "string" or all(isinstance(v, str) for v in schema["values"])):
        return word
    value = word if quoted else yaml_word(word)
    expected = {"integer": (int,), "number": (int, float), "boolean": (bool,), "array": (list,),
                "object": (dict,)}.get(kind)
    if expected is None:  # an enum of numbers
        return value
    if isinstance(value, bool) != (kind == "boolean") or not isinstance(value, expected):
        article = {"integer": "an integer", "number": "a number", "boolean": "true or false",
                   "array": "a list (inline YAML or JSON, e.g. '[1, 2]')",
                   "object": "a mapping (inline YAML or JSON, e.g. '{hue: 10}')"}[kind]
        raise ScenarioError(f"prompt: {what} takes {article}, got {word!r}")
    return value


def command_args(hub: Hub, device: str, capability: str, command: str, words: list[tuple[str, bool]]) -> list:
    """The arguments of `command DEVICE CAPABILITY COMMAND WORD...`, typed by the command's definition."""
    spec = _command_spec(hub, device, capability, command)
    if spec is None:  # the hub says what is wrong with the device, capability or command
        return [word if quoted else yaml_word(word) for word, quoted in words]
    if len(words) > len(spec):
        names = ", ".join(arg["name"] for arg in spec) or "none"
        raise ScenarioError(f"prompt: {capability}.{command} takes {len(spec)} argument(s) ({names}), "
                            f"got {len(words)}")
    return [_typed(arg, word, quoted, f"{capability}.{command}'s {arg['name']!r}")
            for arg, (word, quoted) in zip(spec, words)]


def _device_capabilities(hub: Hub, ref: str) -> tuple[list[str], dict]:
    """The capability ids of a device's profile (all components, in order) and its driver's
    definitions; nothing for a device the hub does not know."""
    try:
        device = hub.device(ref)
    except HubError:
        return [], {}
    package = hub.packages[device.driver]
    caps = dict.fromkeys(cap for caps in package.profiles[device.profile].components.values() for cap in caps)
    return list(caps), package.capabilities.definitions


def _command_spec(hub: Hub, device: str, capability: str, command: str) -> list | None:
    """A command's argument definitions, or None where the device, capability or command is unknown."""
    definition = _device_capabilities(hub, device)[1].get(capability)
    return definition["commands"].get(command) if definition else None


def parse_line(hub: Hub, line: str) -> Step | None:
    """A line typed at the prompt as a step (None for an empty line)."""
    words = split_words(line)
    if not words:
        return None
    verb, rest = words[0][0], words[1:]
    if verb not in VERBS:
        return make_step(verb, None, "prompt")  # refused, with a suggestion
    params = VERBS[verb].params
    named = {}
    for word, quoted in rest[:]:  # name=value words, in any order
        name, sep, value = word.partition("=")
        if sep and not quoted and name in params:
            named[name] = _param(name, value, False)
            rest.remove((word, quoted))
    if verb == "command" and len(rest) > 3:
        args = command_args(hub, rest[0][0], rest[1][0], rest[2][0], rest[3:])
        values: list[Any] = [word for word, _ in rest[:3]] + [args]
    else:
        if len(rest) > len(params):
            raise ScenarioError(f"prompt: {verb} takes at most {len(params)} values ({' '.join(params)}); "
                                f"e.g. {VERBS[verb].example}")
        values = [_param(name, word, quoted) for name, (word, quoted) in zip(params, rest)]
    return make_step(verb, {**dict(zip(params, values)), **named}, "prompt")


# parameters whose words are read as YAML (numbers, mappings); the rest are names
_YAML_PARAMS = ("seconds", "preferences", "args", "http", "ssdp", "mdns")


def _param(name: str, word: str, quoted: bool) -> Any:
    if name in _YAML_PARAMS or (name == "equals" and not quoted):
        return yaml_word(word)
    return word


class StepCompleter(Completer):
    """Completes what can come next: step names, device labels, capabilities, commands, enum values."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub

    def get_completions(self, document: Document, complete_event: Any) -> Iterator[Completion]:
        text = document.text_before_cursor
        try:
            words = [word for word, _ in split_words(text)]
        except ScenarioError:
            return
        typed = document.get_word_before_cursor(WORD=True) if text and not text[-1].isspace() else ""
        if typed:
            words.pop()
        current = typed.lstrip("'\"")
        name, named, value = typed.partition("=")
        if named:  # name=value: only the value is quoted, so that the word stays a named one
            value = value.lstrip("'\"")
            for choice in self.named_choices(words, name):
                if choice.startswith(value):
                    yield Completion(f"{name}={shlex.quote(choice)}", start_position=-len(typed))
            return
        for choice in self.choices(words):
            if choice.startswith(current):
                yield Completion(shlex.quote(choice), start_position=-len(typed))

    def named_choices(self, words: list[str], name: str) -> list[str]:
        """Values for a `name=` word: labels for device=, the device's CAP.ATTR for state=..."""
        given = dict(w.partition("=")[::2] for w in words[1:] if "=" in w)
        if name == "device":
            return [d.label for d in self.hub.devices.values()]
        if name == "driver":
            return list(self.hub.packages)
        if name == "state" and "device" in given:
            caps, definitions = _device_capabilities(self.hub, given["device"])
            return [f"{cap}.{attr}" for cap in caps for attr in definitions.get(cap, {}).get("attributes", {})]
        return []

    def choices(self, words: list[str]) -> list[str]:
        hub = self.hub
        if not words:
            return [*VERBS, "help", "quit"]
        verb, n = words[0], len(words)
        labels = [d.label for d in hub.devices.values()]
        if verb == "assert":  # typed by name: assert device=Lamp state=switch.switch equals=on
            given = {w.partition("=")[0] for w in words[1:]}
            return [f"{p}=" for p in VERBS["assert"].params if p not in given]
        if verb in ("remove_device", "update_device") and n == 1:
            return labels
        if verb == "add_device" and n == 1:
            return sorted({p for package in hub.packages.values() for p in package.profiles})
        if (verb == "add_device" and n == 3) or (verb == "discover" and n == 1):
            return list(hub.packages)
        if verb == "restart" and n == 1:
            return list(STOP_KINDS)
        if verb == "print":
            if n == 2:
                return labels if words[1] == "state" else list(hub.packages) if words[1] == "datastore" else []
            return list(PRINTABLE) if n == 1 else []
        if verb == "command":
            return self._command_choices(words[1:], labels)
        return []

    def _command_choices(self, words: list[str], labels: list[str]) -> list[str]:
        if not words:
            return labels
        caps, definitions = _device_capabilities(self.hub, words[0])
        if len(words) == 1:
            return caps
        if len(words) == 2:
            return list(definitions.get(words[1], {}).get("commands", {}))
        spec = _command_spec(self.hub, words[0], words[1], words[2]) or []
        index = len(words) - 3
        if index < len(spec):
            arg = spec[index]
            if arg["type"] == "enum":
                return [str(v) for v in arg["values"]]
            if arg["type"] == "boolean":
                return ["true", "false"]
        return []


IDLE_TICK = 0.1  # seconds between looks at the hub while nobody types


class Prompt:
    """The read-run loop. Ctrl-C clears the line at the prompt and interrupts a running step;
    SIGTERM, Ctrl-D and `quit` end it, after which the hub stops gracefully."""

    def __init__(self, runner: Runner, state_dir: Path, error: Callable[[str], None]) -> None:
        self.runner = runner
        self.hub = runner.hub
        self.error = error
        self.session: PromptSession = PromptSession(
            history=FileHistory(str(Path(state_dir) / HISTORY_NAME)), completer=StepCompleter(self.hub),
            complete_while_typing=False)
        self._reading = False  # waiting for a line
        self._interrupted = False  # Ctrl-C while a step ran

    def _signal(self, signum: int, frame: object) -> None:
        if signum == signal.SIGINT:
            if not self._reading:  # a running step stops at its next safe point; the hub goes on
                self._interrupted = True
                self.hub.stop_requested = True
            return
        self.hub.stop_requested = True
        app = self.session.app
        if self._reading and app.is_running:  # end the line being read, from inside its event loop
            app.loop.call_soon_threadsafe(lambda: app.exit(exception=StopRequested("the hub was told to stop")))

    def _work_while_idle(self) -> None:
        """While nobody types, the hub goes on: timers come due on the real clock, drivers on the real
        network hear from their devices. Checked every IDLE_TICK seconds inside the prompt's own event
        loop (so never beside a running step); the prompt steps aside while the hub prints."""
        async def idle() -> None:
            while True:
                await asyncio.sleep(IDLE_TICK)
                if self.hub.has_idle_work():
                    await run_in_terminal(self._idle_step)

        self.session.app.create_background_task(idle())

    def _idle_step(self) -> None:
        try:
            self.hub.advance(0)
        except (InputError, AssertionFailed) as e:
            self.error(str(e))
        except StopRequested:
            pass  # the prompt is ended by the signal handler

    def run(self) -> None:
        old = {sig: signal.signal(sig, self._signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._loop()
        finally:
            for sig, handler in old.items():
                signal.signal(sig, handler)

    def _loop(self) -> None:
        self.runner.out("hubrt prompt: type `help` for the steps (Tab completes), `quit` or Ctrl-D to stop.")
        while True:
            try:
                self._reading = True
                line = self.session.prompt("hubrt> ", pre_run=self._work_while_idle).strip()
            except KeyboardInterrupt:  # Ctrl-C: the line is cleared
                continue
            except EOFError:
                return
            finally:
                self._reading = False
            if line in ("quit", "exit"):
                return
            if line in ("help", "?"):
                self.runner.out(prompt_help())
                continue
            try:
                self.hub.advance(0)  # timers that came due while waiting for input
                step = parse_line(self.hub, line)
                if step is not None:
                    self.runner.run_step(step)
            except (InputError, AssertionFailed) as e:
                self.error(str(e))
            except StopRequested:
                if not self._interrupted:
                    raise
                self.error("interrupted")
                self._interrupted = self.hub.stop_requested = False
