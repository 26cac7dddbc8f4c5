"""WebSockets on the simulated LAN, as hypothesis feeds them: whatever bytes a broken or hostile
server sends, lustre (the driver's client) ends in a message, an error callback or a close, never
a Lua error or a Python exception; whatever text a driver sends, in frames of any size, the
server (wsproto's framing) receives whole. The Lua tests of tests/fixtures/ws-tour cover the
behaviour case by case."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import ROOT
from hubrt.engine import ENGINES
from hubrt.hub import Hub
from test_fuzz import SETTINGS
from test_library_inputs import mutated

WS_TOUR = ROOT / "tests" / "fixtures" / "ws-tour"
IP = "192.168.1.60"
# a text frame, a ping, a binary frame, a fragmented text message, a close (1000): as a server sends them
GOOD_FRAMES = b"\x81\x05hello" + b"\x89\x00" + b"\x82\x03abc" + b"\x01\x02he\x80\x03llo" + b"\x88\x02\x03\xe8"
NOTES = ("connected", "text: ", "binary: ", "error: ", "closed: ")


@pytest.fixture(scope="module", params=list(ENGINES))
def ws_hub(request, tmp_path_factory):
    hub = Hub(tmp_path_factory.mktemp("ws") / "state", engine=request.param, on_log=lambda record: None,
              isolation="inline", durable=False)
    hub.install(WS_TOUR)
    hub.lan.add_host(IP, http={"port": 8080, "routes": {"/ws": {"websocket": True, "echo": True}}})
    yield hub
    hub.shutdown()


_labels = itertools.count(1)


def connected_speaker(hub: Hub, **preferences) -> str:
    label = f"S{next(_labels)}"
    hub.add_device("ws-tour", "speaker", label=label, network_id=f"{IP}:8080/ws", preferences=preferences)
    hub.command(label, "refresh", "refresh")
    return label


def notes(hub: Hub, label: str) -> list[str]:
    hub.flush()
    return hub.store.load("ws-tour").get(label) or []


@SETTINGS
@given(data=st.one_of(st.binary(max_size=64), mutated(GOOD_FRAMES)))
# close frames a server must not send (found by this test): a reason that is not UTF-8, a code of 0,
# a reserved code, a payload of one byte; each is a protocol failure (the error callback)
@example(data=b"\x88\x05\x00\x00\x00\x00\x80")
@example(data=b"\x88\x04\x03\xe8\xc3\x28")
@example(data=b"\x88\x02\x03\xee")
@example(data=b"\x88\x01\x03")
def test_whatever_a_server_sends_ends_in_a_message_an_error_or_a_close(ws_hub, data):
    label = connected_speaker(ws_hub)
    logged = len(ws_hub.logs)
    ws_hub.lan.push(IP, "/ws", data.decode("latin-1"), raw=True)
    ws_hub.settle()
    try:
        errors = [r.text for r in list(ws_hub.logs)[logged:] if r.level == "error"]
        assert not errors, errors
        seen = notes(ws_hub, label)
        assert seen[0] == "connected" and all(note.startswith(NOTES) for note in seen), seen
        if data.startswith(GOOD_FRAMES):  # the good frames are taken as they are, whatever follows them
            assert seen[1:4] == ["text: hello", "binary: 616263", "text: hello"], seen
    finally:
        ws_hub.lan.drop_streams(IP)
        ws_hub.settle()


@SETTINGS
@given(text=st.text(max_size=300), frame=st.integers(1, 120))
def test_any_text_a_driver_sends_arrives_whole_and_comes_back(ws_hub, text, frame):
    label = connected_speaker(ws_hub, frame=frame, message=text)
    ws_hub.command(label, "switch", "on")
    try:
        received = [r for r in ws_hub.lan.requests(IP) if "text" in r]
        assert received[-1] == {"websocket": "/ws", "text": text}
        assert notes(ws_hub, label)[-1] == "text: " + text  # the server's echo, in one frame
    finally:
        ws_hub.lan.drop_streams(IP)
        ws_hub.settle()
