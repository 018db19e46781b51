"""The ``tickets:`` config section: sinks, routes, grouping, outbox timing.

YAML shape (every key optional unless marked; secrets only via ``*_env`` / ``*_file``)::

    tickets:
      language: es                    # es | en: default templates
      timezone: America/Mexico_City   # how instants are written in ticket texts (stored UTC)
      degradations: false             # default for routes: degradations open tickets too
      outbox:
        retry_initial: 1s             # first retry delay; doubles per attempt, with jitter
        retry_max: 5m                 # cap of the delay; retries go on forever
        request_timeout: 10s          # one HTTP/SMTP call
      grouping:
        enabled: false                # one ticket per carrier when all its trunks are down
        carriers: []                  # restrict to these carriers (empty: every carrier)
        window: 10s                   # how long a carrier's first outage waits for the rest
      sinks:                          # required: at least one
        - name: noc-hook              # required, label-safe, unique
          type: webhook               # webhook, email, rt, pagerduty, servicenow, jira, zammad
          url: https://noc.example/hooks/trunkwatch
          secret_env: TW_WEBHOOK_SECRET   # "whsec_<base64>" (Standard Webhooks)
          language: en                # overrides tickets.language for this sink
          templates:                  # any of: subject, body, update_subject, update_body,
            subject: "${ref} ${trunk} down"   #   resolve_subject, resolve_body
          fields: {}                  # extra sink fields; string values are templates
      routes:                         # which outages go to which sinks
        - sinks: [noc-hook]           # required
          carriers: [carrier-a]       # match on carrier ...
          trunks: ["mx-*"]            # ... or on trunk name (shell patterns); none: every trunk
          degradations: true          # overrides tickets.degradations
          probable_causes: []         # e.g. [customer_certificate]: only those outages

Per sink type (besides name/type/language/templates/fields):
- webhook: url, secret_env|secret_file, headers (not secret), timeout.
- email: to, cc, from, smtp {host, port, security: starttls|tls|plain, username,
  password_env|password_file}, imap {host, port, security: tls|plain, username,
  password_env|password_file, mailbox, poll_interval, ticket_regex}, message_id_domain.
- rt: url, queue, token_env|token_file or username + password_env|password_file,
  custom_field (find-existing by custom field instead of subject tag), note: comment|correspond,
  resolve_status.
- pagerduty: url, routing_key_env|routing_key_file, source.
- servicenow: url, table, username + password_env|password_file or token_env|token_file,
  note_field (work_notes|comments), resolve_state, close_code.
- jira: url, service_desk_id, request_type_id, username (e-mail) + token_env|token_file
  (Cloud API token) or token only (Data Center bearer PAT), resolve_transition_id,
  public_comments, search_path.
- zammad: url, token_env|token_file, group, customer, resolve_state, internal_notes.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from pathlib import Path
from string import Template
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.durations import parse_duration
from monitor.secrets import SECRET_NOT_READ, SecretFileError, read_secret_file
from monitor.tickets.templates import TEMPLATE_FIELDS, TEMPLATE_NAMES

# Same rule as trunk names (monitor.config.LABEL_PATTERN): sink names become metric labels.
_LABEL: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_ENV_NAME: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ECHOABLE_ENV_NAME: Final = re.compile(r"^[A-Z_][A-Z0-9_]*$")
_EMAIL: Final = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
DEFAULT_RETRY_INITIAL_S: Final = 1.0
DEFAULT_RETRY_MAX_S: Final = 300.0
DEFAULT_REQUEST_TIMEOUT_S: Final = 10.0
# A ticket API slower than this is down for our purposes; the outbox retries later.
MAX_REQUEST_TIMEOUT_S: Final = 120.0
# Outages of one carrier confirmed within this long of each other count as "at once";
# every second of it is a second before the carrier's ticket opens, so keep it short.
DEFAULT_GROUP_WINDOW_S: Final = 10.0
MAX_GROUP_WINDOW_S: Final = 300.0
DEFAULT_IMAP_POLL_S: Final = 60.0
# Standard Webhooks: secrets are 24 to 64 random bytes; fewer than 16 is guessable.
MIN_WEBHOOK_SECRET_BYTES: Final = 16
WEBHOOK_SECRET_PREFIX: Final = "whsec_"
DEFAULT_TICKET_REGEX: Final = r"\[Ticket#(\d+)\]"
PAGERDUTY_EVENTS_URL: Final = "https://events.pagerduty.com/v2/enqueue"

_MODEL_CONFIG = ConfigDict(
    frozen=True, extra="forbid", coerce_numbers_to_str=True, hide_input_in_errors=True
)


def _label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(
            "must be 1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
        )
    return value


def _text(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (line breaks, tabs, ...)")
    return value


def _duration(value: Any) -> float:
    if isinstance(value, str | int | float):
        return parse_duration(value)
    raise ValueError("expected a duration, e.g. 10, '10s', '1m30s'")


def _http_url(value: str) -> str:
    if not re.match(r"^https?://[^\s/?#]+", value):
        raise ValueError("must be an http:// or https:// URL")
    if re.match(r"^https?://[^/?#]*@", value):
        raise ValueError("must not carry credentials (user:password@): use the *_env fields")
    return value.rstrip("/")


def _email(value: str) -> str:
    if not _EMAIL.match(value) or _CONTROL.search(value):
        raise ValueError("must be an e-mail address like noc@example.com")
    return value


def _basic_user(value: str) -> str:
    if ":" in value:
        raise ValueError("a user name for HTTP basic auth cannot contain ':' (RFC 7617 §2)")
    return _text(value)


def _template(value: str) -> str:
    try:
        template = Template(value)
        names = template.get_identifiers()
        valid = template.is_valid()
    except ValueError as exc:
        raise ValueError(f"not a valid template: {exc}") from None
    if not valid:
        raise ValueError("not a valid template: write $name or ${name}, and $$ for a dollar sign")
    unknown = sorted(set(names) - TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown template field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(TEMPLATE_FIELDS))}"
        )
    return value


Label = Annotated[str, AfterValidator(_label)]
Text = Annotated[str, AfterValidator(_text)]
Seconds = Annotated[float, BeforeValidator(_duration), Field(gt=0)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Email = Annotated[str, AfterValidator(_email)]
TemplateText = Annotated[str, AfterValidator(_template)]
BasicUser = Annotated[str, AfterValidator(_basic_user)]
FieldValue = str | int | bool | list[str]


# --- secrets -------------------------------------------------------------------------------


def _resolve_secrets(
    data: Any, info: ValidationInfo, names: tuple[str, ...], required: tuple[str, ...] = ()
) -> Any:
    """Replace ``<name>_env`` / ``<name>_file`` by ``<name>`` (the secret's value).

    A secret written in the file itself is refused: config files get printed and committed.
    """
    if not isinstance(data, dict):
        return data
    out = dict(data)
    context = info.context if isinstance(info.context, dict) else {}
    env = context.get("env")
    env_map: Mapping[str, str] = env if isinstance(env, Mapping) else os.environ
    base_dir = context.get("base_dir")
    for name in names:
        if name in out:
            raise ValueError(
                f"{name}: secrets are not written in the config file: use {name}_env: VARIABLE "
                f"or {name}_file: PATH"
            )
        env_key, file_key = f"{name}_env", f"{name}_file"
        has_env, has_file = env_key in out, file_key in out
        if has_env and has_file:
            raise ValueError(f"give {env_key} or {file_key}, not both")
        if (has_env or has_file) and context.get("secrets") is False:
            out.pop(env_key, None)
            out.pop(file_key, None)
            out[name] = SecretStr(SECRET_NOT_READ)
        elif has_env:
            out[name] = _secret_from_env(out.pop(env_key), env_key, env_map)
        elif has_file:
            out[name] = _secret_from_file(out.pop(file_key), file_key, base_dir)
        elif name in required:
            raise ValueError(f"needs {env_key} or {file_key}")
    return out


def _secret_from_env(name: Any, key: str, env: Mapping[str, str]) -> SecretStr:
    if not isinstance(name, str) or not _ENV_NAME.match(name):
        raise ValueError(f"{key}: must be an environment variable name (letters, digits, '_')")
    shown = name if _ECHOABLE_ENV_NAME.match(name) else "named here"
    value = env.get(name)
    if value is None:
        raise ValueError(f"{key}: environment variable {shown} is not set")
    if not value.strip():
        raise ValueError(f"{key}: environment variable {shown} is empty")
    return SecretStr(value.strip())


def _secret_from_file(name: Any, key: str, base_dir: Any) -> SecretStr:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{key}: must be a file path")
    path = Path(name).expanduser()
    if not path.is_absolute() and isinstance(base_dir, Path):
        path = base_dir / path
    # Echo only what looks like a path: a bare word here may be a pasted secret.
    shown = str(path) if ("/" in name or "." in name) else "named here"
    try:
        return SecretStr(read_secret_file(path))
    except SecretFileError as exc:
        raise ValueError(f"{key}: secret file {shown} {exc}") from None


# --- templates and common sink fields -------------------------------------------------------


class TemplateOverrides(BaseModel):
    """Per-sink texts; ``${field}`` placeholders (see templates.TEMPLATE_FIELDS)."""

    model_config = _MODEL_CONFIG

    subject: TemplateText | None = None
    body: TemplateText | None = None
    update_subject: TemplateText | None = None
    update_body: TemplateText | None = None
    resolve_subject: TemplateText | None = None
    resolve_body: TemplateText | None = None

    def get(self, name: str) -> str | None:
        if name not in TEMPLATE_NAMES:
            raise KeyError(name)
        value: str | None = getattr(self, name)
        return value


class _SinkBase(BaseModel):
    model_config = _MODEL_CONFIG

    name: Label
    language: Literal["es", "en"] | None = None
    templates: TemplateOverrides = Field(default_factory=TemplateOverrides)
    fields: dict[str, FieldValue] = Field(default_factory=dict)
    timeout: Seconds | None = None  # overrides outbox.request_timeout

    @field_validator("fields")
    @classmethod
    def _field_templates(cls, value: dict[str, FieldValue]) -> dict[str, FieldValue]:
        for key, item in value.items():
            for text in item if isinstance(item, list) else [item]:
                if isinstance(text, str):
                    try:
                        _template(text)
                    except ValueError as exc:
                        raise ValueError(f"fields.{key}: {exc}") from None
        return value


class WebhookSinkSettings(_SinkBase):
    type: Literal["webhook"]
    url: HttpUrl
    secret: SecretStr
    headers: dict[str, Text] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("secret",), required=("secret",))

    @field_validator("secret")
    @classmethod
    def _standard_webhooks_secret(cls, value: SecretStr) -> SecretStr:
        if value.get_secret_value() != SECRET_NOT_READ:
            webhook_key(value)  # raises ValueError with the reason
        return value

    @field_validator("headers")
    @classmethod
    def _no_reserved_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            lowered = name.lower()
            if lowered.startswith("webhook-") or lowered in ("content-type", "authorization"):
                raise ValueError(f"header {name!r} is set by trunkwatch (or is a secret)")
        return value


def webhook_key(secret: SecretStr) -> bytes:
    """The HMAC key of a Standard Webhooks secret ``whsec_<base64>``."""
    text = secret.get_secret_value()
    if not text.startswith(WEBHOOK_SECRET_PREFIX):
        raise ValueError(f"webhook secret must look like {WEBHOOK_SECRET_PREFIX}<base64>")
    try:
        key = base64.b64decode(text[len(WEBHOOK_SECRET_PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("webhook secret: the part after whsec_ is not base64") from None
    if len(key) < MIN_WEBHOOK_SECRET_BYTES:
        raise ValueError(f"webhook secret must decode to at least {MIN_WEBHOOK_SECRET_BYTES} bytes")
    return key


class SmtpSettings(BaseModel):
    model_config = _MODEL_CONFIG

    host: Text
    port: int | None = Field(default=None, ge=1, le=65535)  # 587 starttls, 465 tls, 25 plain
    security: Literal["starttls", "tls", "plain"] = "starttls"
    username: Text | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("password",))

    @model_validator(mode="after")
    def _auth_pairs(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("give username and password_env/password_file together")
        return self

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return {"starttls": 587, "tls": 465, "plain": 25}[self.security]


class ImapSettings(BaseModel):
    """Where the carrier's replies arrive; polled for the carrier's ticket number."""

    model_config = _MODEL_CONFIG

    host: Text
    port: int | None = Field(default=None, ge=1, le=65535)
    # aioimaplib has no STARTTLS: implicit TLS (993) or plain (loopback/tests only).
    security: Literal["tls", "plain"] = "tls"
    username: Text
    password: SecretStr
    mailbox: Text = "INBOX"
    poll_interval: Seconds = DEFAULT_IMAP_POLL_S
    ticket_regex: str = DEFAULT_TICKET_REGEX
    ca_file: Path | None = None

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("password",), required=("password",))

    @field_validator("ticket_regex")
    @classmethod
    def _one_group(cls, value: str) -> str:
        try:
            pattern = re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        if pattern.groups < 1:
            raise ValueError("needs a capturing group around the number, e.g. \\[Ticket#(\\d+)\\]")
        return value

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (993 if self.security == "tls" else 143)


class EmailSinkSettings(_SinkBase):
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        coerce_numbers_to_str=True,
        hide_input_in_errors=True,
        populate_by_name=True,
    )

    type: Literal["email"]
    to: list[Email] = Field(min_length=1)
    cc: list[Email] = Field(default_factory=list)
    from_: Email = Field(alias="from")
    smtp: SmtpSettings
    imap: ImapSettings | None = None
    message_id_domain: Text | None = None  # default: the domain of `from`

    @property
    def domain(self) -> str:
        return self.message_id_domain or self.from_.rpartition("@")[2]


class RtSinkSettings(_SinkBase):
    type: Literal["rt"]
    url: HttpUrl
    queue: Text = "General"
    token: SecretStr | None = None
    username: BasicUser | None = None
    password: SecretStr | None = None
    custom_field: Text | None = None
    note: Literal["comment", "correspond"] = "comment"
    resolve_status: Text = "resolved"

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("token", "password"))

    @model_validator(mode="after")
    def _one_auth(self) -> RtSinkSettings:
        _token_or_basic(self.token, self.username, self.password)
        return self


class PagerDutySinkSettings(_SinkBase):
    type: Literal["pagerduty"]
    url: HttpUrl = PAGERDUTY_EVENTS_URL
    routing_key: SecretStr
    source: Text = "trunkwatch"

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("routing_key",), required=("routing_key",))


class ServiceNowSinkSettings(_SinkBase):
    type: Literal["servicenow"]
    url: HttpUrl
    table: Label = "incident"
    token: SecretStr | None = None
    username: BasicUser | None = None
    password: SecretStr | None = None
    note_field: Literal["work_notes", "comments"] = "work_notes"
    resolve_state: Text = "6"  # incident state "Resolved"
    close_code: Text = "Solved (Permanently)"

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("token", "password"))

    @model_validator(mode="after")
    def _one_auth(self) -> ServiceNowSinkSettings:
        _token_or_basic(self.token, self.username, self.password)
        return self


class JiraSinkSettings(_SinkBase):
    type: Literal["jira"]
    url: HttpUrl
    service_desk_id: Text
    request_type_id: Text
    username: BasicUser | None = None  # Cloud: the account e-mail, with token = API token
    token: SecretStr
    resolve_transition_id: Text | None = None
    public_comments: bool = True
    # Cloud's JQL search; Data Center uses /rest/api/2/search (same parameters and reply).
    search_path: Text = "/rest/api/3/search/jql"

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("token",), required=("token",))


class ZammadSinkSettings(_SinkBase):
    type: Literal["zammad"]
    url: HttpUrl
    token: SecretStr
    group: Text
    customer: Text
    resolve_state: Text = "closed"
    internal_notes: bool = False

    @model_validator(mode="before")
    @classmethod
    def _secrets(cls, data: Any, info: ValidationInfo) -> Any:
        return _resolve_secrets(data, info, ("token",), required=("token",))


def _token_or_basic(
    token: SecretStr | None, username: str | None, password: SecretStr | None
) -> None:
    if token is not None and (username is not None or password is not None):
        raise ValueError("give token_env/token_file or username with password, not both")
    if token is None and (username is None or password is None):
        raise ValueError("needs token_env/token_file, or username with password_env/password_file")


SinkSettings = Annotated[
    WebhookSinkSettings
    | EmailSinkSettings
    | RtSinkSettings
    | PagerDutySinkSettings
    | ServiceNowSinkSettings
    | JiraSinkSettings
    | ZammadSinkSettings,
    Field(discriminator="type"),
]


# --- routing, grouping, outbox --------------------------------------------------------------


class RouteSettings(BaseModel):
    model_config = _MODEL_CONFIG

    sinks: list[Label] = Field(min_length=1)
    carriers: list[Text] = Field(default_factory=list)
    trunks: list[Text] = Field(default_factory=list)  # shell patterns (fnmatch)
    degradations: bool | None = None
    # Only outages of this probable cause (monitor/probable_cause.py), e.g. an endpoint's
    # failed certificate to the customer's own queue; empty: any cause.
    probable_causes: list[Literal["customer_certificate"]] = Field(default_factory=list)


class GroupingSettings(BaseModel):
    model_config = _MODEL_CONFIG

    enabled: bool = False
    carriers: list[Text] = Field(default_factory=list)
    window: Annotated[float, BeforeValidator(_duration), Field(gt=0, le=MAX_GROUP_WINDOW_S)] = (
        DEFAULT_GROUP_WINDOW_S
    )


class OutboxSettings(BaseModel):
    model_config = _MODEL_CONFIG

    retry_initial: Seconds = DEFAULT_RETRY_INITIAL_S
    retry_max: Seconds = DEFAULT_RETRY_MAX_S
    request_timeout: Annotated[
        float, BeforeValidator(_duration), Field(gt=0, le=MAX_REQUEST_TIMEOUT_S)
    ] = DEFAULT_REQUEST_TIMEOUT_S

    @model_validator(mode="after")
    def _initial_below_max(self) -> OutboxSettings:
        if self.retry_initial > self.retry_max:
            raise ValueError("retry_initial must not exceed retry_max")
        return self


class TicketsSettings(BaseModel):
    """The whole ``tickets:`` section (see the module docstring for the YAML)."""

    model_config = _MODEL_CONFIG

    language: Literal["es", "en"] = "es"
    timezone: Text = "UTC"
    degradations: bool = False
    outbox: OutboxSettings = Field(default_factory=OutboxSettings)
    grouping: GroupingSettings = Field(default_factory=GroupingSettings)
    sinks: list[SinkSettings] = Field(default_factory=list)
    routes: list[RouteSettings] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. America/Mexico_City)") from None
        return value

    @model_validator(mode="after")
    def _names(self) -> TicketsSettings:
        names = [s.name for s in self.sinks]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"duplicate sink names: {', '.join(duplicates)}")
        for index, route in enumerate(self.routes):
            unknown = [n for n in route.sinks if n not in names]
            if unknown:
                raise ValueError(
                    f"routes[{index}]: unknown sink(s) {', '.join(unknown)}; "
                    f"defined: {', '.join(names) or 'none'}"
                )
        return self

    def sink(self, name: str) -> SinkSettings:
        for sink in self.sinks:
            if sink.name == name:
                return sink
        raise KeyError(name)
