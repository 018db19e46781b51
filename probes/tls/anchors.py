"""Trust anchors for the inspector: a CA file, or the system store (reads files: I/O)."""

from __future__ import annotations

import ssl
from pathlib import Path


class AnchorLoadError(OSError):
    """The CA file (or the system store) cannot be read or holds no certificate."""


def load_trust_anchors(ca_file: Path | None = None) -> list[bytes]:
    """PEM bundles (one `bytes` per file) for `probes.tls.cert.inspect_chain`.

    `ca_file` None means the system store: the OpenSSL default CA file, then every file of the
    OpenSSL default CA directory (`ssl.get_default_verify_paths`).
    """
    if ca_file is not None:
        try:
            data = ca_file.read_bytes()
        except OSError as exc:
            raise AnchorLoadError(f"{ca_file}: {exc.strerror or exc}") from None
        if b"-----BEGIN CERTIFICATE-----" not in data and not data.startswith(b"\x30"):
            raise AnchorLoadError(f"{ca_file}: no certificate in it")
        return [data]
    paths = ssl.get_default_verify_paths()
    found: list[bytes] = []
    if paths.cafile:
        found.extend(_read_pem(Path(paths.cafile)))
    if not found and paths.capath:
        directory = Path(paths.capath)
        for path in sorted(directory.iterdir()) if directory.is_dir() else []:
            found.extend(_read_pem(path))
    if not found:
        raise AnchorLoadError("no system CA store found")
    return found


def _read_pem(path: Path) -> list[bytes]:
    try:
        data = path.read_bytes()
    except OSError:
        return []
    return [data] if b"-----BEGIN CERTIFICATE-----" in data else []
