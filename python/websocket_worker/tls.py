"""TLS client contexts for ``wss://`` connections, built from the PEM strings of a tls config.

Mirrors Node's ``tls.connect`` options as Node-RED's tls-config node fills them: ``ca`` replaces
the system trust store, ``cert``/``key`` (+ ``passphrase``) is the client certificate, ``verify``
false accepts any server certificate, ``servername`` is the SNI / expected host name.
"""

from __future__ import annotations

import os
import shutil
import ssl
import tempfile

from .options import TlsOptions

__all__ = ["build_ssl_context"]


def _write_private(directory: str, name: str, text: str) -> str:
    path = os.path.join(directory, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)
    return path


def build_ssl_context(options: TlsOptions | None) -> ssl.SSLContext:
    """An SSLContext for a client; raises ssl.SSLError or ValueError on bad PEM input.

    ``load_cert_chain`` only reads files, so a client certificate and key are written to a private
    temporary directory (mode 0700, files 0600) and deleted right after loading.
    """
    if options is None:
        return ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if options.ca:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks host names
        context.load_verify_locations(cadata=options.ca)
    else:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    if options.cert:
        directory = tempfile.mkdtemp(prefix="websocket-worker-")
        try:
            certfile = _write_private(directory, "cert.pem", options.cert)
            keyfile = _write_private(directory, "key.pem", options.key) if options.key else None
            # Never None: OpenSSL would prompt on the terminal for an encrypted key.
            password = options.passphrase if options.passphrase is not None else ""
            context.load_cert_chain(certfile, keyfile, password=password)
        finally:
            shutil.rmtree(directory, ignore_errors=True)
    if not options.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context
