"""Fetch the certificate chain a TLS server serves (async I/O; no verification).

The handshake verifies nothing (``CERT_NONE``, no host name check): judging the chain is the
inspector's job (`probes.tls.cert`), and a broken certificate must still be fetched to be
reported.

The chain: Python 3.13 has ``SSLObject.get_unverified_chain()``; on 3.10–3.12 the same call
lives on the private ``SSLObject._sslobj``. When neither is there, only the leaf is returned
(``getpeercert(binary_form=True)``) and the inspector's ``chain_complete`` cannot be judged
(it then reads ``incomplete_chain`` for any CA-issued leaf).

``starttls="sip"``: SIP over TLS (RFC 3261 ``sips:``/``transport=tls``) has no STARTTLS; the
handshake starts at once, so "sip" is plain TLS whose default port is 5061 instead of 443.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from typing import Any, Final, Literal

StartTls = Literal["none", "sip"]
DEFAULT_PORTS: Final[dict[str, int]] = {"none": 443, "sip": 5061}
_DETAIL_MAX: Final = 120

FetchReason = Literal["dns_failure", "refused", "timeout", "handshake_failed", "connect_failed"]


class CertFetchError(Exception):
    """The chain could not be fetched. `reason` is one of the short `FetchReason` strings;
    `detail` a short (truncated) description that never quotes bytes the peer sent."""

    def __init__(self, reason: FetchReason, detail: str = "") -> None:
        self.reason: FetchReason = reason
        self.detail = detail[:_DETAIL_MAX]
        super().__init__(f"{reason}: {self.detail}" if self.detail else reason)


def _client_context() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def served_chain(ssl_object: Any) -> list[bytes]:
    """The DER certificates the peer sent, leaf first (see the module doc for the fallback)."""
    public = getattr(ssl_object, "get_unverified_chain", None)
    if public is not None:  # Python >= 3.13: a list of DER bytes
        return [bytes(c) for c in public() or []]
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    if private is not None:  # Python 3.10-3.12: a list of _ssl.Certificate
        chain = private() or []
        return [bytes(c.public_bytes(ssl._ssl.ENCODING_DER)) for c in chain]  # type: ignore[attr-defined]
    leaf = ssl_object.getpeercert(binary_form=True)
    return [bytes(leaf)] if leaf else []


async def fetch_chain(
    host: str,
    port: int | None = None,
    *,
    sni: str | None = None,
    timeout: float = 5.0,  # noqa: ASYNC109 (one deadline: connect + handshake)
    starttls: StartTls = "none",
) -> list[bytes]:
    """Handshake with `host`:`port` (default by `starttls`: 443, or 5061 for "sip") and return
    the served chain as DER, leaf first. `sni` defaults to `host` (not sent for an IP address).

    Raises `CertFetchError` ("dns_failure", "refused", "timeout", "handshake_failed",
    "connect_failed"), also when the server sent no certificate ("handshake_failed").
    """
    if starttls not in DEFAULT_PORTS:
        raise ValueError(f"starttls must be one of {sorted(DEFAULT_PORTS)}")
    if port is None:
        port = DEFAULT_PORTS[starttls]
    server_hostname = sni if sni is not None else host.strip("[]")
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(
                host.strip("[]"),
                port,
                ssl=_client_context(),
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
    except TimeoutError:
        raise CertFetchError("timeout", f"no handshake within {timeout:g} s") from None
    except socket.gaierror as exc:
        raise CertFetchError("dns_failure", f"{host}: {exc.strerror or exc}") from None
    except ConnectionRefusedError:
        raise CertFetchError("refused", f"{host}:{port} refused the connection") from None
    except ssl.SSLError as exc:
        raise CertFetchError("handshake_failed", exc.reason or type(exc).__name__) from None
    except (ConnectionError, EOFError) as exc:
        raise CertFetchError("handshake_failed", type(exc).__name__) from None
    except OSError as exc:
        raise CertFetchError("connect_failed", exc.strerror or type(exc).__name__) from None
    try:
        chain = served_chain(writer.get_extra_info("ssl_object"))
    finally:
        writer.close()
        with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
            async with asyncio.timeout(1.0):
                await writer.wait_closed()
    if not chain:
        raise CertFetchError("handshake_failed", "the server sent no certificate")
    return chain
