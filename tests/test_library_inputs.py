"""Malformed input to the libraries the hub ships (hypothesis): XML, HTTP responses and requests,
URLs, JSON and base64, as a LAN peer or a broken device would send them. Each call either
succeeds or ends in a Lua error / `nil, err`, as the real library gives -- never a Python
exception, never a hang (each example runs under the handler time limit)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hubrt.driver import DriverRuntime
from hubrt.store import Store

from conftest import ROOT
from test_fuzz import SETTINGS

PROBES = b"""
local text_source = require "text_source" -- (tests/fixtures/lan-tour/src)
local luncheon = require "luncheon"
local probes = {}
function probes.xml(text)
  local handler = require("xmlhandler.tree"):new()
  local parser = require("xml2lua").parser(handler)
  local ok, err = pcall(parser.parse, parser, text)
  return ok and "ok" or ("error: " .. tostring(err))
end
function probes.response(text)
  local response, err = luncheon.Response.source(text_source(text))
  if not response then return "nil: " .. tostring(err) end
  local body, berr = response:get_body()
  return body and ("body " .. #body) or ("nil: " .. tostring(berr))
end
function probes.request(text)
  local request, err = luncheon.Request.source(text_source(text))
  if not request then return "nil: " .. tostring(err) end
  local body, berr = request:get_body()
  return body and ("body " .. #body) or ("nil: " .. tostring(berr))
end
function probes.url(text)
  local parsed, err = require("socket.url").parse(text)
  local u = require("net.url").parse(text)
  return (parsed and "ok" or ("nil: " .. tostring(err))) .. (u and " built " .. #u:build() or "")
end
function probes.json(text)
  local value, position, err = require("dkjson").decode(text)
  return value ~= nil and "ok" or ("nil: " .. tostring(err))
end
function probes.base64(text)
  local data, err = require("st.base64").decode(text)
  return data and ("bytes " .. #data) or ("nil: " .. tostring(err))
end
-- the probe's answer is left here: a dispatch (which applies the time limit) returns none
function probes.run(name, text) probes.last = probes[name](text) end
return probes
"""

GOOD_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: 12\r\n\r\n<a><b>1</b></a>"
GOOD_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n0\r\n\r\n"
GOOD_REQUEST = b"NOTIFY /event HTTP/1.1\r\nSID: uuid:1\r\nContent-Length: 7\r\n\r\n<e>1</e>"
GOOD_XML = b'<?xml version="1.0"?><root xmlns:s="x"><s:Body a="1"><v>1</v><v>2</v></s:Body></root>'


@pytest.fixture(scope="module")
def probes(tmp_path_factory):
    store = Store(tmp_path_factory.mktemp("probes") / "state")
    runtime = DriverRuntime("probe", store, engine="luajit", log=lambda level, text: None, interruptible=True,
                            src_dir=ROOT / "tests" / "fixtures" / "lan-tour" / "src")
    yield runtime, runtime.state.call(runtime.state.compile(PROBES, b"=probes")[0])[0]
    store.close()


def mutated(seed: bytes):
    """The seed with bytes flipped, cut, repeated or inserted: what a broken peer sends."""
    return st.one_of(
        st.binary(max_size=200),
        st.builds(lambda cut: seed[:cut], st.integers(0, len(seed))),
        st.builds(lambda at, junk: seed[:at] + junk + seed[at:], st.integers(0, len(seed)), st.binary(max_size=20)),
        st.builds(lambda at, byte: seed[:at] + bytes([byte]) + seed[at + 1:], st.integers(0, len(seed) - 1),
                  st.integers(0, 255)),
        st.builds(lambda n: seed * n, st.integers(1, 4)),
    )


def run(probes, name: str, data: bytes) -> str:
    runtime, table = probes
    table[b"last"] = None
    result = runtime.state.helpers.dispatch(2, b"probe", table[b"run"], name.encode(), data)
    assert result is True, f"{name} failed in Lua: {result!r}"  # a time-out, or an error no pcall caught
    return table[b"last"].decode("utf-8", "replace")


@SETTINGS
@given(data=st.one_of(mutated(GOOD_XML), st.builds(lambda n: b"<a>" * n + b"x" + b"</a>" * n, st.integers(0, 3000))))
def test_bad_xml_is_a_lua_error(probes, data):
    result = run(probes, "xml", data)
    assert result == "ok" or result.startswith("error: xml2lua"), result


@SETTINGS
@given(data=st.one_of(mutated(GOOD_RESPONSE), mutated(GOOD_CHUNKED)))
def test_bad_http_responses_are_nil_and_a_reason(probes, data):
    result = run(probes, "response", data)
    assert result.startswith(("body ", "nil: ")), result


@SETTINGS
@given(data=mutated(GOOD_REQUEST))
def test_bad_http_requests_are_nil_and_a_reason(probes, data):
    result = run(probes, "request", data)
    assert result.startswith(("body ", "nil: ")), result


@SETTINGS
@given(data=st.one_of(st.binary(max_size=80), mutated(b"http://user:pw@192.168.1.50:8080/a?b=1#c")))
def test_bad_urls_are_nil_and_a_reason(probes, data):
    result = run(probes, "url", data)
    assert result.startswith(("ok", "nil: ")), result


@SETTINGS
@given(data=st.one_of(st.binary(max_size=80), mutated(b'{"a": [1, 2.5, "x", null, true]}'), mutated(b"aGVsbG8=")))
def test_bad_json_and_base64_are_nil_and_a_reason(probes, data):
    assert run(probes, "json", data).startswith(("ok", "nil: "))
    assert run(probes, "base64", data).startswith(("bytes ", "nil: "))
