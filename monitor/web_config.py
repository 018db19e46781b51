"""The Prometheus exporter-toolkit web configuration (``http.web_config_file``), as its users
know it from node_exporter and friends: TLS (with client certificates), HTTP basic auth with
bcrypt hashes, and extra response headers. Spec:
https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

__all__ = ["BasicAuth", "WebConfig", "WebConfigError", "load_web_config"]

ClientAuth = Literal[
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_VERSIONS: Final = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# exporter-toolkit refuses to let the config set these (they are the server's own).
_RESERVED_HEADERS: Final = frozenset(
    {"authorization", "content-type", "content-length", "content-encoding", "www-authenticate"}
)
# The headers exporter-toolkit accepts in http_server_config.headers.
_ALLOWED_HEADERS: Final = frozenset(
    {
        "content-security-policy",
        "x-frame-options",
        "x-content-type-options",
        "x-xss-protection",
        "strict-transport-security",
    }
)
MAX_WEB_CONFIG_BYTES: Final = 256 * 1024  # a few users and file names; bigger is not one
_STRICT = ConfigDict(extra="forbid", frozen=True)
# bcrypt of a random throwaway password at cost 10, the usual cost of htpasswd -B hashes.
_DUMMY_HASH: Final = b"$2b$10$3euPcmQFCiblsZeEu5s7p.9OVHgeHWFDk9nhMqZ0m/3pd/lhwZgES"


class WebConfigError(ValueError):
    """A web config file that cannot be used: `file:line: field: problem` lines."""


class TlsServerConfig(BaseModel):
    model_config = _STRICT

    cert_file: Path
    key_file: Path
    client_auth_type: ClientAuth = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"


class HttpServerConfig(BaseModel):
    model_config = _STRICT

    headers: dict[str, str] = Field(default_factory=dict)
    http2: bool = True  # accepted for compatibility; aiohttp serves HTTP/1.1

    @field_validator("headers")
    @classmethod
    def _known_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            lowered = name.lower()
            if lowered in _RESERVED_HEADERS or lowered not in _ALLOWED_HEADERS:
                allowed = ", ".join(sorted(_ALLOWED_HEADERS))
                raise ValueError(f"header {name!r} cannot be set here (allowed: {allowed})")
        return value


class WebConfigModel(BaseModel):
    model_config = _STRICT

    tls_server_config: TlsServerConfig | None = None
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, str] = Field(default_factory=dict)

    @field_validator("basic_auth_users")
    @classmethod
    def _bcrypt_hashes(cls, value: dict[str, str]) -> dict[str, str]:
        for user, hashed in value.items():
            if not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise ValueError(f"user {user!r}: the password must be a bcrypt hash ($2y$...)")
        return value


@dataclass
class BasicAuth:
    """bcrypt checks, with successful ones cached (as exporter-toolkit does): a scrape every
    15 s must not cost 100+ ms of bcrypt each time."""

    users: Mapping[str, str]
    _good: set[bytes] = field(default_factory=set)

    def check(self, header: str) -> bool:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return False
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user_bytes, sep, password = decoded.partition(b":")
        if not sep:
            return False
        user = user_bytes.decode("utf-8", "surrogateescape")
        hashed = self.users.get(user)
        if hashed is None:
            # Checked against a dummy hash all the same: an unknown user must take as long
            # as a wrong password, or the timing tells which users exist.
            import bcrypt

            bcrypt.checkpw(password, _DUMMY_HASH)
            return False
        key = hashlib.sha256(decoded + b"\x00" + hashed.encode()).digest()
        if any(hmac.compare_digest(key, good) for good in self._good):
            return True
        import bcrypt

        try:
            ok = bool(bcrypt.checkpw(password, hashed.encode()))
        except ValueError:
            return False
        if ok:
            self._good.add(key)
        return ok


@dataclass(frozen=True)
class WebConfig:
    """The loaded web config: what the server needs to apply it."""

    source: Path
    ssl_context: ssl.SSLContext | None
    basic_auth: BasicAuth | None
    headers: Mapping[str, str]


def _line_of(root: Any, loc: tuple[Any, ...]) -> int | None:
    node, line = root, None
    for part in loc:
        try:
            position = node.lc.key(part) if isinstance(part, str) else node.lc.item(part)
            line = int(position[0]) + 1
            node = node[part]
        except (AttributeError, KeyError, IndexError, TypeError):
            break
    return line


def load_web_config(path: Path) -> WebConfig:
    """Read and check a web config file; WebConfigError names file, line, field, problem."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    def fail(line: int | None, where: str, problem: str) -> WebConfigError:
        place = f"{path}:{line}" if line else str(path)
        return WebConfigError(f"{place}: {where + ': ' if where else ''}{problem}")

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise fail(None, "", f"cannot read the web config file: {exc.strerror}") from None
    if len(data) > MAX_WEB_CONFIG_BYTES:
        raise fail(None, "", f"larger than {MAX_WEB_CONFIG_BYTES} bytes")
    try:
        root = YAML(typ="rt").load(data.decode("utf-8"))
    except (YAMLError, UnicodeDecodeError, RecursionError, ValueError) as exc:
        raise fail(None, "", f"not valid YAML ({type(exc).__name__})") from None
    try:
        model = WebConfigModel.model_validate(root or {})
    except ValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False, include_input=False):
            loc = tuple(error["loc"])
            where = ".".join(str(p) for p in loc)
            lines.append(str(fail(_line_of(root, loc), where, error["msg"])))
        raise WebConfigError("\n".join(lines)) from None
    base = path.resolve().parent
    context = None
    if model.tls_server_config is not None:
        context = _ssl_context(model.tls_server_config, base, fail)
    auth = BasicAuth(dict(model.basic_auth_users)) if model.basic_auth_users else None
    return WebConfig(path, context, auth, dict(model.http_server_config.headers))


def _ssl_context(tls: TlsServerConfig, base: Path, fail: Any) -> ssl.SSLContext:
    def resolve(p: Path) -> Path:
        return p if p.is_absolute() else base / p

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    context.maximum_version = _VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(resolve(tls.cert_file), resolve(tls.key_file))
    except (OSError, ssl.SSLError) as exc:
        raise fail(None, "tls_server_config.cert_file", f"cannot load: {exc}") from None
    # Python's TLS checks any certificate a client presents: every mode but NoClientCert
    # needs the CA to check it against.
    if tls.client_auth_type != "NoClientCert" and tls.client_ca_file is None:
        raise fail(None, "tls_server_config.client_ca_file", f"{tls.client_auth_type} needs it")
    if tls.client_ca_file is not None:
        try:
            context.load_verify_locations(resolve(tls.client_ca_file))
        except (OSError, ssl.SSLError) as exc:
            raise fail(None, "tls_server_config.client_ca_file", f"cannot load: {exc}") from None
    # "Request" and "RequireAny" (which accept any certificate unverified in Go) are served
    # as "verify if given" and "require and verify": Python cannot accept one unchecked.
    context.verify_mode = {
        "NoClientCert": ssl.CERT_NONE,
        "RequestClientCert": ssl.CERT_OPTIONAL,
        "RequireAnyClientCert": ssl.CERT_REQUIRED,
        "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
        "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
    }[tls.client_auth_type]
    return context
