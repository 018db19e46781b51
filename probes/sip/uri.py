"""SIP and SIPS URIs (RFC 3261 §19.1, grammar §25.1), %-escapes resolved, IPv6 references."""

from __future__ import annotations

import ipaddress
import re
import sys
from dataclasses import dataclass
from urllib.parse import quote

from probes.sip.errors import SipParseError
from probes.sip.grammar import unescape

DEFAULT_PORT = 5060  # RFC 3261 §19.1.2: sip: over UDP/TCP
DEFAULT_TLS_PORT = 5061  # RFC 3261 §19.1.2: sips: / TLS
MAX_PORT = 65_535


def _run(cls: str, *, min_one: bool = True) -> str:
    # 1*( [cls] / escaped ), each character matched one way; possessive, so no backtracking.
    return rf"(?:[{cls}]++|%[0-9A-Fa-f]{{2}}){'++' if min_one else '*+'}"


_UNRESERVED = r"A-Za-z0-9\-_.!~*'()"  # unreserved = alphanum / mark
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER = _run(_UNRESERVED + r"&=+$,;?/")
# password = *( unreserved / escaped / "&" / "=" / "+" / "$" / "," )
_PASSWORD = _run(_UNRESERVED + r"&=+$,", min_one=False)
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
_PCHARS = _run(_UNRESERVED + r"\[\]/:&+$")
# hname / hvalue: hnv-unreserved / unreserved / escaped; hnv-unreserved = [ ] / ? : + $
_HNAME = _run(_UNRESERVED + r"\[\]/?:+$")
_HVALUE = _run(_UNRESERVED + r"\[\]/?:+$", min_one=False)
_HEADER = rf"{_HNAME}={_HVALUE}"

# SIP-URI = "sip:" [ userinfo ] hostport uri-parameters [ headers ]  (SIPS-URI alike)
_SIP_URI_RE = re.compile(
    rf"(?P<scheme>[Ss][Ii][Pp][Ss]?):"
    rf"(?:(?P<user>{_USER})(?::(?P<password>{_PASSWORD}))?@)?"
    r"(?P<host>\[[0-9A-Fa-f:.]++\]|[A-Za-z0-9\-.]++)"
    r"(?::(?P<port>[0-9]{1,5}))?"
    rf"(?P<params>(?:;{_PCHARS}(?:={_PCHARS})?)*+)"
    rf"(?:\?(?P<headers>{_HEADER}(?:&{_HEADER})*+))?"
)

# The usual shape (no escapes, no IPv6, no URI headers), a strict subset of _SIP_URI_RE whose
# host pattern also enforces _check_hostname's rules, so a match needs no further checks.
_LABEL = r"[A-Za-z0-9]++(?:-++[A-Za-z0-9]++)*+"
PLAIN_SIP_URI_RE = re.compile(
    r"[Ss][Ii][Pp][Ss]?:"
    rf"(?:[{_UNRESERVED}&=+$,;?/]++(?::[{_UNRESERVED}&=+$,]*+)?@)?"
    rf"{_LABEL}(?:\.{_LABEL})*+\.?"
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
    r"(?![0-9]))?"
    rf"(?:;[{_UNRESERVED}\[\]/:&+$]++(?:=[{_UNRESERVED}\[\]/:&+$]++)?)*+"
)

# Characters each part may carry unescaped when serialized (the grammar's sets above, minus
# the alphanumerics and "_.-~" that urllib.parse.quote never escapes).
_USER_SAFE = "!*'()&=+$,;?/"
_PASSWORD_SAFE = "!*'()&=+$,"
_PARAM_SAFE = "!*'()[]/:&+$"
_HEADER_SAFE = "!*'()[]/?:+$"


def default_port(transport: str) -> int:
    """The port a URI without one means (RFC 3261 §19.1.2, RFC 3263 §4.2)."""
    return DEFAULT_TLS_PORT if transport.lower() == "tls" else DEFAULT_PORT


def _check_hostname(host: str, text: str) -> None:
    # hostname = *( domainlabel "." ) toplabel [ "." ]; labels are alphanum, "-" only inside.
    if host[0] in "-." or host[-1] == "-" or ".." in host or "-." in host or ".-" in host:
        raise SipParseError("invalid host in URI", text)


def _match(text: str) -> re.Match[str]:
    m = _SIP_URI_RE.fullmatch(text)
    if m is None:
        if text.partition(":")[0].lower() not in ("sip", "sips"):
            raise SipParseError("not a sip: or sips: URI", text)
        raise SipParseError("malformed SIP URI", text)
    host = m["host"]
    if host[0] == "[":
        try:
            ipaddress.IPv6Address(host[1:-1])
        except ValueError:
            raise SipParseError("invalid IPv6 reference in URI", text) from None
    else:
        _check_hostname(host, text)
    port = m["port"]
    if port is not None and int(port) > MAX_PORT:
        raise SipParseError("port out of range in URI", text)
    return m


def check_sip_uri(text: str) -> str | None:
    """Validate a sip:/sips: URI without building it; return its raw headers part, if any."""
    if PLAIN_SIP_URI_RE.fullmatch(text):
        return None
    headers: str | None = _match(text)["headers"]
    return headers


def _quote(text: str, safe: str) -> str:
    return quote(text, safe=safe, errors="surrogateescape")


@dataclass(slots=True, frozen=True)
class SipUri:
    """A sip:/sips: URI with escapes resolved; `str()` writes it back, re-escaping as needed."""

    scheme: str  # "sip" or "sips", lower case
    user: str | None
    password: str | None
    host: str  # IPv6 without brackets
    port: int | None
    params: tuple[tuple[str, str | None], ...] = ()
    headers: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, text: str) -> SipUri:
        """Parse a SIP-URI or SIPS-URI (RFC 3261 §25.1); anything else raises SipParseError."""
        m = _match(text)
        host = m["host"]
        if host[0] == "[":
            host = host[1:-1]
        port_text = m["port"]
        port = int(port_text) if port_text is not None else None
        user = m["user"]
        password = m["password"]
        params_text = m["params"]
        params: tuple[tuple[str, str | None], ...] = ()
        if params_text:
            items = []
            for item in params_text[1:].split(";"):
                name, sep, value = item.partition("=")
                items.append((unescape(name), unescape(value) if sep else None))
            params = tuple(items)
        headers_text = m["headers"]
        headers: tuple[tuple[str, str], ...] = ()
        if headers_text:
            pairs = []
            for item in headers_text.split("&"):
                name, _, value = item.partition("=")
                pairs.append((unescape(name), unescape(value)))
            headers = tuple(pairs)
        # Interned: 100,000 trunks' URIs name "sip" and a few carriers' hosts, not 100,000
        # copies of each (~100 bytes a trunk).
        return cls(
            scheme=sys.intern(m["scheme"].lower()),
            user=unescape(user) if user is not None else None,
            password=unescape(password) if password is not None else None,
            host=sys.intern(host),
            port=port,
            params=params,
            headers=headers,
        )

    def param(self, name: str) -> str | None:
        """The value of the first parameter called `name` (case-insensitive), None if absent
        or valueless (use has_param to tell those apart)."""
        lname = name.lower()
        for pname, value in self.params:
            if pname.lower() == lname:
                return value
        return None

    def has_param(self, name: str) -> bool:
        lname = name.lower()
        return any(pname.lower() == lname for pname, _ in self.params)

    @property
    def transport(self) -> str:
        """Lower-case transport: the transport param, else "udp" (sip:) or "tls" (sips:).

        sips: always means TLS (RFC 3261 §26.2.2, RFC 5630 §3.2); transport=tcp on a sips: URI
        is TLS over TCP and reads "tls".
        """
        value = self.param("transport")
        transport = value.lower() if value else None
        if self.scheme == "sips" and transport in (None, "tcp", "tls"):
            return "tls"
        return transport or "udp"

    @property
    def hostport(self) -> str:
        """host[:port] as written in a URI or Via (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port is None else f"{host}:{self.port}"

    def __str__(self) -> str:
        out = [self.scheme, ":"]
        if self.user is not None:
            out.append(_quote(self.user, _USER_SAFE))
            if self.password is not None:
                out.append(":")
                out.append(_quote(self.password, _PASSWORD_SAFE))
            out.append("@")
        out.append(self.hostport)
        for name, value in self.params:
            out.append(";")
            out.append(_quote(name, _PARAM_SAFE))
            if value is not None:
                out.append("=")
                out.append(_quote(value, _PARAM_SAFE))
        for i, (name, value) in enumerate(self.headers):
            out.append("?" if i == 0 else "&")
            out.append(_quote(name, _HEADER_SAFE))
            out.append("=")
            out.append(_quote(value, _HEADER_SAFE))
        return "".join(out)
