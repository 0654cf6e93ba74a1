"""Who may open a session of an endpoint, decided before the 101 is sent: allowed origins (403),
the connection limit (503) and authentication (401 with ``WWW-Authenticate``): basic, static
bearer tokens or JWTs (PyJWT). Node-RED's ``webSocketNodeVerifyClient`` has already run in Node.

:class:`Gate` is built once per endpoint configuration (a JWT key is loaded there, once) and
checks a parsed request: the identity it returns is all a session keeps of it.
:func:`open_info` is what the ``open`` event says about the request: remote address and port,
path and query (without the token), the subprotocol, the headers without secrets. Nothing here
logs a secret, a header value or a token; failures are logged at debug level, at most once a
minute per address (:class:`FailureLog`).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import unquote_plus, urlsplit

from websockets.http11 import Request

from .options import AuthOptions, EndpointOptions

__all__ = [
    "TOKEN_PROTOCOL_PREFIX",
    "FailureLog",
    "Gate",
    "Refusal",
    "client_address",
    "open_info",
    "origin_allowed",
]

#: A ``Sec-WebSocket-Protocol`` entry carrying a token: ``bearer.<token>`` (never echoed).
TOKEN_PROTOCOL_PREFIX = "bearer."

#: Request headers never passed on to flows.
SECRET_HEADERS = frozenset(("authorization", "cookie", "proxy-authorization"))

Log = Callable[[str, str], None]
Identity = dict[str, Any]


class Refusal(NamedTuple):
    """A handshake refused: the HTTP status, extra response headers, and why (for a debug
    log: never a secret)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    why: str


class FailureLog:
    """Debug lines about refused handshakes, at most one per address per :attr:`window`
    seconds (the next one says how many were left out), and at most :attr:`cap` addresses
    remembered (then forgotten all at once): a client retrying in a loop is no log flood."""

    window = 60.0
    cap = 1024

    def __init__(self, log: Log, clock: Callable[[], float] = time.monotonic) -> None:
        self._log = log
        self._clock = clock
        self._seen: dict[str, list[float | int]] = {}  # address -> [since, left out]

    def failed(self, address: str, text: str) -> None:
        now = self._clock()
        seen = self._seen.get(address)
        if seen is not None and now - seen[0] < self.window:
            seen[1] += 1
            return
        left_out = int(seen[1]) if seen is not None else 0
        if seen is None and len(self._seen) >= self.cap:
            self._seen.clear()
        self._seen[address] = [now, 0]
        more = f" ({left_out} more from this address in the last minute)" if left_out else ""
        self._log("debug", f"{text}{more}")


def _host_pattern(entry: str) -> tuple[str | None, str, int | None]:
    """An allowed-origin entry as (scheme or None for any, host pattern, port or None)."""
    entry = entry.strip().lower().rstrip("/")
    scheme: str | None = None
    if "://" in entry:
        scheme, entry = entry.split("://", 1)
    host, _, port = entry.partition(":")
    return scheme, host, int(port) if port.isdigit() else None


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """Whether ``origin`` (a browser's ``Origin``) matches an entry: an exact origin
    (``https://app.example.com``), a wildcard host (``https://*.example.com`` for its
    subdomains), an entry without scheme (any scheme), or ``*`` (any)."""
    try:
        parts = urlsplit(origin.strip().lower())
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return False
    scheme = parts.scheme
    default_port = {"http": 80, "https": 443}.get(scheme)
    for entry in allowed:
        if entry.strip() == "*":
            return True
        want_scheme, want_host, want_port = _host_pattern(entry)
        if want_scheme is not None and want_scheme != scheme:
            continue
        if want_port is not None and want_port != (port or default_port):
            continue
        if want_port is None and want_scheme is not None and port not in (None, default_port):
            continue  # an exact origin names its port when it is not the default
        if want_host.startswith("*."):
            if host.endswith(want_host[1:]) and len(host) > len(want_host) - 1:
                return True
        elif host == want_host:
            return True
    return False


def client_address(request: Request, peer: tuple[str, int] | None,
                   trust_proxy: bool) -> tuple[str | None, int | None]:  # fmt: skip
    """The client's address and port: the peer's, or the first X-Forwarded-For hop (port
    unknown) when the listener trusts its proxy."""
    if trust_proxy:
        forwarded = request.headers.get_all("X-Forwarded-For")
        if forwarded:
            first = forwarded[0].split(",")[0].strip()
            if first:
                return first, None
    if peer is None:
        return None, None
    return peer[0], peer[1]


def _query_parts(path: str) -> tuple[str, list[str]]:
    target, _, query = path.partition("?")
    return target, [part for part in query.split("&") if part]


def _query_value(part: str) -> tuple[str, str]:
    name, _, value = part.partition("=")
    return unquote_plus(name), unquote_plus(value)


class Gate:
    """The checks of one endpoint configuration; see the module docstring."""

    def __init__(self, options: EndpointOptions, log: Log) -> None:
        self.options = options
        self.auth: AuthOptions | None = options.auth
        self.failures = FailureLog(log)
        self._realm = (options.path or "/").replace('"', "")
        self._jwt_key: Any = None
        self._jwt_problem = ""
        if self.auth is not None and self.auth.type == "jwt":
            self._load_jwt_key(self.auth)

    @property
    def strips_protocols(self) -> bool:
        """Whether token entries are taken out of the offered subprotocols."""
        return self.auth is not None and self.auth.subprotocol

    def check(self, request: Request, address: str | None,
              full: bool) -> Refusal | Identity | None:  # fmt: skip
        """The refusal, or the identity (None without authentication)."""
        options = self.options
        who = address or "unknown address"
        if options.origins is not None:
            origin = request.headers.get("Origin")
            if origin is None:
                if options.origin_required:
                    return self._refuse(403, (), who, "no Origin header")
            elif not origin_allowed(origin, options.origins):
                return self._refuse(403, (), who, "origin not allowed")
        if full:
            return Refusal(503, (), "connection limit reached")
        auth = self.auth
        if auth is None:
            return None
        if auth.type == "basic":
            return self._basic(request, auth, who)
        token = self._token(request, auth)
        if auth.type == "bearer":
            return self._bearer(token, auth, who)
        return self._jwt(token, auth, who)

    # Each kind.

    def _basic(self, request: Request, auth: AuthOptions, who: str) -> Refusal | Identity:
        challenge = (("WWW-Authenticate", f'Basic realm="{self._realm}", charset="UTF-8"'),)
        header = request.headers.get("Authorization", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return self._refuse(401, challenge, who, "basic: no credentials")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode()
            user, sep, password = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return self._refuse(401, challenge, who, "basic: malformed credentials")
        found = None
        for name, secret in auth.users:
            # Every pair is compared, in constant time, whichever matches.
            same = hmac.compare_digest(name.encode(), user.encode())
            same &= hmac.compare_digest(secret.encode(), password.encode())
            if same and sep and found is None:
                found = name
        if found is None:
            return self._refuse(401, challenge, who, "basic: wrong user name or password")
        return {"name": found}

    def _bearer(self, token: str | None, auth: AuthOptions, who: str) -> Refusal | Identity:
        if token is None:
            return self._refuse(401, self._challenge(None), who, "bearer: no token")
        found = None
        for index, (name, secret) in enumerate(auth.tokens):
            if hmac.compare_digest(secret.encode(), token.encode()) and found is None:
                found = name or f"token {index + 1}"
        if found is None:
            return self._refuse(401, self._challenge("invalid_token"), who, "bearer: unknown token")
        return {"name": found}

    def _jwt(self, token: str | None, auth: AuthOptions, who: str) -> Refusal | Identity:
        if self._jwt_key is None:
            return self._refuse(503, (), who, f"jwt: {self._jwt_problem}")
        if token is None:
            return self._refuse(401, self._challenge(None), who, "jwt: no token")
        import jwt  # loaded with the key: present

        try:
            claims = jwt.decode(
                token,
                self._jwt_key,
                algorithms=[auth.jwt_algorithm],
                issuer=auth.jwt_issuer or None,
                audience=auth.jwt_audience or None,
                options={"verify_aud": bool(auth.jwt_audience)},
            )
        except jwt.ExpiredSignatureError:
            return self._refuse(401, self._challenge("invalid_token", "token expired"), who,
                                "jwt: expired")  # fmt: skip
        except jwt.InvalidTokenError as exc:
            # The class name only: PyJWT's messages may quote parts of the token.
            return self._refuse(401, self._challenge("invalid_token"), who,
                                f"jwt: {type(exc).__name__}")  # fmt: skip
        chosen = {name: claims[name] for name in auth.jwt_claims if name in claims}
        subject = claims.get("sub")
        return {"name": subject if isinstance(subject, str) else None, "claims": chosen}

    # Helpers.

    def _token(self, request: Request, auth: AuthOptions) -> str | None:
        """The token: an ``Authorization: Bearer`` header, the query parameter, or (when
        enabled) a ``bearer.<token>`` subprotocol entry, in that order."""
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if auth.query:
            for part in _query_parts(request.path)[1]:
                name, value = _query_value(part)
                if name == auth.query and value:
                    return value
        if auth.subprotocol:
            for header in request.headers.get_all("Sec-WebSocket-Protocol"):
                for entry in header.split(","):
                    entry = entry.strip()
                    if entry.startswith(TOKEN_PROTOCOL_PREFIX) and len(entry) > 7:
                        return entry[len(TOKEN_PROTOCOL_PREFIX) :]
        return None

    def _challenge(self, error: str | None,
                   description: str | None = None) -> tuple[tuple[str, str], ...]:  # fmt: skip
        value = f'Bearer realm="{self._realm}"'
        if error:
            value += f', error="{error}"'
        if description:
            value += f', error_description="{description}"'
        return (("WWW-Authenticate", value),)

    def _refuse(self, status: int, headers: tuple[tuple[str, str], ...], who: str,
                why: str) -> Refusal:  # fmt: skip
        self.failures.failed(who, f"{self._realm}: handshake from {who} refused ({status}): {why}")
        return Refusal(status, headers, why)

    def _load_jwt_key(self, auth: AuthOptions) -> None:
        if not auth.jwt_key:
            self._jwt_problem = "no JWT secret or key is set"
            return
        try:
            import jwt
            from jwt.algorithms import get_default_algorithms
        except ImportError:
            self._jwt_problem = "the PyJWT package is not installed"
            return
        algorithm = get_default_algorithms().get(auth.jwt_algorithm)
        if algorithm is None:
            self._jwt_problem = f"{auth.jwt_algorithm} needs the cryptography package"
            return
        try:
            self._jwt_key = algorithm.prepare_key(auth.jwt_key)
        except (jwt.InvalidKeyError, ValueError, TypeError) as exc:
            self._jwt_problem = f"the {auth.jwt_algorithm} key is not usable ({type(exc).__name__})"

    @property
    def problem(self) -> str:
        """Why this gate refuses every client (a JWT key that could not be loaded), or ""."""
        return self._jwt_problem


def open_info(
    request: Request,
    subprotocol: str | None,
    address: str | None,
    port: int | None,
    user: Identity | None,
    auth: AuthOptions | None,
) -> dict[str, Any]:
    """The ``open`` event's info about a request: no secret (no ``Authorization``, ``Cookie``,
    token query parameter or token subprotocol entry)."""
    target, parts = _query_parts(request.path)
    if auth is not None and auth.query:
        parts = [part for part in parts if _query_value(part)[0] != auth.query]
    strip = auth is not None and auth.subprotocol
    headers: dict[str, str] = {}
    for name, value in request.headers.raw_items():
        key = name.lower()
        if key in SECRET_HEADERS:
            continue
        if strip and key == "sec-websocket-protocol":
            kept = [entry.strip() for entry in value.split(",")
                    if not entry.strip().startswith(TOKEN_PROTOCOL_PREFIX)]  # fmt: skip
            value = ", ".join(entry for entry in kept if entry)
            if not value:
                continue
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return {
        "subprotocol": subprotocol,
        "remote_address": address,
        "remote_port": port,
        "path": target,
        "query": "&".join(parts),
        "headers": headers,
        "user": user,
    }
