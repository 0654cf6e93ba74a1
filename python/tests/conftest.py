"""Shared test helpers: a scaled timing unit, an event recorder, loopback sockets, a raw client,
an endpoint harness with real clients, and Node's acknowledgements (flow control)."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.client import ClientProtocol
from websockets.frames import Frame
from websockets.http11 import Response
from websockets.uri import parse_uri

from websocket_worker.clients import Clients
from websocket_worker.endpoints import Endpoint, Endpoints
from websocket_worker.flow import FlowControl

# Like websockets' tests/utils.py: slow machines set WEBSOCKET_WORKER_TESTS_TIMEOUT_FACTOR.
TIMEOUT_FACTOR = float(os.environ.get("WEBSOCKET_WORKER_TESTS_TIMEOUT_FACTOR", "1"))
#: One millisecond, scaled: durations that tests rely on are multiples of it.
MS = 0.001 * TIMEOUT_FACTOR
#: How long to wait for something expected to happen (only reached when a test fails).
WAIT = 5.0 * TIMEOUT_FACTOR


def _loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """asyncio, and uvloop too when installed: the worker runs on uvloop where it has a wheel.

    WEBSOCKET_WORKER_TESTS_LOOP=asyncio or =uvloop narrows the run to one loop.
    """
    factories: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
        "asyncio": asyncio.new_event_loop
    }
    try:
        import uvloop
    except ImportError:
        pass
    else:
        factories["uvloop"] = uvloop.new_event_loop
    wanted = os.environ.get("WEBSOCKET_WORKER_TESTS_LOOP")
    if wanted:
        return {wanted: factories[wanted]}
    return factories


LOOP_FACTORIES = _loop_factories()


def pytest_asyncio_loop_factories(config: pytest.Config, item: pytest.Item) -> Any:
    """Every async test runs once per event loop of :data:`LOOP_FACTORIES`."""
    return LOOP_FACTORIES


class Events:
    """Records emitted frames (the ``emit`` callable) and lets a test await them."""

    def __init__(self, hook: Callable[[list[Any]], None] | None = None) -> None:
        self.frames: list[list[Any]] = []
        self.hook = hook
        self._taken: set[int] = set()
        self._waiters: list[asyncio.Future[None]] = []

    def __call__(self, frame: list[Any]) -> None:
        self.frames.append(frame)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        if self.hook is not None:
            self.hook(frame)

    def kinds(self, skip: tuple[str, ...] = ()) -> list[str]:
        return [frame[0] for frame in self.frames if frame[0] not in skip]

    def of(self, kind: str) -> list[list[Any]]:
        return [frame for frame in self.frames if frame[0] == kind]

    def without(self, *kinds: str) -> list[list[Any]]:
        return [frame for frame in self.frames if frame[0] not in kinds]

    async def get(self, kind: str, *fields: Any, timeout: float = WAIT) -> list[Any]:
        """The next frame of ``kind`` (whose first fields equal ``fields``) not returned yet."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            for index, frame in enumerate(self.frames):
                if (
                    index not in self._taken
                    and frame[0] == kind
                    and list(frame[1 : 1 + len(fields)]) == list(fields)
                ):
                    self._taken.add(index)
                    return frame
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"no {kind} {fields} event; got {self.frames!r}")
            waiter = loop.create_future()
            self._waiters.append(waiter)
            await asyncio.wait({waiter}, timeout=remaining)


class Acknowledger:
    """Node's side of flow control: acks the message events seen, from a later loop iteration
    (the bridge acks from ``setImmediate`` after a batch). Off until :attr:`on` is set."""

    def __init__(self, flow: FlowControl) -> None:
        self.flow = flow
        self.on = False
        self.pending = 0
        self._scheduled = False

    def __call__(self, frame: list[Any]) -> None:
        if frame[0] == "message":
            self.pending += 1
            self._schedule()

    def start(self) -> None:
        self.on = True
        self._schedule()

    def _schedule(self) -> None:
        if self.on and self.pending and not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._ack)

    def _ack(self) -> None:
        self._scheduled = False
        count, self.pending = self.pending, 0
        self.flow.ack(count)


@pytest.fixture
async def clients() -> AsyncIterator[tuple[Clients, Events]]:
    """A registry of client connections and the events it emits; every connection stopped after."""
    events = Events()
    registry = Clients(events)
    yield registry, events
    await registry.aclose(timeout=0.5)


def server_socket() -> socket.socket:
    """A listening TCP socket on 127.0.0.1, port 0."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


def free_port() -> int:
    """A port nobody listens on (bound then closed)."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return port_of(sock)


async def accept(listener: socket.socket) -> socket.socket:
    conn, _ = await asyncio.get_running_loop().sock_accept(listener)
    conn.setblocking(False)
    return conn


async def read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    """Read an HTTP request head from ``conn`` as Node would: (request, bytes after it)."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(conn, 65536)
        assert chunk, "peer closed before the end of the request"
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def handshake_request(path: str = "/", extra: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"{extra}\r\n"
    ).encode()


class Harness:
    """An endpoint registry, a listening socket whose connections it adopts, and clients."""

    def __init__(self, flow: FlowControl | None = None) -> None:
        self.flow = flow if flow is not None else FlowControl()
        self.acks = Acknowledger(self.flow)
        self.acks.on = flow is None  # a test giving its flow control acks by hand
        self.events = Events(hook=self._hook)
        self.logs: list[tuple[str, str]] = []
        self.registry = Endpoints(
            self.events, lambda level, text: self.logs.append((level, text)), self.flow
        )
        self.listener = server_socket()
        self.echo = False
        self.clients: list[ClientConnection] = []

    def _hook(self, frame: list[Any]) -> None:
        self.acks(frame)
        if self.echo and frame[0] == "message":
            self.registry.send(frame[1], frame[2], frame[3])

    def endpoint(self, owner: int) -> Endpoint:
        endpoint = self.registry.get(owner)
        assert endpoint is not None
        return endpoint

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{port_of(self.listener)}/ws"

    async def accept(self, owner: int, sid: str) -> socket.socket:
        """Accept the next connection and hand it to the registry as ``sid``; returns it."""
        conn = await accept(self.listener)
        self.registry.adopt(owner, sid, conn)
        return conn

    async def connect(self, owner: int = 1, sid: str = "s1", **kwargs: Any) -> ClientConnection:
        """Connect a client; the accepted socket is handed to the registry as ``sid`` the way
        Node hands it over: with the request already read (so the session frames by itself)."""
        kwargs.setdefault("compression", None)
        client = asyncio.ensure_future(connect(self.url, open_timeout=WAIT, **kwargs))
        conn = await accept(self.listener)
        request, head = await read_request(conn)
        self.registry.adopt(owner, sid, conn, request, head)
        ws = await asyncio.wait_for(client, WAIT)
        self.clients.append(ws)
        return ws

    async def raw(self, owner: int, sid: str, request: bytes) -> bytes:
        """Send ``request`` on a plain TCP connection; return everything until the server closes."""
        reader, writer = await asyncio.open_connection(*self.listener.getsockname())
        await self.accept(owner, sid)
        writer.write(request)
        try:
            return await asyncio.wait_for(reader.read(), WAIT)
        finally:
            writer.close()

    async def close(self) -> None:
        self.acks.start()  # let paused sessions read their closing handshake
        for ws in self.clients:
            await ws.close()
        await self.registry.aclose(timeout=0.1)
        self.listener.close()


class SansIOClient:
    """A WebSocket client with no socket: websockets' ``ClientProtocol`` fed by hand."""

    def __init__(self, url: str = "ws://localhost/", **kwargs: Any) -> None:
        self.protocol = ClientProtocol(parse_uri(url), **kwargs)
        self.response: Response | None = None
        self.frames: list[Frame] = []
        self.request = self.protocol.connect()
        self.protocol.send_request(self.request)

    def outgoing(self) -> bytes:
        return b"".join(self.protocol.data_to_send())

    def receive(self, data: bytes) -> None:
        self.protocol.receive_data(data)
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.response = event
            elif isinstance(event, Frame):
                self.frames.append(event)


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for ``localhost`` (no IP SAN) and its key, as PEM text."""
    directory = tmp_path_factory.mktemp("tls")
    try:
        return _certificate_with_cryptography()
    except ImportError:
        pass
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("neither the cryptography package nor the openssl command is available")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return Path(cert).read_text(), Path(key).read_text()


def _certificate_with_cryptography() -> tuple[str, str]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return cert_pem, key_pem


async def until(predicate: Callable[[], object], timeout: float = WAIT) -> None:
    """Wait until ``predicate()`` is true, checking every loop iteration or so."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(MS)
