"""Secrets that a command did not read: read-only commands (reports, evidence, listings) load
the config without resolving a single secret, so an operator's shell needs none of them."""

from __future__ import annotations

from typing import Final

# Stands in for every secret of a config loaded with secrets=False. It cannot be sent
# anywhere: Monitor and the ticket sinks refuse a config whose secrets were not read.
SECRET_NOT_READ: Final = "\x00secret-not-read\x00"


class SecretsNotRead(RuntimeError):
    """A config loaded for a read-only command was handed to something that needs secrets."""
