"""Contracts and services in config (the ``sla:`` section): what each carrier promised, for what.

YAML shape (every field shown; defaults in comments)::

    sla:
      signing_key_file: trunkwatch-evidence.key   # Ed25519 key; created on first export
      api_token_env: TRUNKWATCH_API_TOKEN         # bearer token for API writes (none: read-only)
      services:
        - name: voice-mx                           # label-safe, like trunk names
          rule: all                                # all (default): down when every part is down;
                                                   # any: down when any part is down
          parts: [sbc-mx-1, sbc-mx-2]              # trunk or endpoint names
      contracts:
        - name: carrierx-2026
          carrier: CarrierX
          services: [voice-mx]                     # a service belongs to at most one contract
          target_pct: 99.5
          basis: thirty_day                        # thirty_day (720 h) | calendar
          clock: ticket                            # ticket | detection
          degradation_counts: false
          tz: America/Mexico_City
          acceptance: 2026-01-15                   # date → local midnight in tz; or an ISO instant
          monthly_fee: 12000.00
          currency: MXN
          credit_tiers:                            # below → credit % of the monthly fee
            - {below_pct: 99.5, credit_pct: 5}
            - {below_pct: 99.0, credit_pct: 10}
          exclusion_kinds: [customer_equipment, no_access, misuse, non_payment,
                            force_majeure, new_installation, strike, natural_disaster,
                            scheduled_maintenance, authority_order,
                            customer_internet]  # default: all of these
          response_max: 30m      # ticket opened → carrier's acknowledgement (optional)
          repair_max: 4h         # ticket opened → restoration (optional)
          limits:                # per service, overriding the two above (optional)
            voice-mx: {response_max: 15m, repair_max: 2h}
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from monitor.durations import parse_duration
from monitor.sla import (
    Basis,
    CompositionRule,
    ContractTerms,
    CreditTier,
    DowntimeClock,
    ExclusionKind,
)
from monitor.sla.clocks import ClockLimits

__all__ = [
    "DEFAULT_SIGNING_KEY_FILE",
    "ContractConfig",
    "ContractsSettings",
    "CreditTierConfig",
    "ServiceConfig",
]

# Same rule as trunk names (config.LABEL_PATTERN): service names are label values and URL parts.
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_LABEL_RULE = "1 to 64 letters, digits, '_', '.', ':' or '-', starting with a letter or digit"
_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")
DEFAULT_SIGNING_KEY_FILE: Final = "trunkwatch-evidence.key"
# A service of more parts than this is a config mistake (a whole carrier pasted in), and the
# composition is computed per report.
MAX_SERVICE_PARTS: Final = 64
MAX_CREDIT_TIERS: Final = 20
MAX_TEXT: Final = 128  # carrier/currency names: a column in reports

_MODEL_CONFIG = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


def _label(value: str) -> str:
    if not _LABEL.match(value):
        raise ValueError(f"must be {_LABEL_RULE}")
    return value


def _tz(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r} (use an IANA name like America/Mexico_City)"
        ) from None
    return value


Label = Annotated[str, AfterValidator(_label)]
Zone = Annotated[str, AfterValidator(_tz)]
Percent = Annotated[Decimal, Field(ge=0, le=100, allow_inf_nan=False)]


class ServiceConfig(BaseModel):
    """A service: what the contract sells, built from trunks (e.g. both SBCs of a trunk group)."""

    model_config = _MODEL_CONFIG

    name: Label
    rule: CompositionRule = CompositionRule.ALL
    parts: tuple[Label, ...] = Field(min_length=1, max_length=MAX_SERVICE_PARTS)

    @field_validator("parts")
    @classmethod
    def _distinct(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a trunk is listed twice")
        return value


def _optional_duration(value: Any) -> Any:
    return value if value is None else parse_duration(value)


OptionalDuration = Annotated[float | None, BeforeValidator(_optional_duration)]


class ServiceLimits(BaseModel):
    """One service's response and repair limits (a contract's `limits:` entry)."""

    model_config = _MODEL_CONFIG

    response_max: OptionalDuration = None
    repair_max: OptionalDuration = None


class CreditTierConfig(BaseModel):
    model_config = _MODEL_CONFIG

    below_pct: Annotated[Decimal, Field(gt=0, le=100, allow_inf_nan=False)]
    credit_pct: Percent


class ContractConfig(BaseModel):
    """One carrier contract's SLA terms (DESIGN.md §2)."""

    model_config = _MODEL_CONFIG

    name: Label
    carrier: Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]
    services: tuple[Label, ...] = Field(min_length=1)
    target_pct: Percent
    basis: Basis = Basis.THIRTY_DAY
    clock: DowntimeClock = DowntimeClock.TICKET
    degradation_counts: bool = False
    tz: Zone
    acceptance: datetime | date
    monthly_fee: Annotated[Decimal, Field(ge=0, allow_inf_nan=False)] = Decimal(0)
    currency: Annotated[str, Field(max_length=MAX_TEXT)] = ""
    credit_tiers: tuple[CreditTierConfig, ...] = Field(default=(), max_length=MAX_CREDIT_TIERS)
    exclusion_kinds: frozenset[ExclusionKind] = frozenset(ExclusionKind)
    # Below this much monitoring coverage a report's headline says "insufficient coverage"
    # instead of a bare figure: 100 % of almost nothing watched proves nothing.
    coverage_floor_pct: Percent = Decimal(99)
    # The annex's response and repair times, both from the ticket's opening; `limits`
    # overrides them per service.
    response_max: OptionalDuration = None
    repair_max: OptionalDuration = None
    limits: dict[Label, ServiceLimits] = Field(default_factory=dict)

    def limits_for(self, service: str) -> ClockLimits:
        """The response and repair limits of one of this contract's services."""
        own = self.limits.get(service)
        response = own.response_max if own and own.response_max is not None else self.response_max
        repair = own.repair_max if own and own.repair_max is not None else self.repair_max
        return ClockLimits(
            None if response is None else timedelta(seconds=response),
            None if repair is None else timedelta(seconds=repair),
        )

    @field_validator("acceptance", mode="before")
    @classmethod
    def _acceptance_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return (
                    datetime.fromisoformat(value)
                    if "T" in value or " " in value
                    else (date.fromisoformat(value))
                )
            except ValueError:
                raise ValueError(
                    "not a date (2026-01-15) or ISO instant (2026-01-15T09:00:00-06:00)"
                ) from None
        return value

    @model_validator(mode="after")
    def _checks(self) -> ContractConfig:
        if len(set(self.services)) != len(self.services):
            raise ValueError("services: a service is listed twice")
        thresholds = [t.below_pct for t in self.credit_tiers]
        if len(set(thresholds)) != len(thresholds):
            raise ValueError("credit_tiers: two tiers have the same below_pct")
        return self

    @property
    def acceptance_utc(self) -> datetime:
        """Acceptance as an aware instant: a date or naive time is local time in ``tz``."""
        zone = ZoneInfo(self.tz)
        value = self.acceptance
        if not isinstance(value, datetime):
            value = datetime.combine(value, time(0))
        if value.tzinfo is None or value.utcoffset() is None:
            value = value.replace(tzinfo=zone)
        return value

    def terms(self) -> ContractTerms:
        """The terms as monitor.sla takes them."""
        return ContractTerms(
            target_pct=self.target_pct,
            basis=self.basis,
            clock=self.clock,
            degradation_counts=self.degradation_counts,
            tz=self.tz,
            acceptance=self.acceptance_utc,
            credit_tiers=tuple(CreditTier(t.below_pct, t.credit_pct) for t in self.credit_tiers),
            monthly_fee=self.monthly_fee,
        )


class ContractsSettings(BaseModel):
    """The ``sla:`` config section; see this module's docstring for the YAML."""

    model_config = _MODEL_CONFIG

    signing_key_file: Path = Field(default=Path(DEFAULT_SIGNING_KEY_FILE), validate_default=True)
    api_token_env: str | None = None
    services: tuple[ServiceConfig, ...] = ()
    contracts: tuple[ContractConfig, ...] = ()

    @field_validator("signing_key_file")
    @classmethod
    def _key_path(cls, value: Path, info: ValidationInfo) -> Path:
        path = value.expanduser()
        base_dir = info.context.get("base_dir") if isinstance(info.context, dict) else None
        if not path.is_absolute() and isinstance(base_dir, Path):
            path = base_dir / path
        if path.exists() and not path.is_file():
            raise ValueError(f"not a regular file: {path}")
        if not path.exists() and not path.parent.is_dir():
            raise ValueError(f"directory for the key does not exist: {path.parent}")
        return path

    @field_validator("api_token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not _ENV_NAME.match(value):
            raise ValueError("must be an environment variable name (A-Z, 0-9, '_')")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> ContractsSettings:
        problems: list[str] = []
        names = [s.name for s in self.services]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            problems.append(f"duplicate service names: {', '.join(dupes)}")
        contract_names = [c.name for c in self.contracts]
        dupes = sorted({n for n in contract_names if contract_names.count(n) > 1})
        if dupes:
            problems.append(f"duplicate contract names: {', '.join(dupes)}")
        owner: dict[str, str] = {}
        for contract in self.contracts:
            for service in contract.services:
                if service not in names:
                    problems.append(f"contract {contract.name}: unknown service {service!r}")
                elif service in owner:
                    problems.append(
                        f"service {service!r} is in contracts {owner[service]} and {contract.name}"
                        " (a service has one contract)"
                    )
                owner.setdefault(service, contract.name)
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def service(self, name: str) -> ServiceConfig | None:
        return next((s for s in self.services if s.name == name), None)

    def contract_of(self, service: str) -> ContractConfig | None:
        return next((c for c in self.contracts if service in c.services), None)

    def covered_services(self) -> list[str]:
        """Services that have a contract, in config order (only these get an SLA)."""
        return [s.name for s in self.services if self.contract_of(s.name) is not None]

    def unknown_trunks(self, trunk_names: Iterable[str]) -> list[str]:
        """Problems for service parts that name no configured trunk or endpoint (for the main
        Config)."""
        known = set(trunk_names)
        return [
            f"service {s.name}: part {p!r} is not a configured trunk or endpoint"
            for s in self.services
            for p in s.parts
            if p not in known
        ]

    def api_token(self, env: Mapping[str, str]) -> str | None:
        """The API write token from the environment; None when no variable is configured."""
        if self.api_token_env is None:
            return None
        value = env.get(self.api_token_env)
        if not value:
            raise ValueError(f"environment variable {self.api_token_env} is not set or is empty")
        return str(value)
