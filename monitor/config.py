"""trunkwatch's one YAML config file: frozen pydantic models and a loader whose errors name
file, line, field and problem (all problems at once, never a secret)."""

from __future__ import annotations

import difflib
import gc
import importlib.util
import ipaddress
import math
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    WrapValidator,
    create_model,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.scalarbool import ScalarBoolean
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from monitor import __version__
from monitor.control import ControlLoop, parse_target
from monitor.durations import format_duration, parse_duration
from monitor.http_guard import HttpLimits
from monitor.secrets import SECRET_NOT_READ, SecretFileError, read_secret_file
from monitor.sla.contracts import ContractsSettings
from monitor.store.engine import ASYNC_DRIVERS, driver_missing
from monitor.tickets.config import TicketsSettings
from monitor.vantage import VantageGuard, VantagePolicy
from monitor.web_config import WebConfigError, load_web_config
from monitor.yaml_fast import NotFast, fast_yaml
from probes.dns.settings import DEFAULT_MAX_TARGETS, ResolverSettings
from probes.hostport import split_host_port
from probes.http_status import check_path
from probes.media.thresholds import BUILTIN_PROFILES, ThresholdProfile
from probes.result import ProbeResult
from probes.sip.errors import SipParseError
from probes.sip.uri import PLAIN_SIP_URI_RE, SipUri
from probes.target_rule import TargetRule, locates_targets

# --- limits and defaults, each with its reason -------------------------------------------

# Trunk and agent names become Prometheus label values and URL path segments; this keeps
# them safe in both and short enough for a dashboard legend.
LABEL_PATTERN: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
LABEL_RULE: Final = "1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
# RFC 3261 §7.2 / §21: a status code is three digits, classes 1xx to 6xx.
SIP_STATUS_MIN: Final = 100
SIP_STATUS_MAX: Final = 699
DEFAULT_INTERVAL: Final = 5.0
DEFAULT_TIMEOUT: Final = 4.0
# When only an interval is given, the timeout leaves a fifth of it free so one probe's
# timeout never runs into the next probe of the same trunk.
IMPLICIT_TIMEOUT_FRACTION: Final = 0.8
# Contracts count downtime in minutes; a trunk probed less often than hourly cannot be
# measured to that resolution, so a larger value is a unit mistake ("5h" for "5s").
MAX_INTERVAL: Final = 3600.0
# Control targets are metric labels and are probed together every control_interval.
MAX_CONTROL_TARGETS: Final = 16
DEFAULT_DOWN_AFTER: Final = 3
DEFAULT_UP_AFTER: Final = 2
# Alive: any final answer from the far end's SIP stack, except 408 (a proxy timed out on
# the way, so the far end did not answer).
DEFAULT_ALIVE_CODES: Final = "2xx,4xx,!408"
# RFC 3261 §8.1.1.6 recommends 70; the header allows up to 2**32-1 (§20.22) but anything
# above 255 is a typo. 0 is allowed: OPTIONS with Max-Forwards 0 asks the first hop (§11).
DEFAULT_MAX_FORWARDS: Final = 70
MAX_MAX_FORWARDS: Final = 255
# RFC 3261 §18.1.1: a request within 1300 bytes stays on UDP; a long User-Agent must not
# push an OPTIONS over it.
MAX_USER_AGENT_LENGTH: Final = 200
# Carrier is a grouping label on dashboards and in reports.
MAX_CARRIER_LENGTH: Final = 128
DEFAULT_USER_AGENT: Final = f"trunkwatch/{__version__}"
DEFAULT_STORE_URL: Final = "sqlite:///trunkwatch.db"
DEFAULT_HTTP_LISTEN: Final = "127.0.0.1"
# Registered for trunkwatch-style exporters on the Prometheus default port allocation wiki.
DEFAULT_HTTP_PORT: Final = 9465
DEFAULT_MAX_IN_FLIGHT: Final = 2000
# Replies to a burst of thousands of OPTIONS arrive together; the kernel default (~200 KiB)
# drops them before the loop reads, which would look like carrier timeouts.
DEFAULT_UDP_RCVBUF: Final = 4 * 1024 * 1024
# Thousands of trunks at ~250 bytes each fit many times over; a larger file is a mistake
# (or a log pasted in) and is refused before parsing.
MAX_CONFIG_BYTES: Final = 16 * 1024 * 1024
# YAML aliases can expand a small file exponentially ("billion laughs"); conversion stops here.
MAX_CONFIG_VALUES: Final = 1_000_000

_HOSTNAME = re.compile(
    r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$"
)
_SIP_SCHEME = re.compile(r"^(?i:sips?):")
_PYTHON_TAG = re.compile(r"!(?:!|<tag:yaml\.org,2002:)?python/")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Only names in the usual ALL_CAPS form are echoed in errors: anything else might be a
# password pasted into the wrong key, and secrets never reach logs.
_ECHOABLE_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f]")


# --- errors --------------------------------------------------------------------------------


MAX_QUORUM: Final = 1000  # agents; more is a typo
# Targets probed per RFC 3263 trunk: each is a probe per round and a metric series.
MAX_MAX_TARGETS: Final = 64


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    field: str
    problem: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return (
            f"{where}: {self.field}: {self.problem}" if self.field else f"{where}: {self.problem}"
        )


class ConfigError(Exception):
    """Every problem found in one config file; str() gives one line per problem."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems: list[ConfigProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(str(problem) for problem in self.problems)


# --- value parsers -------------------------------------------------------------------------


def _status_code(text: str, term: str) -> int:
    if not text.isdigit() or len(text) != 3:
        raise ValueError(
            f"{term!r} is not a status code (200), class (4xx), range (400-499) or exclusion (!408)"
        )
    code = int(text)
    if not SIP_STATUS_MIN <= code <= SIP_STATUS_MAX:
        raise ValueError(
            f"{term!r}: SIP status codes are {SIP_STATUS_MIN} to {SIP_STATUS_MAX} (RFC 3261 §7.2)"
        )
    return code


def _codes_of_term(term: str) -> range:
    body = term[1:].strip() if term.startswith("!") else term
    lowered = body.lower()
    if len(lowered) == 3 and lowered.endswith("xx") and lowered[0] in "123456":
        start = int(lowered[0]) * 100
        return range(start, start + 100)
    if "-" in body:
        low_text, _, high_text = body.partition("-")
        low, high = _status_code(low_text.strip(), term), _status_code(high_text.strip(), term)
        if low > high:
            raise ValueError(f"{term!r}: range starts after it ends")
        return range(low, high + 1)
    code = _status_code(body, term)
    return range(code, code + 1)


def parse_alive_codes(spec: str | Iterable[str | int]) -> frozenset[int]:
    """SIP codes counting as alive from "2xx,4xx,!408" or ["200", "400-499", "!408", 404].

    Exclusions ("!x") apply after all inclusions, whatever their order."""
    terms: list[str] = []
    items: Iterable[str | int] = [spec] if isinstance(spec, str) else spec
    if not isinstance(items, Iterable):
        raise ValueError("expected a string like '2xx,4xx,!408' or a list of codes")
    for item in items:
        # bool is an int subclass; `- true` in a code list is a mistake, not status 1.
        if isinstance(item, bool) or not isinstance(item, str | int):
            raise ValueError(f"{item!r} is not a status code, class, range or exclusion")
        if isinstance(item, int):
            terms.append(str(item))
        else:
            terms.extend(part.strip() for part in item.split(","))
    if not terms:
        raise ValueError("no status codes given")
    included: set[int] = set()
    excluded: set[int] = set()
    for term in terms:
        if not term or term == "!":
            raise ValueError("empty entry in the status code list")
        (excluded if term.startswith("!") else included).update(_codes_of_term(term))
    alive = frozenset(included - excluded)
    if not alive:
        raise ValueError("no status code is left counting as alive")
    return alive


def implicit_timeout(interval: float) -> float:
    """The timeout used when a config gives an interval but no timeout."""
    return min(DEFAULT_TIMEOUT, IMPLICIT_TIMEOUT_FRACTION * interval)


def default_agent_name() -> str:
    """This host's name made label-safe (see LABEL_PATTERN)."""
    cleaned = re.sub(r"[^A-Za-z0-9_.:-]", "_", socket.gethostname())
    cleaned = cleaned.lstrip("_.:-")[:64]
    return cleaned or "trunkwatch"


def check_sip_uri(value: str) -> str:
    """value if it is a sip: or sips: URI without a password, else ValueError saying why."""
    # Messages never quote the URI: a bad one may still hold user:password@.
    if not _SIP_SCHEME.match(value):
        raise ValueError("must be a sip: or sips: URI, e.g. sip:sbc1.carrier.example:5060")
    if PLAIN_SIP_URI_RE.fullmatch(value):
        # The usual shape is valid as it stands, and it has no '@' but the one ending its
        # user part: a ':' there starts a password. ~3× faster than parsing (100,000 trunks).
        userinfo, at, _ = value.partition(":")[2].partition("@")
        has_password = bool(at) and ":" in userinfo
    else:
        try:
            parsed = SipUri.parse(value)
        except (SipParseError, ValueError) as exc:
            reason = getattr(exc, "reason", None) or "malformed"
            raise ValueError(f"not a valid SIP URI ({reason})") from None
        has_password = parsed.password is not None
    if has_password:
        # RFC 3261 §19.1.1 advises against passwords in URIs; this one would be logged.
        raise ValueError("must not carry a password (user:password@): use auth with password_env")
    return value


def _check_label(value: str) -> str:
    if not LABEL_PATTERN.match(value):
        raise ValueError(f"must be {LABEL_RULE}")
    return value


def _check_text(value: str) -> str:
    # CR/LF in a header value would let config text inject SIP headers; other control
    # characters corrupt logs and labels.
    if _CONTROL_CHARS.search(value):
        raise ValueError("must not contain control characters (line breaks, tabs, ...)")
    return value


def _check_host(value: str) -> str:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.match(value):
            raise ValueError("must be an IP address or a host name") from None
    return value


def _duration(value: Any) -> float:
    if isinstance(value, str | int | float):
        return parse_duration(value)
    raise ValueError("expected a duration, e.g. 5, '5s', '250ms', '1m30s'")


# Code sets already checked, by identity (each kept alive here, so an id is never reused):
# 100,000 trunks inheriting the defaults' set share that one object and skip re-checking
# its ~200 codes, which took ~4 s of a 100k-trunk load.
_CHECKED_CODE_SETS: dict[int, frozenset[int]] = {}
MAX_CHECKED_CODE_SETS: Final = 1024


def _alive_codes(value: Any) -> frozenset[int]:
    known = _CHECKED_CODE_SETS.get(id(value))
    if known is not None and known is value:
        return known
    if (
        isinstance(value, frozenset)
        and value
        and all(type(code) is int and SIP_STATUS_MIN <= code <= SIP_STATUS_MAX for code in value)
    ):
        codes = value
    elif isinstance(value, int) and not isinstance(value, bool):
        codes = parse_alive_codes([value])  # `alive_codes: 200`
    elif isinstance(value, str | list | tuple | set | frozenset):
        codes = parse_alive_codes(value)
    else:
        raise ValueError("expected a string like '2xx,4xx,!408' or a list of codes")
    if len(_CHECKED_CODE_SETS) < MAX_CHECKED_CODE_SETS:
        _CHECKED_CODE_SETS[id(codes)] = codes
    return codes


def _existing_file(value: Path | None, info: ValidationInfo) -> Path | None:
    """Referenced files resolve against the config file's directory and must be readable."""
    if value is None:
        return None
    path = _resolve(value, info)
    if not path.exists():
        raise ValueError(f"file not found: {path}")
    if not path.is_file():
        raise ValueError(f"not a regular file: {path}")
    if not os.access(path, os.R_OK):
        raise ValueError(f"file is not readable: {path}")
    return path


def _resolve(value: Path, info: ValidationInfo) -> Path:
    path = value.expanduser()
    base_dir = info.context.get("base_dir") if isinstance(info.context, dict) else None
    if not path.is_absolute() and isinstance(base_dir, Path):
        path = base_dir / path
    return path


Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0, le=MAX_INTERVAL)]
# Wrapped, never calling pydantic's own frozenset[int] pass: _alive_codes checks every code
# and returns a frozenset of ints; that pass would copy the ~200 codes again per trunk.
AliveCodes = Annotated[frozenset[int], WrapValidator(lambda value, _inner: _alive_codes(value))]
Label = Annotated[str, AfterValidator(_check_label)]
Text = Annotated[str, AfterValidator(_check_text)]
SipUriText = Annotated[str, AfterValidator(check_sip_uri)]

# frozen: config is shared by every task; extra=forbid: a typo is an error, not ignored;
# numbers become strings where a string is expected (`name: 1234`); inputs stay out of
# error texts because they may hold secrets.
_MODEL_CONFIG = ConfigDict(
    frozen=True, extra="forbid", coerce_numbers_to_str=True, hide_input_in_errors=True
)


# --- models --------------------------------------------------------------------------------


class TlsSettings(BaseModel):
    """TLS for sips: and transport=tls trunks."""

    model_config = _MODEL_CONFIG

    verify: bool = True
    ca_file: Path | None = None
    server_name: str | None = None
    cert_file: Path | None = None
    key_file: Path | None = None

    @field_validator("ca_file", "cert_file", "key_file")
    @classmethod
    def _files_exist(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)

    @field_validator("server_name")
    @classmethod
    def _server_name_is_host(cls, value: str | None) -> str | None:
        return None if value is None else _check_host(value)

    @field_validator("key_file")
    @classmethod
    def _key_needs_cert(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        # A certificate file may hold its key too, but a key alone identifies nothing.
        if value is not None and info.data.get("cert_file") is None:
            raise ValueError("key_file needs cert_file")
        return value


class DnsSettings(BaseModel):
    """How trunk host names are resolved: the system's getaddrinfo (default), or RFC 3263
    server location (NAPTR → SRV → A/AAAA, priorities, weights and TTLs) through
    `nameserver` (None: the system's resolv.conf)."""

    model_config = _MODEL_CONFIG

    rfc3263: bool = False
    nameserver: str | None = None
    port: int = Field(default=53, ge=1, le=65535)
    timeout: Seconds = 2.0
    # Targets probed per trunk located by RFC 3263 (trunks[].targets); the rest are counted.
    max_targets: int = Field(default=DEFAULT_MAX_TARGETS, ge=1, le=MAX_MAX_TARGETS)

    @field_validator("nameserver")
    @classmethod
    def _nameserver_is_host(cls, value: str | None) -> str | None:
        return None if value is None else _check_host(value)

    def resolver(self) -> ResolverSettings | None:
        if not self.rfc3263:
            return None
        return ResolverSettings(
            nameserver=self.nameserver,
            port=self.port,
            timeout=self.timeout,
            max_targets=self.max_targets,
        )


NO_TLS: Final = TlsSettings()


EndpointKind = Literal["tls", "https", "tcp", "icmp"]
# Fields that mean something for one kind only: set on another kind they are a mistake.
_KIND_FIELDS: Final[dict[str, tuple[str, ...]]] = {
    "path": ("https",),
    "expect_status": ("https",),
    "count": ("icmp",),
    "spacing": ("icmp",),
    "sni": ("tls", "https"),
    "ca_file": ("tls", "https"),
    "verify": ("tls", "https"),
}
# Endpoints are probed less often than trunks by default: they are many per service and
# their outages are the customer's side (a minute's resolution is what the NOC needs).
DEFAULT_ENDPOINT_INTERVAL: Final = 30.0
DEFAULT_ENDPOINT_TIMEOUT: Final = 10.0
# 2xx and 3xx: the server answered on purpose (a redirect to a login page is alive).
DEFAULT_HTTP_ALIVE: Final = "2xx,3xx"
# Enough echoes to see loss without flooding a VPN end; more than this is a mistake.
MAX_ECHO_COUNT: Final = 100
# Tickets route by carrier: an endpoint is the customer's own unless it says whose it is.
DEFAULT_ENDPOINT_OWNER: Final = "customer"


def _http_path(value: str) -> str:
    try:
        return check_path(value)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


class EndpointConfig(BaseModel):
    """An endpoint a service depends on (Edge, reverse proxy, directory sync, a VPN end).

    In `certificates.endpoints` (kind tls) only its certificate is checked. In the top-level
    `endpoints:` list it is also probed every `interval` (https: a GET; tcp/tls: a connect;
    icmp: echoes) and has health, outages and tickets like a trunk (monitor/endpoints.py).
    """

    model_config = _MODEL_CONFIG

    name: Label
    kind: EndpointKind = "tls"
    host: str
    port: int | None = Field(default=None, ge=1, le=65535)  # tls/https: 443; tcp: required
    sni: str | None = None  # default: host
    ca_file: Path | None = None  # default: the system's CAs
    verify: bool = True  # tls/https: verify the chain and the name
    role: Label = "endpoint"  # e.g. edge, reverse_proxy, directory_sync
    service: Label | None = None
    owner: Annotated[Text, Field(min_length=1, max_length=MAX_CARRIER_LENGTH)] = (
        DEFAULT_ENDPOINT_OWNER
    )
    interval: Seconds = DEFAULT_ENDPOINT_INTERVAL
    timeout: Seconds = DEFAULT_ENDPOINT_TIMEOUT
    down_after: int = Field(default=DEFAULT_DOWN_AFTER, ge=1)
    up_after: int = Field(default=DEFAULT_UP_AFTER, ge=1)
    path: Annotated[str, AfterValidator(_http_path)] = "/"
    expect_status: AliveCodes = parse_alive_codes(DEFAULT_HTTP_ALIVE)
    count: int = Field(default=5, ge=1, le=MAX_ECHO_COUNT)
    spacing: Annotated[float, BeforeValidator(_duration), Field(gt=0, le=10)] = 0.2

    @model_validator(mode="before")
    @classmethod
    def _defaults_by_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        kind = data.get("kind", "tls")
        if kind in ("tls", "https") and "port" not in data:
            data = {**data, "port": 443}
        if "interval" in data and "timeout" not in data:
            try:
                interval = _duration(data["interval"])
            except ValueError:
                return data  # the interval's own validation reports it
            if interval > 0:
                data = {**data, "timeout": min(DEFAULT_ENDPOINT_TIMEOUT, 0.8 * interval)}
        return data

    @field_validator("host", "sni")
    @classmethod
    def _hosts(cls, value: str | None) -> str | None:
        return None if value is None else _check_host(value)

    @field_validator("ca_file")
    @classmethod
    def _ca_exists(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _existing_file(value, info)

    @model_validator(mode="after")
    def _fields_fit_the_kind(self) -> EndpointConfig:
        for name, kinds in _KIND_FIELDS.items():
            if name in self.model_fields_set and self.kind not in kinds:
                raise ValueError(f"{name} is only for kind {' or '.join(kinds)}")
        if self.kind == "tcp" and self.port is None:
            raise ValueError("a tcp endpoint needs a port")
        if self.kind == "icmp" and self.port is not None:
            raise ValueError("an icmp endpoint has no port")
        _require_timeout_below_interval(self.timeout, self.interval)
        if self.kind == "icmp" and (self.count - 1) * self.spacing >= self.timeout:
            raise ValueError(
                f"count {self.count} echoes {format_duration(self.spacing)} apart do not fit "
                f"in the timeout ({format_duration(self.timeout)})"
            )
        return self


class CertificatesSettings(BaseModel):
    """Certificate checks: every SIP-TLS trunk's (unless `trunks: false`), the tls and https
    endpoints' of the top-level `endpoints:` list and these `endpoints`', every `interval`."""

    model_config = _MODEL_CONFIG

    interval: Seconds = 3600.0
    timeout: Seconds = 10.0
    trunks: bool = True
    endpoints: tuple[EndpointConfig, ...] = ()

    @field_validator("endpoints")
    @classmethod
    def _tls_only(cls, value: tuple[EndpointConfig, ...]) -> tuple[EndpointConfig, ...]:
        if any(e.kind != "tls" for e in value):
            raise ValueError(
                "lists tls endpoints only; put https, tcp and icmp endpoints in the "
                "top-level endpoints: list (their certificates are checked too)"
            )
        return value

    @model_validator(mode="after")
    def _unique_names(self) -> CertificatesSettings:
        names = [e.name for e in self.endpoints]
        if len(set(names)) != len(names):
            raise ValueError("endpoint names must be unique")
        return self


class EndpointsList(BaseModel):
    """The top-level `endpoints:` list, validated as one field so errors read endpoints[i]."""

    model_config = _MODEL_CONFIG

    endpoints: tuple[EndpointConfig, ...] = ()


class RegisterConfig(BaseModel):
    """Keep this trunk registered (monitor/registrations.py) with its `auth:` credentials."""

    model_config = _MODEL_CONFIG

    aor: SipUriText | None = None  # default: sip:<auth username>@<trunk host>
    registrar: str | None = None  # host[:port]; default: the AoR's host and port
    expires: int = Field(default=300, ge=1, le=86_400)
    retry: Seconds = 30.0  # a failed registration is tried again this much later
    # The carrier takes no calls without it: while it is lost, the trunk's answered
    # OPTIONS count as failures (outcome unregistered), so an outage opens as for any fault.
    required: bool = False

    @field_validator("registrar")
    @classmethod
    def _registrar_is_host_port(cls, value: str | None) -> str | None:
        if value is not None:
            split_host_port(value, 5060)  # its ValueError names the problem
        return value


class AuthSettings(BaseModel):
    """SIP digest credentials (RFC 3261 §22); the password never appears in repr or errors."""

    model_config = _MODEL_CONFIG

    username: Annotated[Text, Field(min_length=1)]
    password: SecretStr
    realm: Text | None = None


G711 = Literal["PCMU", "PCMA"]


class CallProbeConfig(BaseModel):
    """A trunk's G.711 test call (`trunks[].call`): the trunk's `auth` credentials apply."""

    model_config = _MODEL_CONFIG

    uri: SipUriText  # the test number or URI, e.g. a DID that a `trunkwatch responder` answers
    interval: Seconds = 300.0
    codecs: tuple[G711, ...] = ("PCMU", "PCMA")  # offered in this order
    max_call: Seconds = 20.0  # hung up this long after the answer
    answer_timeout: Seconds = 30.0
    from_uri: SipUriText | None = None
    registrar: SipUriText | None = None  # REGISTER here first (with the trunk's auth)
    proxy: SipUriText | None = None
    expect_tone: bool = True  # the far end echoes or plays the reference tone
    profile: Label = "client_to_edge"  # a built-in or `calls.profiles` name
    degrade_after: int = Field(default=2, ge=1)  # bad calls in a row that open a degradation
    recover_after: int = Field(default=2, ge=1)  # good calls in a row that close it

    @field_validator("codecs")
    @classmethod
    def _codecs_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value or len(set(value)) != len(value):
            raise ValueError("list PCMU and/or PCMA, each once")
        return value


class ThresholdProfileConfig(BaseModel):
    """A user-defined profile: limits the media must stay strictly below."""

    model_config = _MODEL_CONFIG

    one_way_latency: Seconds | None = None
    rtt: Seconds | None = None
    burst_loss: Annotated[float, Field(ge=0, le=1)] | None = None
    burst_window: Seconds = 0.2
    loss: Annotated[float, Field(ge=0, le=1)] | None = None
    loss_window: Seconds = 15.0
    jitter: Seconds | None = None
    jitter_window: Seconds = 15.0
    reorder: Annotated[float, Field(ge=0, le=1)] | None = None

    def to_profile(self, name: str) -> ThresholdProfile:
        return ThresholdProfile(
            name=name,
            one_way_latency_s=self.one_way_latency,
            rtt_s=self.rtt,
            burst_loss_ratio=self.burst_loss,
            burst_window_s=self.burst_window,
            loss_ratio=self.loss,
            loss_window_s=self.loss_window,
            jitter_s=self.jitter,
            jitter_window_s=self.jitter_window,
            reorder_ratio=self.reorder,
        )


class CallsSettings(BaseModel):
    """The test-call worker pool and user-defined threshold profiles (`calls:`)."""

    model_config = _MODEL_CONFIG

    max_calls: int = Field(default=8, ge=1, le=400)  # concurrent calls (4 per worker process)
    sip_address: str | None = None
    sip_port: int = Field(default=0, ge=0, le=65535)  # 0: any; else worker i uses port + i
    media_address: str | None = None
    rtp_port_min: int = Field(default=16384, ge=1024, le=65000)
    profiles: dict[Label, ThresholdProfileConfig] = Field(default_factory=dict)

    def profile(self, name: str) -> ThresholdProfile | None:
        """A user-defined profile by name, else a built-in one, else None."""
        if name in self.profiles:
            return self.profiles[name].to_profile(name)
        return BUILTIN_PROFILES.get(name)


class TrunkConfig(BaseModel):
    """One monitored SIP trunk with its probe policy, after defaults were applied."""

    model_config = _MODEL_CONFIG

    name: Label
    carrier: Annotated[Text, Field(max_length=MAX_CARRIER_LENGTH)] = ""
    uri: SipUriText
    interval: Seconds
    timeout: Seconds
    down_after: int = Field(ge=1)
    up_after: int = Field(ge=1)
    alive_codes: AliveCodes
    # Several agents (cluster:): agents that must agree on an outage; None: a majority.
    quorum: int | None = Field(default=None, ge=1, le=MAX_QUORUM)
    # The agents that probe this trunk (by agent: name); empty: every agent.
    agents: tuple[Label, ...] = ()
    registration: RegisterConfig | None = None
    from_uri: SipUriText | None = None
    user_agent: Annotated[Text, Field(min_length=1, max_length=MAX_USER_AGENT_LENGTH)] = (
        DEFAULT_USER_AGENT
    )
    max_forwards: int = Field(default=DEFAULT_MAX_FORWARDS, ge=0, le=MAX_MAX_FORWARDS)
    auth: AuthSettings | None = None
    # One shared default (frozen, so safe to share): not one TlsSettings per trunk.
    tls: TlsSettings = Field(default_factory=lambda: NO_TLS)
    call: CallProbeConfig | None = None
    # RFC 3263 trunks (dns.rfc3263, a host name without a port): up while `any` located
    # target answers, or only while `all` do (probes/targets.py).
    targets: TargetRule = "any"

    @model_validator(mode="after")
    def _register_needs_credentials(self) -> TrunkConfig:
        if self.registration is not None and self.auth is None:
            raise ValueError("registration needs the trunk's auth: (username and password)")
        return self

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> TrunkConfig:
        _require_timeout_below_interval(self.timeout, self.interval)
        return self

    def __setstate__(self, state: dict[Any, Any]) -> None:
        # A reload's config comes back pickled from its reading process: its trunks too
        # get the shared table of field names (_compact_trunk), not a dict each.
        _fill_trunk(
            self,
            state.get("__dict__", {}),
            state.get("__pydantic_fields_set__", set()),
            state.get("__pydantic_extra__"),
            state.get("__pydantic_private__"),
        )


# What tells trunks written alike apart. A trunk shaped like one validated before (the same
# other fields and values) is checked on these alone (_Loader._trunk): ~2× faster at
# 100,000 trunks. So no check of TrunkConfig may relate them to another field
# (tests/test_config_fast.py holds its validators to that).
TRUNK_IDENTITY: Final = ("name", "uri", "carrier")
_TrunkIdentity = create_model(  # type: ignore[call-overload]
    "_TrunkIdentity",
    __config__=_MODEL_CONFIG,
    **{
        f: (TrunkConfig.model_fields[f].annotation, TrunkConfig.model_fields[f])
        for f in TRUNK_IDENTITY
    },
)


def _require_timeout_below_interval(timeout: float, interval: float) -> None:
    # A probe still waiting when the next one is due would overlap its successor.
    if timeout >= interval:
        raise PydanticCustomError(
            "timeout_not_below_interval",
            "timeout ({timeout}) must be less than interval ({interval})",
            {"timeout": format_duration(timeout), "interval": format_duration(interval)},
        )


class Defaults(BaseModel):
    """Probe policy inherited by every trunk that does not set its own."""

    model_config = _MODEL_CONFIG

    interval: Seconds = DEFAULT_INTERVAL
    timeout: Seconds = DEFAULT_TIMEOUT
    down_after: int = Field(default=DEFAULT_DOWN_AFTER, ge=1)
    up_after: int = Field(default=DEFAULT_UP_AFTER, ge=1)
    alive_codes: AliveCodes = parse_alive_codes(DEFAULT_ALIVE_CODES)
    quorum: int | None = Field(default=None, ge=1, le=MAX_QUORUM)
    targets: TargetRule = "any"  # used by the RFC 3263 trunks only; the others ignore it

    @model_validator(mode="before")
    @classmethod
    def _derive_timeout(cls, data: Any) -> Any:
        if isinstance(data, dict) and "interval" in data and "timeout" not in data:
            try:
                interval = _duration(data["interval"])
            except ValueError:
                return data  # the interval's own validation reports it
            if interval > 0:
                return {**data, "timeout": implicit_timeout(interval)}
        return data

    @model_validator(mode="after")
    def _timeout_below_interval(self) -> Defaults:
        _require_timeout_below_interval(self.timeout, self.interval)
        return self


class StoreSettings(BaseModel):
    """Where the event journal lives: sqlite:///path (default) or postgresql://..."""

    model_config = _MODEL_CONFIG

    # validate_default: the default relative path resolves against the config's directory too.
    url: str = Field(default=DEFAULT_STORE_URL, validate_default=True)

    @field_validator("url")
    @classmethod
    def _database_url(cls, value: str, info: ValidationInfo) -> str:
        try:
            url = make_url(value)
        except ArgumentError:
            raise ValueError(
                "not a database URL (expected sqlite:///path or postgresql://host/db)"
            ) from None
        if url.get_backend_name() == "sqlite":
            return _sqlite_url(value, url, info)
        if url.get_backend_name() in ("postgresql", "postgres"):
            if url.password is not None:
                # The URL is config text that gets printed; the password goes in the
                # environment (PGPASSWORD) or ~/.pgpass, which the drivers read themselves.
                raise ValueError(
                    "do not put the password in the URL; set PGPASSWORD or use a .pgpass file"
                )
            driver_missing(ASYNC_DRIVERS["postgresql"])
            return value
        raise ValueError(f"unsupported database {url.drivername!r}: use sqlite or postgresql")


def _too_long(path: Path) -> str | None:
    """Why the OS would refuse this path for its length, if it would (ENAMETOOLONG)."""
    limit = os.pathconf("/", "PC_PATH_MAX")
    name_limit = os.pathconf("/", "PC_NAME_MAX")
    if len(os.fsencode(path)) >= limit:
        return f"the database path is longer than the OS allows ({limit} bytes)"
    if any(len(os.fsencode(part)) > name_limit for part in path.parts):
        return f"a name in the database path is longer than the OS allows ({name_limit} bytes)"
    return None


def _sqlite_url(value: str, url: URL, info: ValidationInfo) -> str:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return value
    path = _resolve(Path(database), info)
    too_long = _too_long(path)
    if too_long:
        raise ValueError(too_long)
    if not path.parent.is_dir():
        raise ValueError(f"directory for the database does not exist: {path.parent}")
    # The store writes its file and SQLite's -wal/-shm beside it (a read-only file system
    # says so here too, even to root).
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise ValueError(f"directory for the database is not writable: {path.parent}")
    # Rebuilt by hand: render_as_string would percent-encode ':' and such in the path.
    _, query_mark, query = value.partition("?")
    return f"{url.drivername}:///{path}{query_mark}{query}"


class HttpSettings(BaseModel):
    """The API and /metrics listener.

    ``web_config_file``: TLS, basic auth and headers in the Prometheus exporter-toolkit
    format (monitor/web_config.py). API tokens: ``read_token_env`` for reads (outages,
    reports, audit), ``write_token_env`` for changes (it reads too); reads need a token
    unless ``open_reads: true`` says otherwise. Limits: see monitor/http_guard.py.
    """

    model_config = _MODEL_CONFIG

    listen: str = DEFAULT_HTTP_LISTEN
    port: int = Field(default=DEFAULT_HTTP_PORT, ge=0, le=65535)
    web_config_file: Path | None = None
    read_token_env: str | None = None
    write_token_env: str | None = None
    open_reads: bool = False
    header_timeout: Seconds = HttpLimits().header_timeout_s
    idle_timeout: Seconds = HttpLimits().idle_timeout_s
    max_connections: int = Field(default=HttpLimits().max_connections, ge=1, le=100_000)

    @field_validator("web_config_file")
    @classmethod
    def _web_config(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        path = _resolve(value, info)
        try:
            load_web_config(path)  # checked now: a bad one must not wait for `run`
        except WebConfigError as exc:
            raise ValueError(f"the web config file is not valid:\n{exc}") from None
        return path

    @field_validator("read_token_env", "write_token_env")
    @classmethod
    def _token_env(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be an environment variable name (letters, digits, '_')")
        return value

    def limits(self) -> HttpLimits:
        return HttpLimits(
            header_timeout_s=self.header_timeout,
            idle_timeout_s=self.idle_timeout,
            max_connections=self.max_connections,
        )

    @field_validator("listen")
    @classmethod
    def _listen_is_host(cls, value: str) -> str:
        return _check_host(value)


class SchedulerSettings(BaseModel):
    """Hot-path knobs (see notes/hot-path.md)."""

    model_config = _MODEL_CONFIG

    # None: DEFAULT_MAX_IN_FLIGHT plus what an outage of every trunk keeps waiting
    # (Config.in_flight_limit). A fixed 2,000 counted probes waiting on a timeout: with
    # 100,000 silent trunks at 10 s it sent 467 probes/s and skipped the rest, so their
    # outages would have opened ~10 minutes late (docs/benchmarks.md).
    max_in_flight: int | None = Field(default=None, ge=1)
    uvloop: bool = True
    # setsockopt takes a C int: anything larger raised a TypeError traceback at `run`.
    udp_rcvbuf: int = Field(default=DEFAULT_UDP_RCVBUF, ge=1, le=2**31 - 1)


def _control_target(value: str) -> str:
    parse_target(value)  # ValueError says what is wrong
    return value


ControlTargetText = Annotated[str, AfterValidator(_control_target)]


class VantageSettings(BaseModel):
    """When this agent counts itself cut off (monitor/vantage.py): every trunk it watches
    failing at once, across at least `min_carriers` carriers (0 turns the rule off)."""

    model_config = _MODEL_CONFIG

    min_trunks: int = Field(default=2, ge=1, le=1_000_000)
    min_carriers: int = Field(default=2, ge=0, le=1_000_000)
    # SIP URIs or tcp://HOST:PORT probed every control_interval (monitor/control.py): with
    # them, every trunk failing is ours only if they fail too. A small list: each is a label.
    control_targets: tuple[ControlTargetText, ...] = Field(
        default=(), max_length=MAX_CONTROL_TARGETS
    )
    control_interval: Seconds = 5.0
    control_timeout: Seconds = 2.0

    @field_validator("control_targets")
    @classmethod
    def _control_targets_once(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a target twice")
        return value

    @model_validator(mode="after")
    def _control_timeout_below_interval(self) -> VantageSettings:
        if self.control_targets:
            _require_timeout_below_interval(self.control_timeout, self.control_interval)
        return self

    def guard(self, agent: str, carriers: Mapping[str, str]) -> VantageGuard:
        """The rule for an agent watching `carriers` (trunk → carrier)."""
        policy = VantagePolicy(self.min_trunks, self.min_carriers)
        controls: dict[str, datetime | None] = dict.fromkeys(self.control_targets)
        return VantageGuard(agent, carriers, policy, controls=controls)

    def control_loops(self, on_result: Callable[[ProbeResult], None]) -> list[ControlLoop]:
        """The control targets' prober (none without targets)."""
        if not self.control_targets:
            return []
        targets = [parse_target(t) for t in self.control_targets]
        return [ControlLoop(targets, self.control_interval, self.control_timeout, on_result)]


class ClusterSettings(BaseModel):
    """Several agents sharing one PostgreSQL store (monitor/quorum.py): each agent's outages
    are its view, and the contract's outage needs `quorum` agreeing agents (defaults.quorum
    or the trunk's own; unset: a majority of the agents alive)."""

    model_config = _MODEL_CONFIG

    enabled: bool = False

    def quorums(
        self, trunks: Sequence[TrunkConfig], endpoints: Sequence[EndpointConfig] = ()
    ) -> dict[str, int | None] | None:
        """Each trunk's quorum and each endpoint's (a majority: None), or None when there
        is one agent."""
        if not self.enabled:
            return None
        return {**{t.name: t.quorum for t in trunks}, **{e.name: None for e in endpoints}}

    def watchers(self, trunks: Sequence[TrunkConfig]) -> dict[str, frozenset[str]]:
        """The agents named to probe each trunk that names any; a trunk not in it is
        probed by every agent (the usual case: no entry, ~38 bytes a trunk, at 100,000)."""
        return {t.name: frozenset(t.agents) for t in trunks if t.agents}


class Config(BaseModel):
    """The whole validated configuration; `source` names the file it came from."""

    model_config = _MODEL_CONFIG

    agent: Label = Field(default_factory=default_agent_name)
    site: Label | None = None  # where the agent runs (a label in evidence and logs)
    store: StoreSettings = Field(default_factory=StoreSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)
    scheduler: SchedulerSettings = Field(default_factory=SchedulerSettings)
    vantage: VantageSettings = Field(default_factory=VantageSettings)
    cluster: ClusterSettings = Field(default_factory=ClusterSettings)
    certificates: CertificatesSettings = Field(default_factory=CertificatesSettings)
    dns: DnsSettings = Field(default_factory=DnsSettings)
    defaults: Defaults = Field(default_factory=Defaults)
    trunks: tuple[TrunkConfig, ...] = ()
    endpoints: tuple[EndpointConfig, ...] = ()  # probed like trunks (monitor/endpoints.py)
    calls: CallsSettings = Field(default_factory=CallsSettings)
    tickets: TicketsSettings = Field(default_factory=TicketsSettings)
    sla: ContractsSettings = Field(default_factory=ContractsSettings)
    source: str = "<memory>"
    # False when loaded for a read-only command: every secret is SECRET_NOT_READ.
    secrets_read: bool = True

    def watching(self) -> Config:
        """This config as this agent runs it: only the trunks it probes (trunks[].agents)."""
        mine = tuple(t for t in self.trunks if not t.agents or self.agent in t.agents)
        return self if len(mine) == len(self.trunks) else self.model_copy(update={"trunks": mine})

    @model_validator(mode="after")
    def _sla_names_known_trunks(self) -> Config:
        unknown = self.sla.unknown_trunks(self.target_names())
        if unknown:
            raise ValueError(f"sla services name unknown trunks: {', '.join(unknown)}")
        return self

    @model_validator(mode="after")
    def _endpoint_names_are_unique(self) -> Config:
        problems = endpoint_name_problems(self.trunks, self.endpoints, self.certificates)
        if problems:
            raise ValueError("; ".join(p for _, p in problems))
        return self

    def in_flight_limit(self, scheduled: int) -> int:
        """The in-flight cap for `scheduled` probes: the configured one, or headroom plus the
        probes an outage of every trunk keeps waiting (Σ timeout/interval; others whole)."""
        if self.scheduler.max_in_flight is not None:
            return self.scheduler.max_in_flight
        waiting = math.fsum(t.timeout / t.interval for t in self.trunks)
        others = max(0, scheduled - len(self.trunks))
        return DEFAULT_MAX_IN_FLIGHT + math.ceil(waiting) + others

    def certified_endpoints(self) -> frozenset[str]:
        """The tls and https endpoints: a failed handshake of theirs is their certificate's."""
        return frozenset(e.name for e in self.endpoints if e.kind in ("tls", "https"))

    def target_names(self) -> list[str]:
        """Every name a probe result, an outage and a service part may carry."""
        return [*(t.name for t in self.trunks), *(e.name for e in self.endpoints)]

    @model_validator(mode="after")
    def _unique_trunk_names(self) -> Config:
        seen: set[str] = set()
        duplicates: list[str] = []
        for trunk in self.trunks:
            if trunk.name in seen:
                duplicates.append(trunk.name)
            seen.add(trunk.name)
        if duplicates:
            raise ValueError(f"duplicate trunk names: {', '.join(sorted(set(duplicates)))}")
        return self


def endpoint_name_problems(
    trunks: Sequence[TrunkConfig],
    endpoints: Sequence[EndpointConfig],
    certificates: CertificatesSettings | None,
) -> list[tuple[int, str]]:
    """(index in endpoints, problem) for names already taken: outages, tickets and metrics
    know a target by its name alone."""
    taken = {t.name: "a trunk" for t in trunks}
    for e in certificates.endpoints if certificates is not None else ():
        taken.setdefault(e.name, "in certificates.endpoints (list it once, here)")
    problems: list[tuple[int, str]] = []
    for i, e in enumerate(endpoints):
        if e.name in taken:
            problems.append((i, f"endpoint name {e.name!r} is already {taken[e.name]}"))
        taken.setdefault(e.name, "an endpoint")
    return problems


# --- loading -------------------------------------------------------------------------------

_SECTIONS: Final[dict[str, type[BaseModel]]] = {
    "store": StoreSettings,
    "http": HttpSettings,
    "scheduler": SchedulerSettings,
    "vantage": VantageSettings,
    "cluster": ClusterSettings,
    "certificates": CertificatesSettings,
    "dns": DnsSettings,
    "calls": CallsSettings,
    "tickets": TicketsSettings,
    "sla": ContractsSettings,
}
_TOP_LEVEL_KEYS: Final = (
    "agent",
    "site",
    "store",
    "http",
    "scheduler",
    "vantage",
    "cluster",
    "certificates",
    "dns",
    "defaults",
    "trunks",
    "endpoints",
    "calls",
    "tickets",
    "sla",
)
_INHERITED: Final = (
    "interval", "timeout", "down_after", "up_after", "alive_codes", "quorum", "targets",
)  # fmt: skip
_AUTH_KEYS: Final = ("username", "password_env", "password_file", "realm")
_PASSWORD_IN_FILE: Final = (
    "passwords are not written in the config file: use password_env: VARIABLE "
    "or password_file: PATH"
)

Path_ = tuple[str | int, ...]


def load_config(
    path: str | Path, env: Mapping[str, str] | None = None, *, secrets: bool = True
) -> Config:
    """Read and validate a config file; ConfigError lists every problem found.

    ``secrets=False`` reads no secret (no environment variable, no file): for commands
    that only read the store, such as reports and listings."""
    source = str(path)
    file_path = Path(path)
    try:
        with file_path.open("rb") as handle:
            raw = handle.read(MAX_CONFIG_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError([ConfigProblem(source, None, "", "file not found")]) from None
    except OSError as exc:
        problem = f"cannot read the file: {exc.strerror or exc}"
        raise ConfigError([ConfigProblem(source, None, "", problem)]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        problem = f"file is larger than {MAX_CONFIG_BYTES} bytes"
        raise ConfigError([ConfigProblem(source, None, "", problem)])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problem = f"not valid UTF-8 (byte {exc.start})"
        raise ConfigError([ConfigProblem(source, line, "", problem)]) from None
    return config_from_text(
        text, source=source, base_dir=file_path.resolve().parent, env=env, secrets=secrets
    )


def config_from_text(
    text: str,
    *,
    source: str = "<memory>",
    base_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
    secrets: bool = True,
) -> Config:
    """Validate config YAML given as text; relative paths resolve against base_dir (or cwd)."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_CONFIG_BYTES:
        problem = f"file is larger than {MAX_CONFIG_BYTES} bytes"
        raise ConfigError([ConfigProblem(source, None, "", problem)])
    # Loading allocates millions of objects and frees none of them in cycles: with the
    # cyclic GC running, its passes over the growing heap were ~70 % of a 100k-trunk load.
    paused = gc.isenabled()
    gc.disable()
    try:
        return _config_from_text(text, source, base_dir, env, secrets)
    finally:
        if paused:
            gc.enable()


def _config_from_text(
    text: str,
    source: str,
    base_dir: Path | None,
    env: Mapping[str, str] | None,
    secrets: bool,
) -> Config:
    _refuse_python_tags(text, source)
    where = (base_dir or Path.cwd()).absolute()
    environ = os.environ if env is None else env
    # Fast first (C parser, no positions); a text it cannot vouch for, or a config with any
    # problem, is read again with positions so that every error names its line.
    try:
        plain = fast_yaml(text, MAX_CONFIG_VALUES)
    except NotFast:
        pass
    else:
        fast = _Loader(
            source=source, root=plain, base_dir=where, env=environ, secrets=secrets, fast=True
        )
        try:
            return fast.build()
        except _NeedPositions:
            pass
    root = _parse_yaml(text, source)
    loader = _Loader(source=source, root=root, base_dir=where, env=environ, secrets=secrets)
    return loader.build()


def _refuse_python_tags(text: str, source: str) -> None:
    # ruamel's round-trip loader never runs them, but say so instead of a type error later.
    for number, line in enumerate(text.splitlines(), 1):
        if _PYTHON_TAG.search(line):
            problem = "YAML tags that name Python objects (!!python/...) are not allowed"
            raise ConfigError([ConfigProblem(source, number, "", problem)])


def _long_number_line(text: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if re.search(rf"\d{{{sys.get_int_max_str_digits()},}}", line):
            return number
    return None


def _parse_yaml(text: str, source: str) -> Any:
    _refuse_python_tags(text, source)
    yaml = YAML(typ="rt")  # round-trip: keeps line numbers; YAML 1.2 unless the file says otherwise
    try:
        return yaml.load(text)
    except RecursionError:
        problem = "nested too deeply (brackets or indentation) to be a trunkwatch config"
        raise ConfigError([ConfigProblem(source, None, "", problem)]) from None
    except DuplicateKeyError as exc:
        raise ConfigError([_duplicate_key_problem(exc, text, source)]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = None if mark is None else mark.line + 1
        problem = f"YAML syntax error: {exc.problem or 'not valid YAML'}"
        if exc.context and exc.context_mark is not None:
            # An unclosed bracket or quote is found far from where it was opened.
            problem += f" ({exc.context} that started at line {exc.context_mark.line + 1})"
        elif exc.context:
            problem += f" ({exc.context})"
        raise ConfigError([ConfigProblem(source, line, "", problem)]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(source, None, "", f"YAML error: {exc}")]) from None
    except ValueError:
        # Python refuses integers of more than sys.get_int_max_str_digits() digits.
        limit = sys.get_int_max_str_digits()
        problem = f"a number of more than {limit} digits"
        raise ConfigError([ConfigProblem(source, _long_number_line(text), "", problem)]) from None
    except (TypeError, AttributeError, IndexError, KeyError) as exc:
        # The parser's own failures on shapes no config has (a list as a mapping key, ...).
        problem = f"YAML that cannot be read as a config ({type(exc).__name__}: {exc})"[:200]
        raise ConfigError([ConfigProblem(source, None, "", problem)]) from None


def _duplicate_key_problem(exc: DuplicateKeyError, text: str, source: str) -> ConfigProblem:
    # ruamel's own message quotes both values, which may be secrets: keep only the key.
    match = re.search(r'duplicate key "(.*?)" with value', exc.problem or "")
    mark = exc.problem_mark
    line = None if mark is None else mark.line + 1
    if match is None or mark is None:
        return ConfigProblem(source, line, "", "duplicate key")
    key = match.group(1)
    first = _first_key_line(text, key, exc.context_mark, mark)
    where = "" if first is None else f" (first at line {first})"
    return ConfigProblem(source, line, "", f"duplicate key {key!r}{where}")


def _first_key_line(text: str, key: str, mapping_start: Any, duplicate: Any) -> int | None:
    """Line of the key's first occurrence in a block mapping (same column, same mapping)."""
    if mapping_start is None:
        return None
    column = duplicate.column
    key_at_column = re.compile(r"[\"']?" + re.escape(key) + r"[\"']?\s*:")
    lines = text.splitlines()
    for index in range(mapping_start.line, duplicate.line):
        line = lines[index]
        if line[:column].strip(" -") == "" and key_at_column.match(line, column):
            return index + 1
    return None


def _field_text(path: Path_) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _unknown_field(key: object, allowed: Iterable[str]) -> str:
    candidates = list(allowed)
    close = difflib.get_close_matches(str(key), candidates, n=1, cutoff=0.6)
    if close:
        return f"unknown field; did you mean {close[0]!r}?"
    return f"unknown field; expected one of: {', '.join(candidates)}"


def _model_at(model: type[BaseModel], loc: Sequence[str | int]) -> type[BaseModel] | None:
    """The model class whose fields are valid keys at loc inside model."""
    current: type[BaseModel] = model
    for part in loc:
        field = current.model_fields.get(str(part))
        if field is None:
            return None
        nested = _model_in(field.annotation)
        if nested is None:
            return None
        current = nested
    return current


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if get_origin(annotation) in (Union, type(int | None)):
        for arg in get_args(annotation):
            found = _model_in(arg)
            if found is not None:
                return found
    return None


class _TooManyValues(Exception):
    pass


class _NeedPositions(Exception):
    """The fast path found a problem: errors need the positioned (ruamel) tree."""


class _Loader:
    """Walks the YAML tree once, validating each part and collecting every problem."""

    __slots__ = (
        "_problem_fields",
        "_problems",
        "_shapes",
        "_values",
        "base_dir",
        "env",
        "fast",
        "root",
        "secrets",
        "source",
    )

    def __init__(
        self,
        *,
        source: str,
        root: Any,
        base_dir: Path,
        env: Mapping[str, str],
        secrets: bool,
        fast: bool = False,
    ) -> None:
        # fast: root holds plain values from yaml_fast (no positions); any problem raises
        # _NeedPositions so the caller re-reads the file with ruamel.
        self.fast = fast
        self.source = source
        self.root = root
        self.base_dir = base_dir
        self.env = env
        self.secrets = secrets
        self._problems: list[ConfigProblem] = []
        self._problem_fields: set[str] = set()
        self._values = 0
        self._shapes: dict[tuple[Any, ...], TrunkConfig] = {}  # see _trunk

    @property
    def _context(self) -> dict[str, Any]:
        return {"base_dir": self.base_dir, "env": self.env, "secrets": self.secrets}

    def add(self, path: Path_, problem: str) -> None:
        if self.fast:
            raise _NeedPositions
        field = _field_text(path)
        # One problem per field: a value that failed one check would only repeat itself.
        if field in self._problem_fields:
            return
        self._problem_fields.add(field)
        self._problems.append(ConfigProblem(self.source, self._line(path), field, problem))

    def _line(self, path: Path_) -> int | None:
        node, line = self.root, None
        for part in path:
            if isinstance(node, CommentedMap) and not isinstance(part, int) and part in node:
                line = _position(node.lc.key, part, line)
                node = node[part]
            elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
                line = _position(node.lc.item, part, line)
                node = node[part]
            else:
                break
        return line

    def build(self) -> Config:
        if self.fast and not isinstance(self.root, dict | None):
            raise _NeedPositions
        root = ({} if self.fast else CommentedMap()) if self.root is None else self.root
        if not isinstance(root, dict if self.fast else CommentedMap):
            self._problems.append(
                ConfigProblem(
                    self.source,
                    1,
                    "",
                    "the file must be a mapping of sections: " + ", ".join(_TOP_LEVEL_KEYS),
                )
            )
            raise ConfigError(self._problems)
        self.root = root
        try:
            plain = root if self.fast else self._plain(root, ())  # fast: plain already
        except _TooManyValues:
            problem = f"more than {MAX_CONFIG_VALUES} values (runaway YAML aliases?)"
            raise ConfigError([ConfigProblem(self.source, None, "", problem)]) from None
        assert isinstance(plain, dict)
        for key in plain:
            if key not in _TOP_LEVEL_KEYS:
                self.add((str(key),), _unknown_field(key, _TOP_LEVEL_KEYS))

        built: dict[str, Any] = {}
        for label in ("agent", "site"):
            if label in plain:
                checked = self._validate(Config, {label: plain[label]}, ())
                if checked is not None:
                    built[label] = getattr(checked, label)
        for name, model in _SECTIONS.items():
            # Validated even when absent: the default store URL resolves against base_dir.
            section = self._validate(model, _section(plain.get(name)), (name,))
            if section is not None:
                built[name] = section
        defaults_data = _section(plain.get("defaults"))
        defaults, broken = self._defaults(defaults_data)
        timeout_explicit = isinstance(defaults_data, dict) and "timeout" in defaults_data
        if not broken:
            built["defaults"] = defaults

        trunks = self._trunks(plain.get("trunks"), defaults, broken, timeout_explicit)
        dns = built.get("dns")
        if isinstance(dns, DnsSettings):
            self._check_targets(plain.get("trunks"), dns)
        calls = built.get("calls")
        if isinstance(calls, CallsSettings):
            self._check_calls(calls, trunks)
        endpoints = self._endpoints(plain.get("endpoints"), trunks, built.get("certificates"))
        sla = built.get("sla")
        if isinstance(sla, ContractsSettings):
            names = [*(t.name for t in trunks), *(e.name for e in endpoints)]
            unknown = sla.unknown_trunks(names)
            if unknown:
                self.add(("sla", "services"), f"unknown parts: {', '.join(unknown)}")
        if self._problems:
            raise ConfigError(_by_line(self._problems))
        return Config(
            **built,
            trunks=tuple(trunks),
            endpoints=tuple(endpoints),
            source=self.source,
            secrets_read=self.secrets,
        )

    def _check_targets(self, raw: Any, dns: DnsSettings) -> None:
        """A trunk's own `targets:` where RFC 3263 gives it one server at most is a mistake
        (in `defaults:` it only applies to the trunks it fits)."""
        for index, item in enumerate(raw if isinstance(raw, list) else ()):
            if not isinstance(item, dict) or "targets" not in item:
                continue
            uri = item.get("uri")
            if not dns.rfc3263:
                problem = "targets needs dns: rfc3263: true (RFC 3263 server location)"
            elif isinstance(uri, str) and not locates_targets(uri):
                problem = (
                    "targets applies to a URI with a host name and no port "
                    "(an address or a port names one server)"
                )
            else:
                continue
            self.add(("trunks", index, "targets"), problem)

    def _endpoints(
        self, raw: Any, trunks: Sequence[TrunkConfig], certificates: Any
    ) -> list[EndpointConfig]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.add(("endpoints",), "must be a list of endpoints (lines starting with '- ')")
            return []
        endpoints: list[EndpointConfig] = []
        indices: list[int] = []  # where each valid endpoint is in the file's list
        for index, item in enumerate(raw):
            prefix: Path_ = ("endpoints", index)
            if not isinstance(item, dict):
                self.add(prefix, "must be a mapping of endpoint fields (name, kind, host, ...)")
                continue
            checked = self._validate(EndpointConfig, item, prefix, explicit=set(item))
            if checked is not None:
                endpoints.append(checked)
                indices.append(index)
        settings = certificates if isinstance(certificates, CertificatesSettings) else None
        for i, problem in endpoint_name_problems(trunks, endpoints, settings):
            self.add(("endpoints", indices[i], "name"), problem)
        return endpoints

    def _check_calls(self, calls: CallsSettings, trunks: Sequence[TrunkConfig]) -> None:
        """Call probes name known profiles, and need the `calls` extra (pjsua2)."""
        with_calls = [(i, t) for i, t in enumerate(trunks) if t.call is not None]
        if not with_calls:
            return
        for i, trunk in with_calls:
            assert trunk.call is not None
            if calls.profile(trunk.call.profile) is None:
                known = sorted({*BUILTIN_PROFILES, *calls.profiles})
                self.add(
                    ("trunks", i, "call", "profile"),
                    f"unknown profile {trunk.call.profile!r}; known: {', '.join(known)}",
                )
        if importlib.util.find_spec("pjsua2") is None:
            i, _ = with_calls[0]
            self.add(
                ("trunks", i, "call"),
                "test calls need pjsua2, which is not installed: "
                "pip install 'trunkwatch[calls]' (make run and make test install it)",
            )

    def _defaults(self, data: Any) -> tuple[Defaults, frozenset[str]]:
        """The defaults section, and the names of its fields that are broken; trunks then
        inherit the built-in value for those, and problems they cause are not repeated."""
        try:
            return Defaults.model_validate(data, context=self._context), frozenset()
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
        broken: set[str] = set()
        for error in errors:
            self._report(Defaults, error, ("defaults",), None, frozenset())
            if error["type"] == "timeout_not_below_interval":
                broken.update(("interval", "timeout"))
            elif error["loc"]:
                broken.add(str(error["loc"][0]))
            else:
                broken.update(_INHERITED)
        usable = (
            {k: v for k, v in data.items() if k not in broken} if isinstance(data, dict) else {}
        )
        try:
            fallback = Defaults.model_validate(usable, context=self._context)
        except ValidationError:
            fallback = Defaults()
        return fallback, frozenset(broken)

    def _plain(self, node: Any, path: Path_) -> Any:
        """Plain Python values from ruamel's node types, problems for YAML-only ones."""
        self._values += 1
        if self._values > MAX_CONFIG_VALUES:
            raise _TooManyValues
        if isinstance(node, dict):
            return {key: self._plain(value, (*path, str(key))) for key, value in node.items()}
        if isinstance(node, list):
            return [self._plain(item, (*path, index)) for index, item in enumerate(node)]
        if isinstance(node, bool | ScalarBoolean):
            return bool(node)
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, str):
            return str(node)
        if isinstance(node, TaggedScalar):
            self.add(path, f"YAML tag {node.tag.value} is not supported here")
            return None
        return node  # dates, sets, binary: pydantic says what type was expected

    def _validate(
        self,
        model: type[BaseModel],
        data: Any,
        prefix: Path_,
        *,
        explicit: set[str] | None = None,
        broken_defaults: frozenset[str] = frozenset(),
    ) -> Any:
        try:
            return model.model_validate(data, context=self._context)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_input=False)
        for error in errors:
            self._report(model, error, prefix, explicit, broken_defaults)
        return None

    def _report(
        self,
        model: type[BaseModel],
        error: ErrorDetails,
        prefix: Path_,
        explicit: set[str] | None,
        broken_defaults: frozenset[str],
    ) -> None:
        """Record one pydantic error in the config's words; explicit is the set of keys a
        trunk wrote itself (None outside trunks)."""
        loc = tuple(error["loc"])
        kind = error["type"]
        message = error["msg"]
        ctx = error.get("ctx") or {}
        if kind == "timeout_not_below_interval":
            self._report_timing(prefix, ctx, explicit, broken_defaults)
            return
        if explicit is not None and loc and loc[0] in broken_defaults and loc[0] not in explicit:
            return  # the broken default was reported under defaults
        if kind == "extra_forbidden":
            owner = _model_at(model, loc[:-1])
            fields = [] if owner is None else list(owner.model_fields)
            message = _unknown_field(loc[-1], fields)
        elif kind == "missing":
            message = "required field is missing"
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            message = "must be a mapping of fields (key: value)"
        elif kind == "value_error":
            message = message.removeprefix("Value error, ")
        self.add((*prefix, *loc), message)

    def _report_timing(
        self,
        prefix: Path_,
        ctx: dict[str, Any],
        explicit: set[str] | None,
        broken_defaults: frozenset[str],
    ) -> None:
        if explicit is None:  # the defaults section itself
            self.add((*prefix, "timeout"), f"must be less than interval ({ctx['interval']})")
            return
        if any(f in broken_defaults and f not in explicit for f in ("interval", "timeout")):
            return
        if "interval" in explicit and "timeout" not in explicit:
            self.add((*prefix, "interval"), f"must be greater than timeout ({ctx['timeout']})")
        else:
            self.add((*prefix, "timeout"), f"must be less than interval ({ctx['interval']})")

    def _trunks(
        self,
        raw: Any,
        defaults: Defaults,
        broken_defaults: frozenset[str],
        timeout_explicit: bool,
    ) -> list[TrunkConfig]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.add(("trunks",), "must be a list of trunks (lines starting with '- ')")
            return []
        first_index_of: dict[str, int] = {}  # its line only when a duplicate is reported
        trunks: list[TrunkConfig] = []
        inherited = {field: getattr(defaults, field) for field in _INHERITED}
        for index, item in enumerate(raw):
            prefix: Path_ = ("trunks", index)
            if not isinstance(item, dict):
                self.add(prefix, "must be a mapping of trunk fields (name, uri, ...)")
                continue
            name = item.get("name")
            if isinstance(name, str):
                if name in first_index_of:
                    first = self._line(("trunks", first_index_of[name], "name"))
                    where = "" if first is None else f"; first defined at line {first}"
                    self.add((*prefix, "name"), f"duplicate trunk name {name!r}{where}")
                else:
                    first_index_of[name] = index
            trunk = self._trunk(item, prefix, inherited, broken_defaults, timeout_explicit)
            if trunk is not None:
                trunks.append(trunk)
        return trunks

    def _trunk(
        self,
        item: dict[str, Any],
        prefix: Path_,
        inherited: dict[str, Any],
        broken_defaults: frozenset[str],
        timeout_explicit: bool,
    ) -> TrunkConfig | None:
        data = {**inherited, **item}
        if "auth" in item:
            auth = self._auth(item["auth"], (*prefix, "auth"))
            if auth is None:
                del data["auth"]
            else:
                data["auth"] = auth
        if "interval" in item and "timeout" not in item and not timeout_explicit:
            try:
                interval = _duration(data["interval"])
            except ValueError:
                interval = 0.0
            if interval > 0:
                data["timeout"] = implicit_timeout(interval)
        identity: dict[str, Any] = {k: data.pop(k) for k in TRUNK_IDENTITY if k in data}
        shape = _shape(data, identity)
        alike = self._shapes.get(shape) if shape is not None else None
        if alike is not None:
            trunk = _like(alike, identity, self._context)
            if trunk is not None:
                return trunk
        data |= identity
        explicit = {str(key) for key in item if key != "auth" or "auth" in data}
        trunk = self._validate(
            TrunkConfig, data, prefix, explicit=explicit, broken_defaults=broken_defaults
        )
        if not isinstance(trunk, TrunkConfig):
            return None
        trunk = _shared_fields_set(trunk)
        if shape is not None and len(self._shapes) < MAX_SHAPES:
            self._shapes[shape] = trunk
        return trunk

    def _auth(self, raw: Any, prefix: Path_) -> AuthSettings | None:
        """AuthSettings from YAML's password_env / password_file; never a password in YAML."""
        if not isinstance(raw, dict):
            self.add(prefix, "must be a mapping with username and password_env or password_file")
            return None
        problems_before = len(self._problems)
        for key in raw:
            if key == "password":
                self.add((*prefix, "password"), _PASSWORD_IN_FILE)
            elif key not in _AUTH_KEYS:
                self.add((*prefix, str(key)), _unknown_field(key, _AUTH_KEYS))
        data = {key: raw[key] for key in ("username", "realm") if key in raw}
        sources = [key for key in ("password_env", "password_file") if key in raw]
        password: str | None = None
        if len(sources) == 2:
            self.add((*prefix, "password_file"), "give password_env or password_file, not both")
        elif not sources:
            if "password" not in raw:
                self.add(prefix, "needs password_env or password_file")
        elif not self.secrets:
            password = SECRET_NOT_READ
        elif sources[0] == "password_env":
            password = self._password_from_env(raw["password_env"], (*prefix, "password_env"))
        else:
            password = self._password_from_file(raw["password_file"], (*prefix, "password_file"))
        # A placeholder keeps the username/realm checks running; with a problem recorded
        # no Config is returned, so it never escapes.
        data["password"] = password if password is not None else ""
        auth = self._validate(AuthSettings, data, prefix)
        if len(self._problems) != problems_before:
            return None
        return auth if isinstance(auth, AuthSettings) else None

    def _password_from_env(self, name: Any, path: Path_) -> str | None:
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            self.add(path, "must be an environment variable name (letters, digits, '_')")
            return None
        shown = name if _ECHOABLE_ENV_NAME.match(name) else "named here"
        value = self.env.get(name)
        if value is None:
            self.add(path, f"environment variable {shown} is not set")
            return None
        if not value:
            self.add(path, f"environment variable {shown} is empty")
            return None
        return value

    def _password_from_file(self, name: Any, path: Path_) -> str | None:
        if not isinstance(name, str) or not name:
            self.add(path, "must be a file path")
            return None
        file_path = Path(name).expanduser()
        if not file_path.is_absolute():
            file_path = self.base_dir / file_path
        # Echo only what looks like a path: a bare word here may be a pasted password.
        shown = str(file_path) if ("/" in name or "." in name) else "named here"
        try:
            return read_secret_file(file_path)
        except SecretFileError as exc:
            self.add(path, f"password file {shown} {exc}")
            return None


def _shape(rest: dict[str, Any], identity: dict[str, Any]) -> tuple[Any, ...] | None:
    """A trunk's fields other than its identity, as a key (their types too: 1 and True
    are equal), with the identity fields it gives; None when a value cannot be a key."""
    values = tuple(rest.values())
    key = (tuple(rest), values, tuple(map(type, values)), tuple(identity))
    try:
        hash(key)
    except TypeError:  # a list or a mapping
        return None
    return key


def _like(
    alike: TrunkConfig, identity: dict[str, Any], context: dict[str, Any]
) -> TrunkConfig | None:
    """A trunk shaped like `alike`: its identity validated, the rest taken from `alike`;
    None when the identity fails (the full validation then reports it)."""
    try:
        checked = _TrunkIdentity.model_validate(identity, context=context)
    except ValidationError:
        return None
    # The same fields were given as for `alike` (the shape says so): its shared set.
    return _compact_trunk({**alike.__dict__, **checked.__dict__}, alike.__pydantic_fields_set__)


def _compact_trunk(values: dict[str, Any], fields_set: set[str]) -> TrunkConfig:
    """What model_construct does, without its per-field pass (the values are validated),
    the values set one by one: the trunks then share one table of field names (a
    key-sharing dict, ~220 bytes a trunk) instead of each holding a whole dict (~460)."""
    trunk = TrunkConfig.__new__(TrunkConfig)
    _fill_trunk(trunk, values, fields_set)
    return trunk


def _fill_trunk(
    trunk: TrunkConfig,
    values: dict[str, Any],
    fields_set: set[str],
    extra: dict[str, Any] | None = None,
    private: dict[str, Any] | None = None,
) -> None:
    """Set a trunk's values one by one (into the key-sharing dict) and pydantic's own."""
    set_attr = object.__setattr__
    for key, value in values.items():
        set_attr(trunk, key, value)
    set_attr(trunk, "__pydantic_fields_set__", fields_set)
    set_attr(trunk, "__pydantic_extra__", extra)
    set_attr(trunk, "__pydantic_private__", private)


# Sets of field names given, one per distinct set: pydantic keeps a new set per model
# (~0.7 KB for a trunk's eight), so 100,000 trunks written alike share one.
_FIELDS_SETS: dict[frozenset[str], set[str]] = {}
MAX_FIELDS_SETS: Final = 1024
MAX_SHAPES: Final = 1024  # trunks written in more ways are validated whole


def _shared_fields_set(model: TrunkConfig) -> TrunkConfig:
    """The model with its set of given fields replaced by an equal shared one (and its
    values in the key-sharing dict of _compact_trunk)."""
    given = model.__pydantic_fields_set__
    key = frozenset(given)
    shared = _FIELDS_SETS.get(key)
    if shared is None:
        if len(_FIELDS_SETS) >= MAX_FIELDS_SETS:
            return model
        shared = _FIELDS_SETS[key] = given
    # Frozen models are never assigned to, so nothing adds to the shared set.
    return _compact_trunk(model.__dict__, shared)


def _position(get: Callable[[Any], Any], key: str | int, fallback: int | None) -> int | None:
    # Keys merged in from a YAML alias (<<: *x) carry no position of their own; the
    # enclosing key's line is then the nearest true answer.
    try:
        position = get(key)
    except (KeyError, AttributeError, IndexError, TypeError):
        return fallback
    if not position:  # a merge key of an empty mapping has no position at all
        return fallback
    return int(position[0]) + 1


def _section(value: Any) -> Any:
    # An emptied section (`http:` with every line commented out) means "all defaults".
    return {} if value is None else value


def _by_line(problems: list[ConfigProblem]) -> list[ConfigProblem]:
    return sorted(problems, key=lambda p: -1 if p.line is None else p.line)
