"""Secrets that a command did not read: read-only commands (reports, evidence, listings) load
the config without resolving a single secret, so an operator's shell needs none of them."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Final

# Stands in for every secret of a config loaded with secrets=False. It cannot be sent
# anywhere: Monitor and the ticket sinks refuse a config whose secrets were not read.
SECRET_NOT_READ: Final = "\x00secret-not-read\x00"


class SecretsNotRead(RuntimeError):
    """A config loaded for a read-only command was handed to something that needs secrets."""


# A password, token or key file is a few hundred bytes; anything bigger is the wrong file
# (and /dev/zero would otherwise be read until memory runs out).
MAX_SECRET_FILE_BYTES: Final = 64 * 1024


class SecretFileError(ValueError):
    """A secret file that cannot be used; the message never contains the file's content."""


def read_secret_file(path: Path) -> str:
    """The stripped text of a secret file: a regular file of at most MAX_SECRET_FILE_BYTES,
    UTF-8 and not empty. Devices, FIFOs and directories are refused without blocking."""
    try:
        # O_NONBLOCK: opening a FIFO with no writer would otherwise wait for ever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SecretFileError("was not found") from None
    except OSError as exc:
        raise SecretFileError(f"cannot be opened: {exc.strerror or exc}") from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise SecretFileError("is not a regular file")
        if info.st_size > MAX_SECRET_FILE_BYTES:
            raise SecretFileError(f"is larger than {MAX_SECRET_FILE_BYTES} bytes")
        data = handle.read(MAX_SECRET_FILE_BYTES + 1)
    if len(data) > MAX_SECRET_FILE_BYTES:  # a file that grew, or a size the kernel hides
        raise SecretFileError(f"is larger than {MAX_SECRET_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError("is not UTF-8 text") from None
    if not text:
        raise SecretFileError("is empty")
    return text
