"""Every option of the worker, validated in one place: ``configure``, ``listen`` and ``connect``.

The bridge sends every value (nodes/lib/options.js holds the settings and their defaults on the
Node side); the defaults here are the same numbers, for tests and for a command that leaves a key
out. A bad value raises ValueError naming the option, which the dispatcher logs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AUTH_TYPES",
    "JWT_ALGORITHMS",
    "AuthOptions",
    "BACKPLANE_SCHEMES",
    "BackplaneOptions",
    "DEFAULT_FLOW_WINDOW",
    "DEFAULT_FLOW_WINDOW_BYTES",
    "DEFAULT_HANDSHAKE_TIMEOUT",
    "DEFAULT_MAX_SIZE",
    "DEFAULT_RECONNECT_DELAY",
    "RECONNECT_POLICIES",
    "DEFAULT_WRITE_LIMIT",
    "ClientOptions",
    "EndpointOptions",
    "FlowOptions",
    "TlsOptions",
]

#: Largest incoming message: 100 MiB, like Node-RED's core WebSocket nodes (``ws``).
DEFAULT_MAX_SIZE = 100 * 1024 * 1024
#: Seconds for an opening handshake (core has none; websockets' default).
DEFAULT_HANDSHAKE_TIMEOUT = 10.0
#: Unsent outgoing bytes above which a session or client connection is dropped: 16 MiB.
DEFAULT_WRITE_LIMIT = 16 * 1024 * 1024
#: Seconds between client connection attempts (core's fixed delay).
DEFAULT_RECONNECT_DELAY = 3.0
#: ``reconnect_policy`` values: core's fixed delay, or exponential backoff with jitter.
RECONNECT_POLICIES = ("fixed", "backoff")
#: Unacknowledged ``message`` events above which every socket stops being read.
DEFAULT_FLOW_WINDOW = 1000
#: The same in payload bytes (8 MiB).
DEFAULT_FLOW_WINDOW_BYTES = 8 * 1024 * 1024


def _map(options: Any, what: str = "options") -> dict[str, Any]:
    if options is None:
        return {}
    if not isinstance(options, dict):
        raise ValueError(f"{what} must be a map")
    return options


def _number(options: dict[str, Any], key: str, default: float, *, integer: bool = False,
            minimum: float = 0) -> Any:  # fmt: skip
    """``options[key]`` (``default`` when missing or nil): a number >= ``minimum``."""
    value = options.get(key)
    if value is None:
        return default
    numeric = isinstance(value, int) or (not integer and isinstance(value, float))
    if isinstance(value, bool) or not numeric or not value >= minimum:
        kind = "an integer" if integer else "a number"
        raise ValueError(f"{key} must be {kind} >= {minimum:g}")
    return value


def _size(options: dict[str, Any], key: str, default: int) -> int | None:
    """A byte size: an integer >= 0, 0 meaning no limit (None)."""
    value: int = _number(options, key, default, integer=True)
    return value or None


def _seconds(options: dict[str, Any], key: str, default: float) -> float | None:
    """A duration in seconds: 0 or infinity meaning none (None)."""
    value = float(_number(options, key, default))
    return None if value == 0 or math.isinf(value) else value


def _typed(options: dict[str, Any], key: str, default: Any, kind: type, what: str) -> Any:
    """``options[key]`` (``default`` when missing or nil), which must be a ``kind``."""
    value = options.get(key)
    if value is None:
        return default
    if not isinstance(value, kind):
        raise ValueError(f"{key} must be {what}")
    return value


def _flag(options: dict[str, Any], key: str, default: bool) -> bool:
    flag: bool = _typed(options, key, default, bool, "a boolean")
    return flag


def _text(options: dict[str, Any], key: str, default: str = "") -> str:
    text: str = _typed(options, key, default, str, "a string")
    return text


def _strings(options: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = options.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"{key} must be a list of strings or nil")
    return tuple(value)


@dataclass(frozen=True)
class FlowOptions:
    """``["configure", options]``: the flow-control windows (docs/protocol.md)."""

    flow_window: int = DEFAULT_FLOW_WINDOW
    flow_window_bytes: int = DEFAULT_FLOW_WINDOW_BYTES

    @classmethod
    def from_dict(cls, options: Any, current: FlowOptions | None = None) -> FlowOptions:
        """Validate; a missing key keeps its ``current`` value."""
        options = _map(options)
        base = current or cls()
        return cls(
            flow_window=_number(options, "flow_window", base.flow_window, integer=True, minimum=1),
            flow_window_bytes=_number(
                options, "flow_window_bytes", base.flow_window_bytes, integer=True, minimum=1
            ),
        )


def _pairs(options: dict[str, Any], key: str) -> tuple[tuple[str, str], ...]:
    """A list of ``[name, value]`` strings (a value, maybe a secret, never appears in the error)."""
    value = options.get(key) or []
    if not isinstance(value, list) or not all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], str)
        for pair in value
    ):
        raise ValueError(f"{key} must be a list of [name, value] strings")
    return tuple((name, secret) for name, secret in value)


#: ``auth.type`` values.
AUTH_TYPES = ("basic", "bearer", "jwt")
#: JWT algorithms a listener can be given a key for (HS256: a shared secret; the others a PEM
#: public key, which needs the ``cryptography`` package).
JWT_ALGORITHMS = ("HS256", "RS256", "ES256")


@dataclass(frozen=True)
class AuthOptions:
    """The ``auth`` map of ``listen`` (docs/protocol.md). Secrets stay out of ``repr``."""

    type: str
    users: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    tokens: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    jwt_algorithm: str = "HS256"
    jwt_key: str = field(default="", repr=False)
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_claims: tuple[str, ...] = ()
    #: Query parameter that may carry the token ("" = none).
    query: str = "token"
    #: A ``Sec-WebSocket-Protocol`` entry ``bearer.<token>`` may carry the token.
    subprotocol: bool = False

    @classmethod
    def from_dict(cls, options: Any) -> AuthOptions | None:
        """nil → None (no authentication)."""
        if options is None:
            return None
        options = _map(options, "auth")
        kind = options.get("type")
        if kind not in AUTH_TYPES:
            raise ValueError(f"auth.type must be one of {', '.join(AUTH_TYPES)}")
        jwt = _map(options.get("jwt"), "auth.jwt")
        algorithm = _text(jwt, "algorithm", "HS256")
        if algorithm not in JWT_ALGORITHMS:
            raise ValueError(f"auth.jwt.algorithm must be one of {', '.join(JWT_ALGORITHMS)}")
        claims = _strings(jwt, "claims") or ()
        return cls(
            type=kind,
            users=_pairs(options, "users"),
            tokens=_pairs(options, "tokens"),
            jwt_algorithm=algorithm,
            jwt_key=_text(jwt, "key"),
            jwt_issuer=_text(jwt, "issuer"),
            jwt_audience=_text(jwt, "audience"),
            jwt_claims=claims,
            query=_text(options, "query"),
            subprotocol=_flag(options, "subprotocol", False),
        )


#: URL schemes of a backplane: Redis (or Valkey) over TCP, over TLS, or a Unix socket.
BACKPLANE_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True)
class BackplaneOptions:
    """The ``backplane`` map of ``listen`` (v5, docs/protocol.md). The password stays out of
    ``repr``; so does the URL, which may carry one."""

    url: str = field(repr=False)
    namespace: str = "pyws"
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, options: Any) -> BackplaneOptions | None:
        """nil → None (the endpoint serves this instance only)."""
        if options is None:
            return None
        options = _map(options, "backplane")
        url = _text(options, "url")
        scheme, sep, _ = url.partition("://")
        if not sep or scheme.lower() not in BACKPLANE_SCHEMES:
            raise ValueError("backplane.url must be a redis://, rediss:// or unix:// URL")
        namespace = _text(options, "namespace", "pyws")
        if not namespace or any(char.isspace() for char in namespace):
            raise ValueError("backplane.namespace must be a non-empty string without spaces")
        password = options.get("password")
        if password is not None and not isinstance(password, str):
            raise ValueError("backplane.password must be a string or nil")
        return cls(url=url, namespace=namespace, password=password or None)


@dataclass(frozen=True)
class EndpointOptions:
    """``["listen", owner, options]`` (docs/protocol.md)."""

    path: str = ""
    max_size: int | None = DEFAULT_MAX_SIZE
    compression: bool = False
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    #: None: accept the client's first offer (as core's ``ws`` server does).
    subprotocols: tuple[str, ...] | None = None
    write_limit: int | None = DEFAULT_WRITE_LIMIT
    #: Seconds between pings to every client (None: no heartbeat).
    heartbeat: float | None = None
    #: Open sessions beyond which a handshake gets 503 (None: no limit).
    max_connections: int | None = None
    #: Messages a second a client may send (None: no limit); over it: close 1008.
    max_rate: float | None = None
    #: The first X-Forwarded-For hop is the client's address.
    trust_proxy: bool = False
    #: Allowed ``Origin`` values (exact, or ``*.example.com``); None: any.
    origins: tuple[str, ...] | None = None
    #: A request without ``Origin`` is refused (only with ``origins``).
    origin_required: bool = False
    auth: AuthOptions | None = None
    #: Other Node-RED instances serving the same path, through Redis pub/sub (v5).
    backplane: BackplaneOptions | None = None

    @classmethod
    def from_dict(cls, options: Any) -> EndpointOptions:
        options = _map(options)
        path = options.get("path", "")
        if not isinstance(path, str):
            raise ValueError("path must be a string")
        max_connections: int = _number(options, "max_connections", 0, integer=True)
        return cls(
            path=path,
            max_size=_size(options, "max_size", DEFAULT_MAX_SIZE),
            compression=_flag(options, "compression", False),
            handshake_timeout=_seconds(options, "handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT),
            subprotocols=_strings(options, "subprotocols"),
            write_limit=_size(options, "write_limit", DEFAULT_WRITE_LIMIT),
            heartbeat=_seconds(options, "heartbeat", 0),
            max_connections=max_connections or None,
            max_rate=_seconds(options, "max_rate", 0),
            trust_proxy=_flag(options, "trust_proxy", False),
            origins=_strings(options, "origins") or None,
            origin_required=_flag(options, "origin_required", False),
            auth=AuthOptions.from_dict(options.get("auth")),
            backplane=BackplaneOptions.from_dict(options.get("backplane")),
        )


@dataclass(frozen=True)
class TlsOptions:
    """The ``tls`` map of ``connect``: PEM strings as Node-RED's tls-config node holds them."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    passphrase: str | None = None
    verify: bool = True
    servername: str | None = None

    @classmethod
    def from_dict(cls, options: Any) -> TlsOptions | None:
        """nil → None."""
        if options is None:
            return None
        options = _map(options, "tls")
        values: dict[str, Any] = {}
        for name in ("ca", "cert", "key", "passphrase", "servername"):
            value = options.get(name)
            if value is not None and not isinstance(value, str):
                raise ValueError(f"tls.{name} must be a string or nil")
            values[name] = value or None
        verify = options.get("verify", True)
        if not isinstance(verify, bool):
            raise ValueError("tls.verify must be a boolean")
        return cls(verify=verify, **values)


@dataclass(frozen=True)
class ClientOptions:
    """``["connect", owner, options]`` and ``["client_action", owner, "connect", options]``
    (docs/protocol.md)."""

    url: str
    subprotocols: tuple[str, ...] = ()
    headers: tuple[tuple[str, str], ...] = ()
    heartbeat: float | None = None
    tls: TlsOptions | None = None
    proxy: str | None = None
    handshake_timeout: float | None = DEFAULT_HANDSHAKE_TIMEOUT
    max_size: int | None = DEFAULT_MAX_SIZE
    compression: bool = False
    write_limit: int | None = DEFAULT_WRITE_LIMIT
    #: Connect when declared; else wait for a ``connect`` action (``connect`` only).
    auto: bool = True
    #: "fixed": every ``reconnect_delay`` s (core); "backoff": ``reconnect_delay`` first, times
    #: ``reconnect_factor`` per wait up to ``reconnect_max_delay``, each drawn 75-100 % of it.
    reconnect_policy: str = "fixed"
    reconnect_delay: float = DEFAULT_RECONNECT_DELAY
    reconnect_max_delay: float = 60.0
    reconnect_factor: float = 2.0
    #: Attempts in a row that fail (or do not stay up) before giving up (0: never).
    reconnect_attempts: int = 0
    #: Seconds a connection must stay open to count as up: the backoff and the count of
    #: attempts start again after it.
    reconnect_reset: float = 10 * DEFAULT_RECONNECT_DELAY

    @classmethod
    def from_dict(cls, options: Any) -> ClientOptions:
        if not isinstance(options, dict):
            raise ValueError("options must be a map")
        url = options.get("url")
        if not isinstance(url, str) or not url:
            raise ValueError("url must be a non-empty string")
        headers = _pairs(options, "headers")
        proxy = options.get("proxy")
        if proxy is not None and not isinstance(proxy, str):
            raise ValueError("proxy must be a string or nil")
        policy = _text(options, "reconnect_policy", "fixed")
        if policy not in RECONNECT_POLICIES:
            raise ValueError(f"reconnect_policy must be one of {', '.join(RECONNECT_POLICIES)}")
        delay = _finite(options, "reconnect_delay", DEFAULT_RECONNECT_DELAY)
        max_delay = _finite(options, "reconnect_max_delay", 60.0)
        if max_delay < delay:
            raise ValueError("reconnect_max_delay must be >= reconnect_delay")
        return cls(
            url=url,
            subprotocols=_strings(options, "subprotocols") or (),
            headers=headers,
            heartbeat=_seconds(options, "heartbeat", 0),
            tls=TlsOptions.from_dict(options.get("tls")),
            proxy=proxy or None,
            handshake_timeout=_seconds(options, "handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT),
            max_size=_size(options, "max_size", DEFAULT_MAX_SIZE),
            compression=_flag(options, "compression", False),
            write_limit=_size(options, "write_limit", DEFAULT_WRITE_LIMIT),
            auto=_flag(options, "auto", True),
            reconnect_policy=policy,
            reconnect_delay=delay,
            reconnect_max_delay=max_delay,
            reconnect_factor=_finite(options, "reconnect_factor", 2.0, minimum=1),
            reconnect_attempts=_number(options, "reconnect_attempts", 0, integer=True),
            reconnect_reset=_finite(options, "reconnect_reset", 10 * DEFAULT_RECONNECT_DELAY),
        )


def _finite(options: dict[str, Any], key: str, default: float, minimum: float = 0) -> float:
    """A number >= ``minimum`` that is not infinite."""
    value = float(_number(options, key, default, minimum=minimum))
    if math.isinf(value):
        raise ValueError(f"{key} must be finite")
    return value
