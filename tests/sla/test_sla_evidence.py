"""Evidence bundles: export, offline verification, and every kind of tampering named."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sla_world import NOW, worked_example

from monitor.sla.evidence import (
    MISSING_DATA,
    export_bundle,
    verify_against_store,
    verify_bundle,
    zip_bundle,
)
from monitor.store import Store


async def _bundle(tmp_path: Path, *, pdf: bool = False) -> Path:
    store, ctx = await worked_example(tmp_path)
    try:
        return await export_bundle(
            ctx,
            "2026-10",
            tmp_path / "bundle",
            NOW,
            key_path=ctx.settings.signing_key_file,
            include_pdf=pdf,
        )
    finally:
        await store.close()


async def test_bundle_verifies_and_carries_everything(tmp_path: Path) -> None:
    bundle = await _bundle(tmp_path, pdf=True)
    result = verify_bundle(bundle)
    assert result.ok, result.problems
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["missing"] == list(MISSING_DATA)
    assert [a["agent"] for a in manifest["agents"]] == [manifest["agent"]]
    assert result.fingerprint == manifest["key_fingerprint"]
    for name in (
        "reports/voice-mx.pdf",
        "reports/voice-mx.json",
        "records/exclusions.csv",
        "records/maintenance_windows.json",
        "records/tickets.csv",
        "journal/events.csv",
        "records/audit_log.json",
    ):
        assert name in manifest["files"], name
    events = json.loads((bundle / "journal/events.json").read_text())
    (chain,) = manifest["journal"].values()
    assert chain["head"] == events[-1]["hash"] and chain["events"] == len(events) == 6
    report = json.loads((bundle / "reports/voice-mx.json").read_text())
    assert report["availability"]["pct"] == "99.6528"
    tickets = json.loads((bundle / "records/tickets.json").read_text())
    assert sorted(t["carrier_ref"] for t in tickets) == ["CX-1001", "CX-1002", "CX-1003"]
    # The signing key was generated with owner-only permissions.
    assert (tmp_path / "evidence.key").stat().st_mode & 0o077 == 0


async def test_one_flipped_byte_in_a_csv_names_the_file(tmp_path: Path) -> None:
    bundle = await _bundle(tmp_path)
    target = bundle / "records" / "exclusions.csv"
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    result = verify_bundle(bundle)
    assert result.problems == [
        "records/exclusions.csv: altered (SHA-256 does not match the manifest)"
    ]


async def test_removed_journal_event_is_named(tmp_path: Path) -> None:
    bundle = await _bundle(tmp_path)
    path = bundle / "journal" / "events.json"
    events = json.loads(path.read_text())
    removed = events.pop(3)
    path.write_text(json.dumps(events))
    problems = verify_bundle(bundle).problems
    assert "journal/events.json: altered (SHA-256 does not match the manifest)" in problems
    after = events[3]["seq"]
    assert any(
        p.startswith(f"journal seq {after}: chain broken after seq {events[2]['seq']}")
        for p in problems
    ), problems
    assert removed["seq"] not in {e["seq"] for e in events}


async def test_event_deleted_from_the_database_is_named(tmp_path: Path) -> None:
    bundle = await _bundle(tmp_path)
    events = json.loads((bundle / "journal/events.json").read_text())
    victim = events[2]["seq"]
    with sqlite3.connect(tmp_path / "tw.db") as db:
        db.execute("DELETE FROM journal WHERE seq = ?", (victim,))
    real = await Store.open(f"sqlite:///{tmp_path / 'tw.db'}", agent="agent-1")
    try:
        problems = await verify_against_store(bundle, real)
    finally:
        await real.close()
    assert problems == [f"journal seq {victim}: deleted from the database"]
    assert verify_bundle(bundle).ok  # the bundle itself still proves what was there


async def test_removed_and_added_files_and_bad_signature(tmp_path: Path) -> None:
    bundle = await _bundle(tmp_path)
    (bundle / "records" / "tickets.csv").unlink()
    (bundle / "extra.txt").write_text("x")
    manifest = bundle / "manifest.json"
    manifest.write_bytes(
        manifest.read_bytes().replace(b'"month": "2026-10"', b'"month": "2026-11"')
    )
    problems = verify_bundle(bundle).problems
    assert "records/tickets.csv: missing (removed)" in problems
    assert "extra.txt: not in the manifest (added)" in problems
    assert any(p.startswith("manifest.sig: the signature does not verify") for p in problems)


async def test_zip_and_pinned_key(tmp_path: Path) -> None:
    bundle = await _bundle(tmp_path)
    archive = tmp_path / "bundle.zip"
    archive.write_bytes(zip_bundle(bundle))
    assert verify_bundle(archive).ok
    other = (
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    problems = verify_bundle(archive, public_key_pem=other).problems
    assert any(p.startswith("manifest.sig:") for p in problems)
