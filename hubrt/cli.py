"""The `hubrt` command line."""

from __future__ import annotations

import inspect
import signal
import sys
from pathlib import Path

import click
import orjson
from rich.console import Console
from rich.markup import escape

from hubrt.display import printable
from hubrt.engine import DEFAULT_ENGINE, DEFAULT_MAX_MEMORY, ENGINES, LuaFailure
from hubrt.clock import Clock
from hubrt.hub import DEFAULT_FLUSH_INTERVAL, DEFAULT_HANDLER_TIMEOUT, Event, Hub, LogRecord, StopRequested
from hubrt.inputs import InputError
from hubrt.scenario import AssertionFailed, Runner, load_scenario, script_help
from hubrt.store import Store, StoreError
from hubrt.store_repair import examine, recover

_err = Console(stderr=True, highlight=False)
_LEVEL_STYLE = {"warn": "yellow", "error": "bold red", "info": "cyan", "debug": "dim", "trace": "dim"}

state_option = click.option(
    "--state", "state_dir", type=click.Path(file_okay=False, path_type=Path), default=Path(".hubrt"),
    show_default=True, help="Hub state directory (holds the SQLite store).")
engine_option = click.option(
    "--lua", "engine", type=click.Choice(list(ENGINES)), default=DEFAULT_ENGINE, show_default=True,
    help="Lua engine: LuaJIT 2.1 (fast) or Lua 5.3 (the hub's own version).")
strict_option = click.option(
    "--strict", is_flag=True, help="Make warnings errors: datastore values that change across a restart, "
                                   "capabilities and attributes no definition describes.")
memory_option = click.option(
    "--max-memory", type=click.IntRange(min=1), default=DEFAULT_MAX_MEMORY // 2**20, show_default=True,
    metavar="MIB", help="Memory cap of each driver's Lua state, in MiB.")
capabilities_option = click.option(
    "--capabilities", "capability_dirs", multiple=True, envvar="HUBRT_CAPABILITIES",
    type=click.Path(exists=True, file_okay=False, path_type=Path), metavar="DIR",
    help="A folder of capability definitions (hubrt's or the platform's format) beside the standard "
         "ones; may be repeated. Also $HUBRT_CAPABILITIES (folders separated by ':').")
start_empty_option = click.option(
    "--start-empty", is_flag=True,
    help="Move an existing (e.g. damaged) store aside and start with an empty one.")


def _shown(value: object) -> str:
    """Driver-made text as it may be printed: no rich markup, no terminal control sequences."""
    return escape(printable(value))


def _log(record: LogRecord) -> None:
    style = _LEVEL_STYLE.get(record.level, "")
    device = f" [magenta]{_shown(record.device)}[/]" if record.device else ""
    _err.print(f"[dim]{record.time:8.3f}[/] [{style}]{record.level.upper():5}[/] [bold]{_shown(record.driver)}[/]"
               f"{device} {_shown(record.text)}", markup=True, soft_wrap=True, emoji=False, highlight=False)


def _event(event: Event) -> None:
    unit = f" {event.unit}" if event.unit is not None else ""
    change = "" if event.state_change else " [dim](no change)[/]"
    component = "" if event.component == "main" else f"{_shown(event.component)}."
    _err.print(f"[dim]{event.time:8.3f}[/] [green]EVENT[/] [bold]{_shown(event.driver)}[/] "
               f"[magenta]{_shown(event.device)}[/] {component}{_shown(event.capability)}."
               f"{_shown(event.attribute)} = [bold]{_shown(repr(event.value))}[/]{_shown(unit)}{change}",
               markup=True, soft_wrap=True, emoji=False, highlight=False)


def _fail(message: str, code: int = 2) -> None:
    _err.print(f"[bold red]hubrt:[/] {message}", markup=True, soft_wrap=True, emoji=False, highlight=False)
    sys.exit(code)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hubrt")
def main() -> None:
    """hubrt runs SmartThings-Edge-style Lua drivers on a simulated hub, with a
    real persistent datastore that survives crashes, restarts and power cuts."""


@main.command("lua")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@engine_option
@state_option
@strict_option
@memory_option
@start_empty_option
def lua_command(file: Path, engine: str, state_dir: Path, strict: bool, max_memory: int,
                start_empty: bool) -> None:
    """Run a standalone Lua FILE as a one-driver hub.

    `require "datastore"` is available and persisted in the state directory
    under the file's name. A normal end is a graceful stop (everything is
    saved); an uncaught error is a driver crash: what the script saved
    survives, unsaved changes do not, and hubrt exits with status 1.
    """
    try:
        hub = Hub(state_dir, engine=engine, strict=strict, max_memory=max_memory * 2**20,
                  start_empty=start_empty, on_log=_log)
    except StoreError as e:
        _fail(str(e))
    if start_empty and hub.store.moved_aside:
        hub.log("warn", "hub", f"moved the previous store aside to {hub.store.moved_aside}")

    def stop(signum: int, frame: object) -> None:  # the script's worker is stopped; what it saved is kept
        hub.stop_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    failure = None
    try:
        hub.run_script(file)
    except LuaFailure as e:
        failure = e
    except StoreError as e:
        hub.lose_power()  # nothing was saved by this run; leave the store as it is
        _fail(str(e))
    try:
        hub.shutdown()
    except StoreError as e:
        _fail(str(e))
    if failure is not None:
        if failure.kind == "exit" and failure.message.endswith("(0)"):
            return
        if hub.stop_requested:
            _err.print(f"[bold red]{file} was stopped[/] (interrupted: what it saved is kept, unsaved changes "
                       "are lost)", markup=True, soft_wrap=True, highlight=False, emoji=False)
            sys.exit(130)
        _err.print(f"[bold red]{file} crashed[/] (a driver crash: what it saved survives, unsaved changes "
                   "are lost)", markup=True, soft_wrap=True, highlight=False, emoji=False)
        _err.print(failure.traceback or failure.message, markup=False, soft_wrap=True, highlight=False,
                   emoji=False)
        sys.exit(1)


def _existing_store(state_dir: Path) -> Store:
    """The store in state_dir, for reading; a clear failure when there is none or it is unusable."""
    if not (state_dir / "hub.db").exists():
        _fail(f"{state_dir}: no hub store here (run a driver with --state {state_dir} first)")
    try:
        return Store(state_dir, read_only=True)
    except StoreError as e:
        _fail(str(e))


@main.group("store")
def store_group() -> None:
    """Inspect the hub's persistent store."""


@store_group.command("show")
@click.argument("driver", required=False)
@state_option
def store_show(driver: str | None, state_dir: Path) -> None:
    """Print DRIVER's persisted datastore as JSON (all drivers when omitted)."""
    store = _existing_store(state_dir)
    try:
        names = [driver] if driver else store.drivers()
        known = store.drivers()
        for name in names:
            if name not in known:
                _fail(f"no datastore for driver {name!r} in {store.path}; drivers with data: "
                      + (", ".join(known) or "none"))
        result = {name: store.load(name) for name in names}
        shown = result[driver] if driver else result
        click.echo(orjson.dumps(shown, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode())
    except StoreError as e:
        _fail(str(e))
    finally:
        store.lose_power()  # read-only use: nothing to flush


def _salvage_summary(salvage) -> str:
    return (f"{salvage.keys} datastore keys of {len(salvage.rows)} driver(s) and "
            f"{len(salvage.devices)} device record(s) can be read")


@store_group.command("check")
@state_option
def store_check(state_dir: Path) -> None:
    """Check the store (read-only): exit 0 if it is sound, 1 if it is damaged, saying what is wrong."""
    try:
        salvage = examine(state_dir)
    except StoreError as e:
        _fail(str(e))
    path = state_dir / "hub.db"
    if not salvage.problems:
        click.echo(f"{path}: ok; {_salvage_summary(salvage)}")
        return
    click.echo(f"{path}: damaged")
    for problem in salvage.problems:
        click.echo(f"  - {problem}")
    click.echo(f"  {_salvage_summary(salvage)}; `hubrt store recover --state {state_dir}` saves them "
               "into a new store and keeps the damaged file aside")
    sys.exit(1)


@store_group.command("recover")
@state_option
@click.option("--force", is_flag=True, help="Rebuild the store even if `store check` finds nothing wrong.")
def store_recover(state_dir: Path, force: bool) -> None:
    """Save what can be read from a damaged store into a new one that takes its place; the damaged
    file is kept aside. Atomic: interrupted at any point, nothing is lost."""
    try:
        salvage, aside = recover(state_dir, force)
    except StoreError as e:
        _fail(str(e))
    for problem in salvage.problems:
        click.echo(f"  - lost: {problem}")
    click.echo(f"recovered: {_salvage_summary(salvage).replace(' can be read', '')}; "
               f"the damaged file is kept as {aside}")


_STEPS_HELP = "\b\n" + script_help()


@main.command("run", epilog=_STEPS_HELP)
@click.argument("drivers", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--script", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Scenario file (YAML list of steps) to run instead of the interactive prompt.")
@engine_option
@state_option
@click.option("--flush-interval", type=click.FloatRange(min=0), default=DEFAULT_FLUSH_INTERVAL, show_default=True,
              metavar="S", help="Seconds of hub time between flushes of saved datastores to disk.")
@click.option("--handler-timeout", type=click.FloatRange(min=0), default=DEFAULT_HANDLER_TIMEOUT,
              show_default=True, metavar="S",
              help="Stop a handler (or the main chunk) that runs longer; a driver stuck where Lua cannot stop "
                   "it (in C code) is killed a moment later, as a driver crash. 0: no limit (LuaJIT then "
                   "compiles the driver's own code too).")
@click.option("--clock", type=click.Choice(["virtual", "real"]), default=None,
              help="Hub time: virtual (advance is instant; default with --script) or real (default at the prompt).")
@click.option("--network", type=click.Choice(["simulated", "real"]), default="simulated", show_default=True,
              help="What drivers' sockets reach: the hub's simulated LAN (lan_* steps), or the real network "
                   "of this machine (which needs the real clock; a script's `advance` then waits).")
@capabilities_option
@strict_option
@memory_option
@start_empty_option
def run_command(drivers: tuple[Path, ...], script: Path | None, engine: str, state_dir: Path, flush_interval: float,
                handler_timeout: float, clock: str | None, network: str, capability_dirs: tuple[Path, ...],
                strict: bool, max_memory: int, start_empty: bool) -> None:
    """Boot the hub from the state directory, install DRIVERS (driver package
    folders) and run a scenario (--script) or an interactive prompt.

    Logs and emitted events are shown as the hub's log stream shows them.
    At the end the hub stops gracefully: every driver saves, the store is flushed.
    """
    if script is None and not sys.stdin.isatty():
        _fail("no --script given and standard input is not a terminal; give a scenario file with --script")
    steps = []
    if script is not None:
        try:
            steps = load_scenario(script)
        except InputError as e:
            _fail(str(e))
    if network == "real" and clock == "virtual":
        _fail("--network real runs on the real clock (real sockets wait in real time); drop --clock virtual")
    real = (clock == "real") if clock else (script is None or network == "real")
    try:
        hub = Hub(state_dir, engine=engine, strict=strict, max_memory=max_memory * 2**20, start_empty=start_empty,
                  clock=Clock(real), flush_interval=flush_interval, handler_timeout=handler_timeout,
                  on_log=_log, on_event=_event, capability_dirs=tuple(map(str, capability_dirs)), network=network)
    except StoreError as e:
        _fail(str(e))
    code = 0

    def stop(signum: int, frame: object) -> None:  # a graceful stop, at the next safe point
        hub.stop_requested = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for path in drivers:
            hub.install(path)
        runner = Runner(hub, out=click.echo)
        if script is not None:
            runner.run(steps)
        else:
            from hubrt.prompt import Prompt  # prompt_toolkit is only needed here

            Prompt(runner, state_dir, lambda text: _err.print(f"[red]{escape(text)}[/]", markup=True,
                                                              soft_wrap=True, highlight=False)).run()
    except StopRequested:
        hub.log("info", "hub", "told to stop: stopping gracefully")
        hub.stop_requested = False
    except AssertionFailed as e:
        _err.print(f"[bold red]{escape(str(e))}[/]", markup=True, soft_wrap=True, highlight=False)
        code = 1
    except (InputError, StoreError) as e:
        _err.print(f"[bold red]hubrt:[/] {escape(str(e))}", markup=True, soft_wrap=True, highlight=False)
        code = 2
    except Exception:  # a bug of hubrt's own: still stop gracefully, so that nothing saved is lost
        _err.print_exception()
        _err.print("[bold red]hubrt: internal error[/] (a bug in hubrt, please report it with the lines above); "
                   "stopping the hub gracefully", markup=True, soft_wrap=True, highlight=False)
        code = 70
    try:
        hub.shutdown()
    except StoreError as e:
        _fail(str(e))
    sys.exit(code)


@main.command("fake-bridge")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to serve HTTP on (and to advertise).")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True,
              help="The HTTP port (0: any free port).")
@click.option("--no-ssdp", is_flag=True, help="Do not answer SSDP searches (UDP 1900, multicast).")
def fake_bridge_command(host: str, port: int, no_ssdp: bool) -> None:
    """Run a light bridge on this machine, for drivers/lan-bridge on the real network.

    It answers SSDP searches and serves the bridge's HTTP API and event stream
    (drivers/lan-bridge/src/bridge_api.lua); in another terminal:
    `hubrt run drivers/lan-bridge --network real`, then `discover`.
    """
    from hubrt.net.fake_bridge import FakeBridge

    try:
        bridge = FakeBridge(host, port, ssdp=not no_ssdp, log=lambda text: click.echo(printable(text), err=True))
    except OSError as e:
        _fail(f"cannot start the fake bridge on {host}:{port}{'' if no_ssdp else ' (and UDP 1900)'}: "
              f"{e.strerror or e}")
    click.echo(f"fake bridge at http://{bridge.host}:{bridge.port}/ with lights "
               + ", ".join(light["name"] for light in bridge.lights.values())
               + ("" if no_ssdp else "; answering SSDP searches") + ". Ctrl-C stops it.", err=True)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(0))
    try:
        bridge.serve()
    except KeyboardInterrupt:
        pass
    finally:
        bridge.stop()


@main.command("capabilities")
@click.argument("capability", required=False)
@capabilities_option
def capabilities_command(capability: str | None, capability_dirs: tuple[Path, ...]) -> None:
    """List the capabilities hubrt knows, or show one CAPABILITY's attributes and commands.

    The standard ones (the platform's list, with what later versions added as the public drivers
    use them) and those in --capabilities folders; a driver package's own capabilities/ folder
    adds to these when it runs.
    """
    from hubrt.capabilities import Catalogue, CapabilityError, describe

    try:
        catalogue = Catalogue.standard(tuple(str(d) for d in capability_dirs))
    except (CapabilityError, InputError) as e:
        _fail(str(e))
    if capability is None:
        click.echo(f"{len(catalogue.definitions)} capabilities (`hubrt capabilities ID` shows one):")
        click.echo("\n".join(sorted(catalogue.definitions)))
    elif capability not in catalogue:
        _fail(f"no capability {capability!r} is defined" + catalogue.suggestion(capability))
    else:
        click.echo(describe(catalogue[capability]))


@main.command("devices")
@state_option
def devices_command(state_dir: Path) -> None:
    """List the devices the hub knows (id, label, driver, profile)."""
    store = _existing_store(state_dir)
    try:
        records = store.devices()
        labels = {r["id"]: r["label"] for r in records}
        for record in records:
            parent = record.get("parent_id")
            family = (f" child of {labels.get(parent, parent)!r} (key {record.get('child_key')!r})" if parent else "")
            children = [labels[r["id"]] for r in records if r.get("parent_id") == record["id"]]
            family += f" parent of {', '.join(map(repr, children))}" if children else ""
            click.echo(printable(f"{record['id']}  {record['label']!r:24} driver={record['driver']} "
                                 f"profile={record['profile']} {'online' if record.get('online', True) else 'offline'}"
                                 + family))
    except StoreError as e:
        _fail(str(e))
    finally:
        store.lose_power()


@main.command("test", context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                        "help_option_names": []})
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def test_command(args: tuple[str, ...]) -> None:
    """Run drivers' Lua tests (src/test/test_*.lua) through pytest.

    Takes paths and pytest options, e.g. `hubrt test drivers/ --lua both -n auto`;
    hubrt's own options are --lua luajit|5.3|both, --lua-strict, --lua-cov,
    --lua-handler-timeout S and --lua-test-timeout S. `hubrt test --help` shows
    this, then pytest's help.
    """
    import pytest  # only here: pytest is slow to import and `hubrt run` does not need it

    if "-h" in args or "--help" in args:
        click.echo(f"Usage: hubrt test [PATHS] [PYTEST OPTIONS]\n\n{inspect.cleandoc(test_command.__doc__)}\n")
        click.echo("pytest's help (the hubrt options are under 'hubrt Lua driver tests'):\n")
    sys.exit(pytest.main(list(args) or ["."]))
