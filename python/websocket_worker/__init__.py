"""Python worker of node-red-contrib-python-websocket: all WebSocket work of the Node-RED nodes.

Modules: ``ipc`` (frame codec), ``channel`` (event channel), ``handoff`` (socket handoff on fd 3),
``session`` (one listener connection), ``stream`` (byte-proxy transport), ``endpoints`` (listener
registry), ``tls`` (client TLS contexts), ``clients`` (client connections), ``worker`` (dispatcher),
``__main__`` (entry point). The IPC protocol is docs/protocol.md.
"""

from __future__ import annotations

from .ipc import PROTOCOL_VERSION

__all__ = ["PROTOCOL_VERSION", "__version__"]

__version__ = "0.1.0"
