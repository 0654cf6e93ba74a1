"""Listener sessions under the flow's control (issue 11), on real sockets: the checks before the
101 (origins, the connection limit, basic / bearer / JWT authentication), what ``open`` says about
the request, who ended a session (``close``'s ``by``), closing every session, the heartbeat and
the message rate limit."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from websockets.exceptions import ConnectionClosed, InvalidStatus

from websocket_worker.auth import FailureLog, origin_allowed

from .conftest import MS, WAIT, Harness, accept, handshake_request

SECRET = "test-secret-of-at-least-32-bytes!!"


@pytest.fixture
async def harness() -> AsyncIterator[Harness]:
    harness = Harness()
    yield harness
    await harness.close()


def jwt_auth(key: str, algorithm: str = "HS256", **extra: Any) -> dict[str, Any]:
    jwt_options = {"algorithm": algorithm, "key": key, "issuer": "", "audience": "", "claims": []}
    jwt_options.update(extra)
    return {"type": "jwt", "users": [], "tokens": [], "jwt": jwt_options, "query": "token",
            "subprotocol": True}  # fmt: skip


def token(claims: dict[str, Any], key: Any = SECRET, algorithm: str = "HS256") -> str:
    return jwt.encode(claims, key, algorithm=algorithm)


async def refused(harness: Harness, owner: int = 1, **kwargs: Any) -> InvalidStatus:
    """Connect, expecting an HTTP refusal; returns it (the response is in ``.response``)."""
    with pytest.raises(InvalidStatus) as caught:
        await harness.connect(owner, "refused", **kwargs)
    return caught.value


# Authentication.


async def test_jwt_signed_with_the_secret_opens_with_its_identity(harness: Harness) -> None:
    """A JWT signed with the HS256 secret, in the Authorization header, opens the session; the
    open event carries its sub and the chosen claims, and no Authorization header."""
    harness.registry.listen(1, {"path": "/ws", "auth": jwt_auth(SECRET, claims=["role"])})
    good = token({"sub": "alice", "role": "admin", "other": 1, "exp": time.time() + 60})
    await harness.connect(additional_headers={"Authorization": f"Bearer {good}"})
    info = (await harness.events.get("open", 1, "s1"))[3]
    assert info["user"] == {"name": "alice", "claims": {"role": "admin"}}
    assert "authorization" not in info["headers"]


async def test_expired_or_forged_jwt_gets_401_with_a_challenge(harness: Harness) -> None:
    """An expired token and one signed with another secret get 401 with WWW-Authenticate;
    no session opens."""
    harness.registry.listen(1, {"path": "/ws", "auth": jwt_auth(SECRET)})
    expired = token({"sub": "alice", "exp": time.time() - 10})
    error = await refused(harness, additional_headers={"Authorization": f"Bearer {expired}"})
    assert error.response.status_code == 401
    challenge = error.response.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="/ws"') and "token expired" in challenge
    forged = token({"sub": "mallory"}, key="another-secret-of-at-least-32-bytes")
    error = await refused(harness, additional_headers={"Authorization": f"Bearer {forged}"})
    assert error.response.status_code == 401
    assert 'error="invalid_token"' in error.response.headers["WWW-Authenticate"]
    error = await refused(harness)  # no token at all
    assert error.response.headers["WWW-Authenticate"] == 'Bearer realm="/ws"'
    assert harness.events.of("open") == []


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
async def test_jwt_with_a_public_key(harness: Harness, algorithm: str) -> None:
    """RS256 and ES256 tokens are checked against a PEM public key; a token signed with
    another key is refused."""
    if algorithm == "RS256":
        private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        other: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        other = ec.generate_private_key(ec.SECP256R1())
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    harness.registry.listen(1, {"path": "/ws", "auth": jwt_auth(pem, algorithm)})
    good = token({"sub": "bob"}, private, algorithm)
    await harness.connect(additional_headers={"Authorization": f"Bearer {good}"})
    assert (await harness.events.get("open", 1, "s1"))[3]["user"]["name"] == "bob"
    bad = token({"sub": "bob"}, other, algorithm)
    error = await refused(harness, additional_headers={"Authorization": f"Bearer {bad}"})
    assert error.response.status_code == 401


async def test_jwt_issuer_and_audience(harness: Harness) -> None:
    """With an issuer and audience set, a token must carry both."""
    auth = jwt_auth(SECRET, issuer="https://issuer.example", audience="chat")
    harness.registry.listen(1, {"path": "/ws", "auth": auth})
    right = token({"sub": "a", "iss": "https://issuer.example", "aud": "chat"})
    await harness.connect(additional_headers={"Authorization": f"Bearer {right}"})
    for claims in ({"sub": "a", "iss": "https://other.example", "aud": "chat"},
                   {"sub": "a", "iss": "https://issuer.example", "aud": "mail"},
                   {"sub": "a"}):  # fmt: skip
        error = await refused(
            harness, additional_headers={"Authorization": f"Bearer {token(claims)}"}
        )
        assert error.response.status_code == 401


async def test_token_from_the_query_is_not_passed_on(harness: Harness) -> None:
    """A token in the query opens the session; the open event's query keeps the other
    parameters and not the token."""
    harness.registry.listen(1, {"path": "/ws", "auth": jwt_auth(SECRET)})
    harness_url = harness.url
    good = token({"sub": "carol"})
    client = asyncio.ensure_future(_connect(f"{harness_url}?room=1&token={good}&x=%20y"))
    conn = await accept(harness.listener)
    from .conftest import read_request

    request, head = await read_request(conn)
    harness.registry.adopt(1, "q1", conn, request, head)
    ws = await asyncio.wait_for(client, WAIT)
    harness.clients.append(ws)
    info = (await harness.events.get("open", 1, "q1"))[3]
    assert info["user"]["name"] == "carol"
    assert info["path"] == "/ws"
    assert info["query"] == "room=1&x=%20y"
    assert good not in repr(info)


async def _connect(url: str, **kwargs: Any) -> Any:
    from websockets.asyncio.client import connect

    return await connect(url, open_timeout=WAIT, compression=None, **kwargs)


async def test_token_in_a_subprotocol_entry_is_not_echoed(harness: Harness) -> None:
    """A ``bearer.<token>`` subprotocol entry authenticates; the real subprotocol offered with
    it is the one chosen, and the token is not in the open event's headers."""
    harness.registry.listen(1, {"path": "/ws", "auth": jwt_auth(SECRET)})
    good = token({"sub": "dave"})
    ws = await harness.connect(subprotocols=[f"bearer.{good}", "chat"])
    assert ws.subprotocol == "chat"
    info = (await harness.events.get("open", 1, "s1"))[3]
    assert info["subprotocol"] == "chat"
    assert info["headers"]["sec-websocket-protocol"] == "chat"
    assert info["user"]["name"] == "dave"


async def test_basic_authentication(harness: Harness) -> None:
    """Basic: a listed user with the right password opens, as that user; a wrong password or
    none gets 401 with a Basic challenge."""
    auth = {"type": "basic", "users": [["alice", "wonder:land"], ["bob", "builder"]], "tokens": [],
            "jwt": None, "query": "", "subprotocol": False}  # fmt: skip

    def basic(user: str, password: str) -> dict[str, str]:
        return {
            "Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        }

    harness.registry.listen(1, {"path": "/ws", "auth": auth})
    await harness.connect(additional_headers=basic("alice", "wonder:land"))
    assert (await harness.events.get("open", 1, "s1"))[3]["user"] == {"name": "alice"}
    for headers in (basic("alice", "builder"), basic("carol", "builder"), {}):
        error = await refused(harness, additional_headers=headers)
        assert error.response.status_code == 401
        assert error.response.headers["WWW-Authenticate"] == 'Basic realm="/ws", charset="UTF-8"'


async def test_bearer_tokens(harness: Harness) -> None:
    """Bearer: one of the static tokens opens, named by its label (or its position)."""
    auth = {"type": "bearer", "users": [], "tokens": [["kiosk", "tok-1"], ["", "tok-2"]],
            "jwt": None, "query": "token", "subprotocol": False}  # fmt: skip
    harness.registry.listen(1, {"path": "/ws", "auth": auth})
    await harness.connect(additional_headers={"Authorization": "Bearer tok-1"})
    await harness.connect(sid="s2", additional_headers={"Authorization": "Bearer tok-2"})
    assert (await harness.events.get("open", 1, "s1"))[3]["user"] == {"name": "kiosk"}
    assert (await harness.events.get("open", 1, "s2"))[3]["user"] == {"name": "token 2"}
    error = await refused(harness, additional_headers={"Authorization": "Bearer tok-3"})
    assert error.response.status_code == 401


async def test_failures_are_logged_at_debug_once_a_minute_per_address(harness: Harness) -> None:
    """Ten refused handshakes from one address make one debug line, without the token."""
    harness.registry.listen(1, {"path": "/ws", "auth": jwt_auth(SECRET)})
    forged = token({"sub": "x"}, key="another-secret-of-at-least-32-bytes")
    for _ in range(10):
        await refused(harness, additional_headers={"Authorization": f"Bearer {forged}"})
    lines = [(level, text) for level, text in harness.logs if "refused" in text]
    assert lines == [("debug", "/ws: handshake from 127.0.0.1 refused (401): jwt: "
                               "InvalidSignatureError")]  # fmt: skip
    assert SECRET not in repr(harness.logs) and forged not in repr(harness.logs)


def test_failure_log_says_how_many_it_left_out() -> None:
    """After its window, the next line for an address counts the failures left out."""
    now = [0.0]
    lines: list[str] = []
    log = FailureLog(lambda level, text: lines.append(text), clock=lambda: now[0])
    for _ in range(5):
        log.failed("10.0.0.1", "refused")
    log.failed("10.0.0.2", "refused")
    now[0] = 61.0
    log.failed("10.0.0.1", "refused")
    assert lines == ["refused", "refused", "refused (4 more from this address in the last minute)"]


async def test_a_jwt_key_that_cannot_be_loaded_refuses_every_client(harness: Harness) -> None:
    """An RS256 listener whose key is not a PEM key logs why once and answers 503."""
    harness.registry.listen(1, {"path": "/ws", "auth": jwt_auth("not a key", "RS256")})
    assert [level for level, text in harness.logs if "every client is refused" in text] == ["error"]
    error = await refused(harness, additional_headers={"Authorization": "Bearer x.y.z"})
    assert error.response.status_code == 503


# Origins and the connection limit.


async def test_allowed_origins(harness: Harness) -> None:
    """A browser Origin not in the list gets 403; listed and wildcard ones open; a client
    without Origin opens unless Origin is required."""
    harness.registry.listen(1, {"path": "/ws", "origins": ["https://app.example", "*.example.org"]})
    await harness.connect(origin="https://app.example")
    await harness.connect(sid="s2", origin="http://chat.example.org")
    await harness.connect(sid="s3")
    error = await refused(harness, origin="https://evil.example")
    assert error.response.status_code == 403
    harness.registry.listen(2, {"path": "/strict", "origins": ["https://app.example"],
                                "origin_required": True})  # fmt: skip
    assert (await refused(harness, owner=2)).response.status_code == 403


def test_origin_patterns() -> None:
    """Exact origins name scheme, host and a port other than the default; ``*.`` matches
    subdomains only; an entry without scheme matches any scheme."""
    allowed = (
        "https://app.example",
        "http://localhost:1880",
        "https://*.example.net",
        "example.com",
    )
    assert origin_allowed("https://app.example", allowed)
    assert origin_allowed("https://app.example:443", allowed)
    assert not origin_allowed("http://app.example", allowed)
    assert not origin_allowed("https://app.example:8443", allowed)
    assert origin_allowed("http://localhost:1880", allowed)
    assert not origin_allowed("http://localhost:1881", allowed)
    assert origin_allowed("https://a.b.example.net", allowed)
    assert not origin_allowed("https://example.net", allowed)
    assert not origin_allowed("https://badexample.net", allowed)
    assert origin_allowed("http://example.com", allowed)
    assert not origin_allowed("null", allowed)
    assert origin_allowed("anything://at.all", ("*",))


async def test_connection_limit_answers_503_and_keeps_the_others(harness: Harness) -> None:
    """Past max_connections a handshake gets 503; the open sessions are untouched, and once
    one ends a new client gets in."""
    harness.registry.listen(1, {"path": "/ws", "max_connections": 2})
    harness.echo = True
    first = await harness.connect(sid="a")
    await harness.connect(sid="b")
    assert (await refused(harness)).response.status_code == 503
    await first.send("still here")
    assert await asyncio.wait_for(first.recv(), WAIT) == "still here"
    await first.close()
    await harness.events.get("close", 1, "a")
    await harness.connect(sid="c")


# Who closed, and closing every session.


async def test_close_every_session(harness: Harness) -> None:
    """close_session without a sid closes every open session with the code and reason; each
    close event says the server ended it."""
    harness.registry.listen(1, {"path": "/ws"})
    clients = [await harness.connect(sid=f"s{n}") for n in range(3)]
    harness.registry.close_session(1, None, 4000, "closing time")
    for ws in clients:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), WAIT)
        assert (ws.close_code, ws.close_reason) == (4000, "closing time")
    for n in range(3):
        close = await harness.events.get("close", 1, f"s{n}")
        assert close[3:] == [4000, "closing time", "server"]


# The heartbeat.


Raw = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def raw_client(harness: Harness, owner: int, sid: str) -> Raw:
    """A client that completes the handshake and then never reads or answers anything."""
    reader, writer = await asyncio.open_connection(*harness.listener.getsockname())
    harness.registry.adopt(owner, sid, await accept(harness.listener))
    writer.write(handshake_request("/ws"))
    await harness.events.get("open", owner, sid)
    return reader, writer


async def test_a_client_ignoring_pings_is_dropped_by_the_heartbeat(harness: Harness) -> None:
    """A client that answers no ping is dropped by the second beat (1006, by the heartbeat);
    one that answers stays."""
    harness.registry.listen(1, {"path": "/ws", "heartbeat": 50 * MS})
    answering = await harness.connect(sid="alive")
    _, writer = await raw_client(harness, 1, "mute")
    started = asyncio.get_running_loop().time()
    close = await harness.events.get("close", 1, "mute")
    assert close[3:] == [1006, "", "heartbeat"]
    assert asyncio.get_running_loop().time() - started >= 50 * MS
    # Positive control: the answering client saw those beats and is still open.
    await asyncio.wait_for(await answering.ping(), WAIT)
    assert all(frame[2] != "alive" for frame in harness.events.of("close"))
    writer.close()


async def test_heartbeat_does_not_judge_while_the_flow_is_paused() -> None:
    """While the flow is paused nothing is read, so a silent client is not dropped then; once
    the flow runs again it is."""
    harness = Harness(flow=None)
    try:
        harness.registry.listen(1, {"path": "/ws", "heartbeat": 30 * MS})
        _, writer = await raw_client(harness, 1, "mute")
        harness.flow.paused = True  # as if Node were behind: no session is read
        await asyncio.sleep(150 * MS)  # five beats
        assert harness.events.of("close") == []
        harness.flow.paused = False
        close = await harness.events.get("close", 1, "mute")
        assert close[5] == "heartbeat"
        writer.close()
    finally:
        await harness.close()


# The message rate.


async def test_a_client_over_the_message_rate_is_closed_with_1008(harness: Harness) -> None:
    """A client sending more messages a second than allowed is closed with 1008 and the close
    event says it was the limit; one within the rate stays."""
    harness.registry.listen(1, {"path": "/ws", "max_rate": 20})
    calm = await harness.connect(sid="calm")
    flood = await harness.connect(sid="flood")
    for n in range(5):
        await calm.send(f"calm {n}")
    for n in range(200):
        await flood.send(f"flood {n}")
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(flood.recv(), WAIT)
    assert flood.close_code == 1008
    assert flood.close_reason == "message rate over 20/s"
    close = await harness.events.get("close", 1, "flood")
    assert close[3:] == [1008, "message rate over 20/s", "limit"]
    delivered = [frame for frame in harness.events.of("message") if frame[2] == "flood"]
    assert len(delivered) > 20  # what was read before the close is still delivered, in order
    assert [frame[3] for frame in delivered] == [f"flood {n}" for n in range(len(delivered))]
    assert [frame[3] for frame in harness.events.of("message") if frame[2] == "calm"] == [
        f"calm {n}" for n in range(5)
    ]
    assert all(frame[2] != "calm" for frame in harness.events.of("close"))
