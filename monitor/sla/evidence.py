"""Evidence bundles: a month's reports and raw records, hashed, chained and signed (Ed25519).

``export_bundle`` writes a directory (schema: docs/sla-report-schema.md, "Evidence bundle");
``verify_bundle`` checks one offline — a directory or a .zip of it — and names every file
altered, removed or added and every journal event whose chain link is broken;
``verify_against_store`` also names journal events deleted or edited in the database since.
"""

from __future__ import annotations

import asyncio
import base64
import csv
import hashlib
import io
import itertools
import json
import os
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from monitor.journal_chain import ChainLink, verify_chain
from monitor.sla.reports import make_report, render_csv, render_html, render_json, render_pdf
from monitor.sla.service import ServiceSla, SlaContext
from monitor.store import Store
from monitor.store.samples import CallSample, ProbeSample, query_call_samples, query_probe_samples

# cryptography (~8 MB resident) is imported where a bundle is signed or checked: the
# daemon imports this module with its API and most runs never export a bundle.
if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST",
    "MISSING_DATA",
    "SIGNATURE",
    "EvidenceError",
    "Verification",
    "export_bundle",
    "key_fingerprint",
    "load_or_create_key",
    "verify_against_store",
    "verify_bundle",
    "zip_bundle",
]

BUNDLE_FORMAT: Final = "trunkwatch-evidence/1"
MANIFEST: Final = "manifest.json"
SIGNATURE: Final = "manifest.sig"  # base64 of the Ed25519 signature over manifest.json's bytes
PUBLIC_KEY: Final = "public_key.pem"
JOURNAL_JSON: Final = "journal/events.json"
# Never hashed into the manifest: they are the manifest's own proof.
_UNHASHED: Final = frozenset({MANIFEST, SIGNATURE})
# A bundle is a month of records; a zip with more members or bigger ones is not ours.
MAX_MEMBERS: Final = 10_000
MAX_MEMBER_BYTES: Final = 512 * 1024 * 1024
# What the bundle cannot carry, said in the bundle itself so nobody assumes it is there.
# Probe samples (records/probe_samples.*) and test-call figures (records/call_samples.*)
# are carried; OPTIONS results away from any transition are never stored (by design).
MISSING_DATA: Final[tuple[str, ...]] = ()
JOURNAL_COLUMNS: Final = ("seq", "ts", "agent", "trunk", "kind", "payload", "prev_hash", "hash")


class EvidenceError(ValueError):
    """A bundle that cannot be written or read at all (not a verification finding)."""


# ---- keys ---------------------------------------------------------------------------------


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The monitor's signing key; a new one is written (mode 0600) when the file is absent."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    if path.exists():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (ValueError, TypeError) as exc:
            raise EvidenceError(f"{path}: not an unencrypted PEM private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise EvidenceError(f"{path}: not an Ed25519 key")
        return key
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    # O_EXCL: two exporters starting together must not each write (and sign with) their own key.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def _public_pem(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def key_fingerprint(key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, hex: what a carrier compares with the one it was given."""
    from cryptography.hazmat.primitives import serialization

    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


# ---- tables -------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list | dict | tuple):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def _tables(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> tuple[bytes, bytes]:
    """The same records as CSV (RFC 4180, header row) and as a JSON array."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_cell(row.get(c)) for c in columns])
    as_json = json.dumps(list(rows), ensure_ascii=False, indent=1, sort_keys=True) + "\n"
    return buffer.getvalue().encode("utf-8"), as_json.encode("utf-8")


_RECORD_COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "trunk_outages": (
        "id",
        "trunk",
        "kind",
        "first_failure_at",
        "confirmed_at",
        "first_outcome",
        "detail",
        "restored_at",
        "closed_at",
    ),
    "service_outages": (
        "service",
        "id",
        "kind",
        "source",
        "trunks",
        "trunk_outage_ids",
        "first_failure_at",
        "confirmed_at",
        "ticket_opened_at",
        "ticket_source",
        "restored_at",
        "closed_at",
        "carrier_ticket",
        "evidence_ref",
    ),
    "manual_outages": (
        "id",
        "service",
        "kind",
        "first_failure_at",
        "ticket_opened_at",
        "carrier_ticket",
        "restored_at",
        "evidence_ref",
        "note",
        "created_at",
        "created_by",
        "withdrawn_at",
        "withdrawn_by",
        "withdrawn_reason",
    ),
    "tickets": ("id", "outage_id", "opened_at", "acknowledged_at", "carrier_ref", "status"),
    "ticket_corrections": (
        "id",
        "outage_id",
        "field",
        "value",
        "previous",
        "reason",
        "reference",
        "created_at",
        "created_by",
    ),
    "maintenance_windows": (
        "id",
        "title",
        "services",
        "origin",
        "start",
        "end",
        "tz",
        "rrule",
        "exdates",
        "notice_ref",
        "ical_uid",
        "ical_sequence",
        "created_at",
        "created_by",
        "updated_at",
        "updated_by",
        "cancelled_at",
        "cancelled_by",
        "cancel_reason",
    ),
    "exclusions": (
        "id",
        "outage_id",
        "service",
        "kind",
        "reason",
        "reference",
        "created_at",
        "created_by",
        "revoked_at",
        "revoked_by",
        "revoked_reason",
    ),
    "monitor_gaps": ("service", "start", "end"),
    "audit_log": ("id", "at", "actor", "action", "entity", "entity_id", "detail"),
    "probe_samples": (
        "agent",
        "trunk",
        "transition_kind",
        "transition_at",
        "at",
        "outcome",
        "rtt_s",
        "status",
    ),
    "call_samples": (
        "agent",
        "trunk",
        "at",
        "outcome",
        "mos",
        "rx_jitter_s",
        "tx_jitter_s",
        "loss_ratio",
        "burst_loss_ratio",
        "rtt_s",
        "one_way_latency_s",
        "violations",
        "profile",
        "limits",
        "rtt_source",
    ),
}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _records(
    slas: Sequence[ServiceSla],
    audit: Sequence[Mapping[str, Any]],
    probes: Sequence[ProbeSample] = (),
    calls: Sequence[CallSample] = (),
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in _RECORD_COLUMNS}
    for sla in slas:
        i = sla.inputs
        name = i.service.name
        for o in i.trunk_outages:
            out["trunk_outages"][o.id] = o.to_dict()
        for so in i.outages:
            r = so.record
            out["service_outages"][f"{name}/{r.id}"] = {
                "service": name,
                "id": r.id,
                "kind": r.kind.value,
                "source": so.source,
                "trunks": list(so.trunks),
                "trunk_outage_ids": list(so.trunk_outage_ids),
                "first_failure_at": r.first_failure_at.isoformat(),
                "confirmed_at": r.confirmed_at.isoformat(),
                "ticket_opened_at": _iso(r.ticket_opened_at),
                "ticket_source": so.ticket_source,
                "restored_at": _iso(r.restored_at),
                "closed_at": _iso(so.closed_at),
                "carrier_ticket": so.carrier_ticket,
                "evidence_ref": so.evidence_ref,
            }
        for m in i.manual:
            out["manual_outages"][m.id] = m.to_dict()
        for t in i.tickets:
            out["tickets"][t.id] = t.to_dict()
        for c in i.corrections:
            out["ticket_corrections"][str(c.id)] = c.to_dict()
        for w in i.windows:
            out["maintenance_windows"][w.id] = w.to_dict()
        for e in i.exclusions:
            out["exclusions"][e.id] = e.to_dict()
        for g in i.gaps:
            key = f"{name}/{g.start.isoformat()}"
            out["monitor_gaps"][key] = {
                "service": name,
                "start": g.start.isoformat(),
                "end": g.end.isoformat(),
            }
    out["audit_log"] = {str(a["id"]): dict(a) for a in audit}
    out["probe_samples"] = {str(i): p.to_dict() for i, p in enumerate(probes)}
    out["call_samples"] = {str(i): c.to_dict() for i, c in enumerate(calls)}
    return {name: list(rows.values()) for name, rows in out.items()}


async def _journal_slice(
    store: Store, start: datetime, end: datetime
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Each agent's contiguous run of journal rows covering [start, end), and its chain ends."""
    runs = await store.journal_runs(start, end)
    events: list[dict[str, Any]] = [
        {
            "seq": r.seq,
            "ts": r.ts.isoformat(),
            "agent": r.agent,
            "trunk": r.trunk,
            "kind": r.kind,
            "payload": r.payload,
            "prev_hash": r.prev_hash,
            "hash": r.hash,
        }
        for r in runs
    ]
    chains: dict[str, dict[str, Any]] = {}
    for agent in sorted({r.agent for r in runs}):
        mine = [e for e in events if e["agent"] == agent]
        chains[agent] = {
            "first_seq": mine[0]["seq"],
            "last_seq": mine[-1]["seq"],
            "events": len(mine),
            "start_prev_hash": mine[0]["prev_hash"],
            "head": mine[-1]["hash"],
        }
    return events, chains


_README: Final = """trunkwatch evidence bundle ({fmt})

manifest.json lists every file with its SHA-256; manifest.sig is the base64 Ed25519
signature of manifest.json's exact bytes by the key in public_key.pem (fingerprint in the
manifest: compare it with the one the customer gave you). journal/events.* is the monitor's
hash-chained event journal for the period: each event's hash is SHA-256 over the previous
hash and its own fields, so a removed or edited event breaks every later link; the manifest
records each agent's chain head. records/ holds the outage, ticket, maintenance and
exclusion records, and the probe samples: records/probe_samples.* are the OPTIONS results
around each outage's opening and closing, records/call_samples.* every test call's figures.
Check it offline: trunkwatch evidence verify <bundle>.
Schema: docs/sla-report-schema.md in the trunkwatch sources.
"""


async def export_bundle(
    ctx: SlaContext,
    month: str,
    out_dir: Path,
    now: datetime,
    *,
    key_path: Path,
    services: Sequence[str] | None = None,
    lang: str = "es",
    include_pdf: bool = True,
) -> Path:
    """Write the month's bundle into out_dir (created; must not exist or be empty)."""
    names = list(services) if services else ctx.settings.covered_services()
    if not names:
        raise EvidenceError("no service with a contract to export")
    await asyncio.to_thread(_check_empty, out_dir)
    key = await asyncio.to_thread(load_or_create_key, key_path)
    files: dict[str, bytes] = {}
    slas: list[ServiceSla] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for name in names:
        report = await make_report(ctx, name, month, now, lang=lang)
        period = ctx.month(name, month)
        slas.append(await ctx.sla(name, period, now))
        starts.append(period.start_utc)
        ends.append(period.end_utc)
        files[f"reports/{name}.json"] = render_json(report)
        files[f"reports/{name}.csv"] = render_csv(report)
        files[f"reports/{name}.html"] = render_html(report)
        if include_pdf:
            files[f"reports/{name}.pdf"] = render_pdf(report)
    audit = [a.to_dict() for a in await ctx.ledger.audit_log()]
    # The samples of the services' trunks over the bundle's span, as stored.
    trunks = sorted({t for sla in slas for t in sla.inputs.service.parts})
    engine = ctx.store.engine
    probes = await query_probe_samples(engine, min(starts), max(ends), trunks=trunks)
    calls = await query_call_samples(engine, min(starts), max(ends), trunks=trunks)
    for table, rows in _records(slas, audit, probes, calls).items():
        csv_bytes, json_bytes = _tables(rows, _RECORD_COLUMNS[table])
        files[f"records/{table}.csv"] = csv_bytes
        files[f"records/{table}.json"] = json_bytes
    events, chains = await _journal_slice(ctx.store, min(starts), max(ends))
    csv_bytes, json_bytes = _tables(events, JOURNAL_COLUMNS)
    files["journal/events.csv"] = csv_bytes
    files[JOURNAL_JSON] = json_bytes
    files["README.txt"] = _README.format(fmt=BUNDLE_FORMAT).encode("utf-8")
    files[PUBLIC_KEY] = _public_pem(key.public_key())
    manifest = {
        "format": BUNDLE_FORMAT,
        "month": month,
        "services": names,
        "period": {"start": min(starts).isoformat(), "end": max(ends).isoformat()},
        "generated_at": now.isoformat(),
        "agent": ctx.store.agent,
        "agents": await ctx.store.agents(),  # every agent whose journal may be in the bundle
        "key_fingerprint": key_fingerprint(key.public_key()),
        "journal": chains,
        "missing": list(MISSING_DATA),
        "files": {
            path: {"sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data)}
            for path, data in sorted(files.items())
        },
    }
    manifest_bytes = (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8")
    files[MANIFEST] = manifest_bytes
    files[SIGNATURE] = base64.b64encode(key.sign(manifest_bytes)) + b"\n"
    await asyncio.to_thread(_write_files, out_dir, files)
    return out_dir


def _check_empty(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise EvidenceError(f"{out_dir} exists and is not an empty directory")


def _write_files(out_dir: Path, files: Mapping[str, bytes]) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for path, data in files.items():
        target = out_dir / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)


def zip_bundle(bundle: Path) -> bytes:
    """The bundle directory as a zip (for the API), members in sorted order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for path in sorted(p for p in bundle.rglob("*") if p.is_file()):
            z.write(path, path.relative_to(bundle).as_posix())
    return buffer.getvalue()


# ---- verification -------------------------------------------------------------------------


@dataclass(slots=True)
class Verification:
    """What verify found: ok only when there is no problem at all."""

    problems: list[str] = field(default_factory=list)
    fingerprint: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _read_members(bundle: Path) -> dict[str, bytes]:
    if bundle.is_dir():
        return {
            p.relative_to(bundle).as_posix(): p.read_bytes()
            for p in sorted(bundle.rglob("*"))
            if p.is_file()
        }
    if not zipfile.is_zipfile(bundle):
        raise EvidenceError(f"{bundle}: not a bundle directory or zip file")
    with zipfile.ZipFile(bundle) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
        if len(infos) > MAX_MEMBERS or any(i.file_size > MAX_MEMBER_BYTES for i in infos):
            raise EvidenceError(f"{bundle}: too many or too large members for a bundle")
        return {i.filename: z.read(i) for i in infos}


def verify_bundle(bundle: Path, *, public_key_pem: bytes | None = None) -> Verification:
    """Check signature, every file's hash and the journal chain; name whatever does not hold.

    Without public_key_pem the bundle's own key is used: that proves integrity, and the
    fingerprint (in the result) must then match the one the monitor's owner published.
    """
    found = Verification()
    members = _read_members(bundle)
    manifest_bytes = members.get(MANIFEST)
    if manifest_bytes is None:
        found.problems.append(f"{MANIFEST}: missing (removed)")
        return found
    try:
        manifest = json.loads(manifest_bytes)
        files: dict[str, Any] = manifest["files"]
    except (ValueError, KeyError, TypeError):
        found.problems.append(f"{MANIFEST}: not a trunkwatch manifest (altered)")
        return found
    found.manifest = manifest
    _check_signature(found, members, manifest_bytes, public_key_pem)
    for path, entry in sorted(files.items()):
        data = members.get(path)
        if data is None:
            found.problems.append(f"{path}: missing (removed)")
        elif hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            found.problems.append(f"{path}: altered (SHA-256 does not match the manifest)")
    for path in sorted(set(members) - set(files) - _UNHASHED):
        found.problems.append(f"{path}: not in the manifest (added)")
    if JOURNAL_JSON in members:
        found.problems.extend(_check_journal(members[JOURNAL_JSON], manifest.get("journal", {})))
    return found


def _check_signature(
    found: Verification, members: Mapping[str, bytes], manifest: bytes, pem: bytes | None
) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    key_pem = pem if pem is not None else members.get(PUBLIC_KEY)
    if key_pem is None:
        found.problems.append(f"{PUBLIC_KEY}: missing (removed); the signature cannot be checked")
        return
    try:
        key = serialization.load_pem_public_key(key_pem)
    except ValueError:
        found.problems.append(f"{PUBLIC_KEY}: not a PEM public key (altered)")
        return
    if not isinstance(key, Ed25519PublicKey):
        found.problems.append(f"{PUBLIC_KEY}: not an Ed25519 key")
        return
    found.fingerprint = key_fingerprint(key)
    signature = members.get(SIGNATURE)
    if signature is None:
        found.problems.append(f"{SIGNATURE}: missing (removed)")
        return
    try:
        key.verify(base64.b64decode(signature, validate=False), manifest)
    except (InvalidSignature, ValueError):
        found.problems.append(
            f"{SIGNATURE}: the signature does not verify {MANIFEST} "
            "(manifest altered, or signed by another key)"
        )


def _links(rows: Iterable[Mapping[str, Any]]) -> list[ChainLink]:
    return [
        ChainLink(
            seq=int(r["seq"]),
            ts=datetime.fromisoformat(r["ts"]),
            agent=r["agent"],
            trunk=r["trunk"],
            kind=r["kind"],
            payload=r["payload"],
            prev_hash=r["prev_hash"],
            hash=r["hash"],
        )
        for r in rows
    ]


def _check_journal(data: bytes, chains: Mapping[str, Any]) -> list[str]:
    """Chain breaks in the bundle's journal, each naming the event where the chain fails."""
    try:
        rows = json.loads(data)
        links = _links(rows)
    except (ValueError, KeyError, TypeError) as exc:
        return [f"{JOURNAL_JSON}: unreadable ({str(exc)[:100]})"]
    problems: list[str] = []
    for agent, chain in sorted(chains.items()):
        mine = [link for link in links if link.agent == agent]
        if not mine:
            problems.append(f"journal agent {agent}: every event removed")
            continue
        problems.extend(_describe_breaks(mine, chain["start_prev_hash"]))
        if mine[-1].hash != chain["head"]:
            problems.append(
                f"journal agent {agent}: chain head {str(mine[-1].hash)[:12]}… is not the "
                f"manifest's {str(chain['head'])[:12]}… (events at the end removed or altered; "
                f"last present seq {mine[-1].seq}, manifest's last seq {chain['last_seq']})"
            )
        present = {link.seq for link in mine}
        if chain["first_seq"] not in present:
            problems.append(f"journal seq {chain['first_seq']}: removed (first event of {agent})")
    return problems


def _describe_breaks(links: Sequence[ChainLink], start_prev: str) -> list[str]:
    out: list[str] = []
    previous = {b.seq: a.seq for a, b in itertools.pairwise(links)}
    for brk in verify_chain(links, start_prev):
        if "prev_hash" in brk.problem and brk.seq in previous:
            out.append(
                f"journal seq {brk.seq}: chain broken after seq {previous[brk.seq]} "
                f"(an event between them was removed, or seq {previous[brk.seq]} was altered)"
            )
        else:
            out.append(str(brk))
    return out


async def verify_against_store(bundle: Path, store: Store) -> list[str]:
    """Journal events of the bundle that the database no longer holds, or holds changed."""
    members = await asyncio.to_thread(_read_members, bundle)
    try:
        manifest = json.loads(members[MANIFEST])
        rows = {int(r["seq"]): r for r in json.loads(members[JOURNAL_JSON])}
    except (KeyError, ValueError, TypeError) as exc:
        raise EvidenceError(f"{bundle}: no readable manifest and journal ({exc})") from None
    problems: list[str] = []
    for agent, chain in sorted(manifest.get("journal", {}).items()):
        run = await store.journal_run(agent, chain["first_seq"], chain["last_seq"])
        in_db = {r.seq: r for r in run}
        for seq, row in sorted(rows.items()):
            if row["agent"] != agent:
                continue
            now_row = in_db.get(seq)
            if now_row is None:
                problems.append(f"journal seq {seq}: deleted from the database")
            elif now_row.hash != row["hash"] or now_row.payload != row["payload"]:
                problems.append(f"journal seq {seq}: altered in the database")
        for seq in sorted(set(in_db) - set(rows)):
            problems.append(f"journal seq {seq}: in the database but not in the bundle")
    return problems
