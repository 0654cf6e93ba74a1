"""Client connections against real local servers: websockets servers and hand-made TCP ones."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.http11 import Request
from websockets.server import ServerProtocol

from websocket_worker.clients import Clients
from websocket_worker.options import TlsOptions
from websocket_worker.tls import build_ssl_context

from .conftest import MS, WAIT, Events, free_port, until

Handler = Callable[[ServerConnection], Awaitable[None]]
GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@asynccontextmanager
async def remote(handler: Handler, **kwargs: Any) -> AsyncIterator[str]:
    """A websockets server on 127.0.0.1:0; yields its ws:// base URL."""
    kwargs.setdefault("ping_interval", None)
    async with serve(handler, "127.0.0.1", 0, **kwargs) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        scheme = "wss" if kwargs.get("ssl") else "ws"
        yield f"{scheme}://127.0.0.1:{port}/"


@asynccontextmanager
async def tcp_server(
    handle: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
) -> AsyncIterator[int]:
    """A plain TCP server on 127.0.0.1:0; yields its port."""
    writers: list[asyncio.StreamWriter] = []

    async def tracked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        await handle(reader, writer)

    server = await asyncio.start_server(tracked, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in writers:
            writer.close()
        await server.wait_closed()


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


def kinds(events: Events) -> list[str]:
    """The kinds of the events but the connection's states."""
    return events.kinds(skip=("client_state",))


def options(url: str, **kwargs: Any) -> dict[str, Any]:
    return {"url": url, "reconnect_delay": 20 * MS, "handshake_timeout": WAIT, **kwargs}


async def test_open_message_send(clients: tuple[Clients, Events]) -> None:
    """A client opens, reports messages as str/bytes, and sends str/bytes."""
    registry, events = clients

    async def greet_then_echo(ws: ServerConnection) -> None:
        await ws.send("welcome")
        await echo(ws)

    async with remote(greet_then_echo) as url:
        registry.connect(1, options(url))
        info = (await events.get("open"))[3]
        assert (info["subprotocol"], info["url"]) == (None, url)
        assert info["headers"]["upgrade"] == "websocket"
        assert await events.get("message") == ["message", 1, None, "welcome"]
        registry.send(1, "text")
        registry.send(1, b"\x00bin")
        assert await events.get("message") == ["message", 1, None, "text"]
        assert await events.get("message") == ["message", 1, None, b"\x00bin"]


async def test_subprotocol_and_headers(clients: tuple[Clients, Events]) -> None:
    """Subprotocols and custom headers (User-Agent included) reach the server."""
    registry, events = clients
    seen: dict[str, Any] = {}

    async def record(ws: ServerConnection) -> None:
        assert ws.request is not None
        seen["token"] = ws.request.headers.get("X-Token")
        seen["agent"] = ws.request.headers.get_all("User-Agent")
        await ws.wait_closed()

    async with remote(record, subprotocols=["chat"]) as url:
        headers = [["X-Token", "abc"], ["User-Agent", "node-red"]]
        registry.connect(1, options(url, subprotocols=["chat"], headers=headers))
        assert (await events.get("open"))[3]["subprotocol"] == "chat"
        await until(lambda: seen)
    assert seen == {"token": "abc", "agent": ["node-red"]}


async def test_reconnects_after_server_closes(clients: tuple[Clients, Events]) -> None:
    """When the server closes, close carries its code and reason, then the client reconnects."""
    registry, events = clients

    async def close_at_once(ws: ServerConnection) -> None:
        await ws.close(4000, "later")

    async with remote(close_at_once) as url:
        registry.connect(1, options(url))
        await events.get("open")
        assert await events.get("close") == ["close", 1, None, 4000, "later", "server"]
        await events.get("open")
        assert kinds(events)[:3] == ["open", "close", "open"]


async def test_failed_attempt_reports_error_then_close_then_retries(
    clients: tuple[Clients, Events],
) -> None:
    """A refused connection reports error then close 1006, and is tried again."""
    registry, events = clients
    registry.connect(1, options(f"ws://127.0.0.1:{free_port()}/"))
    error = await events.get("error")
    assert error[:3] == ["error", 1, None] and error[3]
    assert await events.get("close") == ["close", 1, None, 1006, "", "error"]
    await events.get("error")
    assert kinds(events)[:3] == ["error", "close", "error"]


async def test_rejected_handshake_reports_http_status(clients: tuple[Clients, Events]) -> None:
    """An HTTP error answer is reported with its status and without header values."""
    registry, events = clients

    async def not_found(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nX-Secret: hidden\r\nContent-Length: 0\r\n\r\n")

    async with tcp_server(not_found) as port:
        registry.connect(1, options(f"ws://127.0.0.1:{port}/"))
        error = await events.get("error")
    assert "404" in error[3] and "hidden" not in error[3]


async def test_handshake_timeout(clients: tuple[Clients, Events]) -> None:
    """A server that never answers the handshake fails the attempt after handshake_timeout."""
    registry, events = clients

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()

    async with tcp_server(silent) as port:
        url = f"ws://127.0.0.1:{port}/"
        registry.connect(1, options(url, handshake_timeout=50 * MS, reconnect_delay=10))
        error = await events.get("error", timeout=WAIT)
        assert "timeout" in error[3]
        assert await events.get("close") == ["close", 1, None, 1006, "", "error"]


async def complete_handshake(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer the WebSocket handshake by hand."""
    request = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
    key = next(
        line.split(":", 1)[1].strip()
        for line in request.split("\r\n")
        if line.lower().startswith("sec-websocket-key:")
    )
    accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    writer.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + f"Sec-WebSocket-Accept: {accept}\r\n\r\n".encode()
    )


async def handshake_then_ignore(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Complete the WebSocket handshake by hand, then ignore every frame (pings included)."""
    await complete_handshake(reader, writer)
    while await reader.read(65536):
        pass


async def handshake_then_stall(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Complete the WebSocket handshake by hand, then never read again (TCP pushes back)."""
    await complete_handshake(reader, writer)
    cast(asyncio.ReadTransport, writer.transport).pause_reading()  # uvloop's: no subclass
    await writer.wait_closed()


async def test_heartbeat_timeout(clients: tuple[Clients, Events]) -> None:
    """With heartbeat on, a server that answers no ping is dropped: error timeout, close, retry."""
    registry, events = clients
    async with tcp_server(handshake_then_ignore) as port:
        url = f"ws://127.0.0.1:{port}/"
        registry.connect(1, options(url, heartbeat=50 * MS))
        await events.get("open")
        assert await events.get("error") == ["error", 1, None, "timeout"]
        assert await events.get("close") == ["close", 1, None, 1006, "", "heartbeat"]
        await events.get("open")
        assert kinds(events)[:4] == ["open", "error", "close", "open"]


def handshake_then_pong(
    pings: list[bytes],
) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]:
    """A server (websockets' Sans-I/O protocol) that answers pings and notes each one."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        protocol = ServerProtocol()
        while data := await reader.read(65536):
            protocol.receive_data(data)
            for event in protocol.events_received():
                if isinstance(event, Request):
                    protocol.send_response(protocol.accept(event))
                elif event.opcode is Opcode.PING:
                    pings.append(event.data)  # websockets queued the pong
            writer.write(b"".join(protocol.data_to_send()))

    return handle


async def test_heartbeat_keeps_a_live_connection(clients: tuple[Clients, Events]) -> None:
    """A server answering pings keeps the connection through many heartbeats."""
    registry, events = clients
    pings: list[bytes] = []
    async with tcp_server(handshake_then_pong(pings)) as port:
        registry.connect(1, options(f"ws://127.0.0.1:{port}/", heartbeat=50 * MS))
        await events.get("open")
        await until(lambda: len(pings) >= 5)  # five pings answered: past four timeouts
        assert kinds(events) == ["open"]


async def test_disconnect_closes_with_1000_then_closed(clients: tuple[Clients, Events]) -> None:
    """disconnect closes with 1000, reports close, then closed, and stops reconnecting."""
    registry, events = clients
    codes: list[int | None] = []

    async def record(ws: ServerConnection) -> None:
        await ws.wait_closed()
        codes.append(ws.close_code)

    async with remote(record) as url:
        registry.connect(1, options(url))
        connection = registry.get(1)
        assert connection is not None
        await events.get("open")
        registry.disconnect(1)
        await events.get("closed", 1)
        assert kinds(events) == ["open", "close", "closed"]
        assert events.of("close")[0][3:] == [1000, "", "client"]
        await until(lambda: codes)
        assert codes == [1000]
        assert not connection.running  # its loop has ended: nothing can reconnect


async def test_disconnect_while_retrying(clients: tuple[Clients, Events]) -> None:
    """disconnect during the reconnect delay answers closed at once."""
    registry, events = clients
    registry.connect(1, options(f"ws://127.0.0.1:{free_port()}/", reconnect_delay=10))
    await events.get("close")
    registry.disconnect(1)
    await events.get("closed", 1, timeout=0.5)
    registry.disconnect(2)
    await events.get("closed", 2, timeout=0.5)


async def test_send_when_not_open_is_dropped(clients: tuple[Clients, Events]) -> None:
    """Sending to a client that is not open (or unknown) is dropped silently."""
    registry, events = clients
    registry.connect(1, options(f"ws://127.0.0.1:{free_port()}/", reconnect_delay=10))
    registry.send(1, "nobody hears")
    registry.send(2, "nobody at all")
    await events.get("close")
    assert kinds(events) == ["error", "close"]


async def test_environment_proxy_is_not_used(
    clients: tuple[Clients, Events], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Proxy environment variables are ignored: only options.proxy counts."""
    registry, events = clients
    dead = f"http://127.0.0.1:{free_port()}"
    for name in ("http_proxy", "https_proxy", "all_proxy", "HTTP_PROXY", "HTTPS_PROXY"):
        monkeypatch.setenv(name, dead)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    async with remote(echo) as url:
        registry.connect(1, options(url))
        await events.get("open")


async def test_explicit_proxy_is_used(clients: tuple[Clients, Events]) -> None:
    """options.proxy sends the connection through an HTTP CONNECT proxy."""
    registry, events = clients
    tunnels: list[str] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def proxy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        target = head.split(" ")[1]
        tunnels.append(head.split("\r\n")[0])
        host, port = target.rsplit(":", 1)
        up_reader, up_writer = await asyncio.open_connection(host, int(port))
        writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async with remote(echo) as url, tcp_server(proxy) as proxy_port:
        registry.connect(1, options(url, proxy=f"http://127.0.0.1:{proxy_port}"))
        await events.get("open")
        registry.send(1, "via proxy")
        assert (await events.get("message"))[3] == "via proxy"
        registry.disconnect(1)
        await events.get("closed", 1)
    assert tunnels and tunnels[0].startswith("CONNECT 127.0.0.1:")


# TLS.


def server_context(certificate: tuple[str, str], tmp_path: Path) -> ssl.SSLContext:
    cert, key = certificate
    (tmp_path / "cert.pem").write_text(cert)
    (tmp_path / "key.pem").write_text(key)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    return context


async def test_wss_verified_with_given_ca(
    clients: tuple[Clients, Events], certificate: tuple[str, str], tmp_path: Path
) -> None:
    """wss with verify on trusts the given CA and checks the name given as servername."""
    registry, events = clients
    async with remote(echo, ssl=server_context(certificate, tmp_path)) as url:
        tls = {"ca": certificate[0], "verify": True, "servername": "localhost"}
        registry.connect(1, options(url, tls=tls))
        await events.get("open")
        registry.send(1, "secure")
        assert (await events.get("message"))[3] == "secure"


async def test_wss_unverified(
    clients: tuple[Clients, Events], certificate: tuple[str, str], tmp_path: Path
) -> None:
    """wss with verify off accepts a self-signed certificate for another name."""
    registry, events = clients
    async with remote(echo, ssl=server_context(certificate, tmp_path)) as url:
        registry.connect(1, options(url, tls={"verify": False}))
        await events.get("open")


async def test_wss_untrusted_certificate_fails(
    clients: tuple[Clients, Events], certificate: tuple[str, str], tmp_path: Path
) -> None:
    """wss with verify on and no matching CA fails the attempt with a TLS error."""
    registry, events = clients
    async with remote(echo, ssl=server_context(certificate, tmp_path)) as url:
        registry.connect(1, options(url, tls={"verify": True}, reconnect_delay=10))
        error = await events.get("error")
        assert "certificate" in error[3]
        await events.get("close")


async def test_wss_client_certificate(
    clients: tuple[Clients, Events], certificate: tuple[str, str], tmp_path: Path
) -> None:
    """A client certificate and key given as PEM text are presented to the server."""
    registry, events = clients
    context = server_context(certificate, tmp_path)
    context.verify_mode = ssl.CERT_REQUIRED
    context.load_verify_locations(cadata=certificate[0])
    peers: list[Any] = []

    async def record(ws: ServerConnection) -> None:
        peers.append(ws.transport.get_extra_info("peercert"))
        await ws.wait_closed()

    async with remote(record, ssl=context) as url:
        cert, key = certificate
        tls = {"ca": cert, "cert": cert, "key": key, "servername": "localhost"}
        registry.connect(1, options(url, tls=tls))
        await events.get("open")
        await until(lambda: peers)
    assert peers[0] is not None


def test_encrypted_key_needs_its_passphrase(certificate: tuple[str, str], tmp_path: Path) -> None:
    """An encrypted key loads with its passphrase and fails (never prompts) without it."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl command not available")
    cert, key = certificate
    (tmp_path / "key.pem").write_text(key)
    encrypted = subprocess.run(
        [openssl, "pkey", "-in", str(tmp_path / "key.pem"), "-aes256", "-passout", "pass:s3cret"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    build_ssl_context(TlsOptions(cert=cert, key=encrypted, passphrase="s3cret"))
    with pytest.raises(ssl.SSLError):
        build_ssl_context(TlsOptions(cert=cert, key=encrypted))
    assert list(tmp_path.iterdir()) == [tmp_path / "key.pem"]


async def test_closed_connection_message_after_close_is_not_sent(
    clients: tuple[Clients, Events],
) -> None:
    """After the server closes, sends are dropped until the next open: what is sent on the
    next connection arrives there first."""
    registry, events = clients
    received: list[Any] = []

    async def record_then_close(ws: ServerConnection) -> None:
        try:
            received.append(await ws.recv())
        except ConnectionClosed:
            return
        await ws.close()

    async with remote(record_then_close) as url:
        registry.connect(1, options(url, reconnect_delay=50 * MS))
        await events.get("open")
        registry.send(1, "first")
        await events.get("close")
        registry.send(1, "dropped")
        await events.get("open")
        registry.send(1, "second")
        await until(lambda: len(received) == 2)
    assert received == ["first", "second"]
