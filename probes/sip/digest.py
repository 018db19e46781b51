"""HTTP Digest for SIP: RFC 2617, RFC 7616 (SHA-256, -sess, userhash), RFC 8760 (SIP's use).

Answers a WWW-Authenticate / Proxy-Authenticate challenge with the value of an Authorization /
Proxy-Authorization header (RFC 3261 §22.4). The password is only ever hashed here; it never
appears in a returned string, an error or a repr.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from probes.sip.errors import DigestError
from probes.sip.grammar import QUOTED, TOKEN, quote_string, unquote_string

__all__ = [
    "SUPPORTED_ALGORITHMS",
    "DigestChallenge",
    "DigestError",
    "authorization_header",
    "parse_challenge",
    "select_challenge",
]

# RFC 7616 §6.1 / RFC 8760 §2.2 algorithm names → hashlib names. -sess variants reuse these.
_HASHES = {"MD5": "md5", "SHA-256": "sha256", "SHA-512-256": "sha512_256"}
SUPPORTED_ALGORITHMS = frozenset({*_HASHES, *(f"{name}-SESS" for name in _HASHES)})
CNONCE_BYTES = 16  # RFC 7616 §3.4: the cnonce should carry at least 64 bits of entropy
MAX_NONCE_COUNT = 0xFFFFFFFF  # nc is 8 hex digits (RFC 7616 §3.4)

# auth-param = token BWS "=" BWS ( token / quoted-string ), separated by commas (RFC 7235 §2.1).
_AUTH_PARAM_RE = re.compile(rf"[ \t,]*({TOKEN})[ \t]*=[ \t]*({TOKEN}|{QUOTED})[ \t]*(?:,|$)")
_TRAILING_RE = re.compile(r"[ \t,]*")


@dataclass(slots=True, frozen=True)
class DigestChallenge:
    realm: str
    nonce: str
    opaque: str | None = None
    algorithm: str = "MD5"  # as the server wrote it; RFC 2617 §3.2.1: absent means MD5
    qop: tuple[str, ...] = ()  # the qop options offered, lower case; () for RFC 2069 style
    stale: bool = False
    userhash: bool = False  # RFC 7616 §3.4.4

    @property
    def supported(self) -> bool:
        return self.algorithm.upper() in SUPPORTED_ALGORITHMS


def parse_challenge(header_value: str) -> DigestChallenge:
    """Parse one WWW-Authenticate / Proxy-Authenticate value: `Digest realm=..., nonce=...`."""
    scheme, _, rest = header_value.strip(" \t").partition(" ")
    if scheme.lower() != "digest":
        raise DigestError(f"not a Digest challenge (scheme {scheme[:20]!r})")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _AUTH_PARAM_RE.match(rest, pos)
        if m is None:
            if _TRAILING_RE.fullmatch(rest, pos):
                break
            raise DigestError("malformed Digest challenge parameters")
        name, value = m.group(1).lower(), m.group(2)
        params.setdefault(name, unquote_string(value) if value.startswith('"') else value)
        pos = m.end()
    if "realm" not in params or "nonce" not in params:
        raise DigestError("Digest challenge without realm or nonce")
    qop = tuple(q for part in params.get("qop", "").split(",") if (q := part.strip().lower()))
    return DigestChallenge(
        realm=params["realm"],
        nonce=params["nonce"],
        opaque=params.get("opaque"),
        algorithm=params.get("algorithm", "MD5"),
        qop=qop,
        stale=params.get("stale", "").lower() == "true",
        userhash=params.get("userhash", "").lower() == "true",
    )


def select_challenge(header_values: Iterable[str]) -> DigestChallenge:
    """The first Digest challenge with an algorithm we support (RFC 8760 §2.4: servers list
    them in preference order, clients take the first they support)."""
    for value in header_values:
        try:
            challenge = parse_challenge(value)
        except DigestError:
            continue
        if challenge.supported:
            return challenge
    raise DigestError("no Digest challenge with a supported algorithm")


def _hasher(algorithm: str) -> Callable[[bytes], str]:
    name = _HASHES.get(algorithm)
    if name is None:
        raise DigestError(f"unsupported digest algorithm {algorithm[:40]!r}")

    def digest(data: bytes) -> str:
        return hashlib.new(name, data).hexdigest()

    return digest


def authorization_header(
    challenge: DigestChallenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    cnonce: str | None = None,
    nc: int = 1,
    body: bytes = b"",
) -> str:
    """The Authorization / Proxy-Authorization value answering `challenge` (RFC 7616 §3.4)."""
    algorithm = challenge.algorithm.upper()
    session = algorithm.endswith("-SESS")
    h = _hasher(algorithm[:-5] if session else algorithm)
    if not 1 <= nc <= MAX_NONCE_COUNT:
        raise DigestError("nonce count out of range")

    def kd(*parts: str) -> str:
        # Hashed as the bytes that came on the wire (RFC 7616 §3.4.2 hashes octets): header
        # text is decoded with surrogateescape, so a realm or nonce that is not UTF-8 (a
        # Latin-1 realm, say) round-trips to its original bytes instead of raising.
        return h(":".join(parts).encode("utf-8", "surrogateescape"))

    qop: str | None = None
    if challenge.qop:
        # Prefer "auth": it does not hash the body, so it works for any body (RFC 7616 §3.3).
        if "auth" in challenge.qop:
            qop = "auth"
        elif "auth-int" in challenge.qop:
            qop = "auth-int"
        else:
            raise DigestError("no supported qop offered")
    if cnonce is None and (qop is not None or session):
        cnonce = secrets.token_hex(CNONCE_BYTES)
    nc_text = f"{nc:08x}"

    ha1 = kd(username, challenge.realm, password)
    if session:
        # RFC 7616 §3.4.2: A1 = H(user:realm:password):nonce:cnonce for the -sess algorithms.
        ha1 = kd(ha1, challenge.nonce, cnonce or "")
    ha2 = kd(method, uri, h(body)) if qop == "auth-int" else kd(method, uri)
    if qop is None:
        response = kd(ha1, challenge.nonce, ha2)  # RFC 2069 compatibility (RFC 2617 §3.2.2.1)
    else:
        response = kd(ha1, challenge.nonce, nc_text, cnonce or "", qop, ha2)

    user = kd(username, challenge.realm) if challenge.userhash else username
    parts = [
        f"username={quote_string(user)}",
        f"realm={quote_string(challenge.realm)}",
        f"nonce={quote_string(challenge.nonce)}",
        f"uri={quote_string(uri)}",
        f"response={quote_string(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if qop is not None or session:
        parts.append(f"cnonce={quote_string(cnonce or '')}")
    if challenge.opaque is not None:
        parts.append(f"opaque={quote_string(challenge.opaque)}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc_text}")
    if challenge.userhash:
        parts.append("userhash=true")
    return "Digest " + ", ".join(parts)
