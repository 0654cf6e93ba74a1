"""Every option the worker takes, validated in one module: defaults like core, bad values named."""

from __future__ import annotations

from typing import Any

import pytest

from websocket_worker.options import ClientOptions, EndpointOptions, FlowOptions


def test_listen_options_default_like_core() -> None:
    """100 MiB messages, no compression, 10 s handshake, the client's first subprotocol, 16 MiB
    write limit; 0 means no limit."""
    options = EndpointOptions.from_dict({})
    assert options.max_size == 100 * 1024 * 1024
    assert options.compression is False
    assert options.handshake_timeout == 10.0
    assert options.subprotocols is None
    assert options.write_limit == 16 * 1024 * 1024
    assert EndpointOptions.from_dict({"max_size": 0, "write_limit": 0}).max_size is None
    assert EndpointOptions.from_dict({"handshake_timeout": 0}).handshake_timeout is None
    assert EndpointOptions.from_dict({"subprotocols": ["a", "b"]}).subprotocols == ("a", "b")


def test_connect_options_default_like_core() -> None:
    """3 s reconnect, no heartbeat, 10 s handshake, no proxy, no TLS options, no compression."""
    parsed = ClientOptions.from_dict({"url": "ws://x/"})
    assert (parsed.reconnect_delay, parsed.heartbeat, parsed.handshake_timeout) == (3.0, None, 10.0)
    assert parsed.proxy is None and parsed.tls is None and parsed.compression is False
    assert parsed.max_size == 100 * 1024 * 1024
    assert ClientOptions.from_dict({"url": "ws://x/", "heartbeat": 2}).heartbeat == 2.0


def test_flow_options_keep_what_is_not_given() -> None:
    current = FlowOptions(flow_window=5, flow_window_bytes=6)
    assert FlowOptions.from_dict({"flow_window": 7}, current) == FlowOptions(7, 6)


@pytest.mark.parametrize(
    ("parse", "bad", "named"),
    [
        (EndpointOptions.from_dict, {"max_size": "1"}, "max_size"),
        (EndpointOptions.from_dict, {"max_size": -1}, "max_size"),
        (EndpointOptions.from_dict, {"max_size": 1.5}, "max_size"),
        (EndpointOptions.from_dict, {"write_limit": True}, "write_limit"),
        (EndpointOptions.from_dict, {"compression": 1}, "compression"),
        (EndpointOptions.from_dict, {"subprotocols": "a"}, "subprotocols"),
        (EndpointOptions.from_dict, {"handshake_timeout": -1}, "handshake_timeout"),
        (EndpointOptions.from_dict, {"path": 3}, "path"),
        (EndpointOptions.from_dict, [1], "options"),
        (ClientOptions.from_dict, {}, "url"),
        (ClientOptions.from_dict, {"url": "ws://x/", "headers": [["a"]]}, "headers"),
        (ClientOptions.from_dict, {"url": "ws://x/", "heartbeat": -1}, "heartbeat"),
        (ClientOptions.from_dict, {"url": "ws://x/", "tls": {"verify": "no"}}, "tls.verify"),
        (ClientOptions.from_dict, {"url": "ws://x/", "reconnect_delay": float("inf")}, "reconnect"),
        (ClientOptions.from_dict, {"url": "ws://x/", "proxy": 1}, "proxy"),
        (FlowOptions.from_dict, {"flow_window": 0}, "flow_window"),
        (FlowOptions.from_dict, {"flow_window_bytes": "8"}, "flow_window_bytes"),
    ],
)
def test_bad_values_raise_naming_the_option(parse: Any, bad: Any, named: str) -> None:
    with pytest.raises(ValueError, match=named):
        parse(bad)
