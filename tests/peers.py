"""Real test peers on loopback: Kamailio, promtool, a throwaway CA (see notes/test-peers.md).

Plain classes and functions; tests/conftest.py turns them into fixtures. A missing peer binary
skips a test on a developer machine but fails it under CI (`CI=true`): CI must never go green by
skipping the peers it was meant to exercise.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import random
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

LOOPBACK = "127.0.0.1"
# Ports handed to peers come from below the kernel's ephemeral range (32768-60999 here), so an
# outgoing socket elsewhere cannot grab the port between our check and the peer's own bind.
PORT_RANGE = (20_000, 32_000)
PORT_ATTEMPTS = 200
# Kamailio binds every listener before it answers anything; a cold start takes ~0.3 s here.
KAMAILIO_START_TIMEOUT_S = 10.0
KAMAILIO_STOP_TIMEOUT_S = 5.0
# Readiness pings are re-sent this often while Kamailio starts (UDP may be dropped until bound).
READY_PING_INTERVAL_S = 0.05
# A reply header block bigger than this from a test peer means something is badly wrong.
MAX_PING_REPLY_BYTES = 65_536
# Shared/private memory for each Kamailio (MB): the 64 MB default is wasted on a test responder.
KAMAILIO_SHM_MB = 32
KAMAILIO_PKG_MB = 4
CERT_DAYS = 2

Transport = Literal["udp", "tcp", "tls"]
PortKind = Literal["udp", "tcp", "both"]


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() == "true"


def missing_peer(reason: str) -> None:
    """Fail under CI, skip elsewhere: a missing peer in CI is a broken pipeline, not a pass."""
    if in_ci():
        pytest.fail(f"{reason} (CI=true: missing peers are failures)", pytrace=False)
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """Path of an installed peer binary (looks in sbin too, where Debian puts kamailio)."""
    search = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin", "/usr/local/sbin"])
    path = shutil.which(name, path=search)
    if path is None:
        missing_peer(f"{name} is not installed (run `make test-deps`)")
        raise AssertionError("unreachable")  # pytest.skip/fail raise; this keeps mypy honest
    return path


# Ports already handed out by this process, so two peers of one test never get the same port.
_handed_out: set[int] = set()


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _can_bind(port: int, kind: Literal["udp", "tcp"], host: str) -> bool:
    stype = socket.SOCK_DGRAM if kind == "udp" else socket.SOCK_STREAM
    with socket.socket(_family(host), stype) as sock:
        if kind == "tcp":
            # The peer will set SO_REUSEADDR too; a TIME_WAIT leftover must not count as taken.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(kind: PortKind = "udp", host: str = LOOPBACK) -> int:
    """A port on `host` nobody is bound to for `kind` ("udp", "tcp" or "both"), from PORT_RANGE."""
    kinds: tuple[Literal["udp", "tcp"], ...] = ("udp", "tcp") if kind == "both" else (kind,)
    rng = random.Random(secrets.randbits(64))
    for _ in range(PORT_ATTEMPTS):
        port = rng.randrange(*PORT_RANGE)
        if port in _handed_out:
            continue
        if all(_can_bind(port, k, host) for k in kinds):
            _handed_out.add(port)
            return port
    raise RuntimeError(f"no free {kind} port on {host} in {PORT_RANGE} after {PORT_ATTEMPTS} tries")


def free_port_both(host: str = LOOPBACK) -> int:
    """A port free for UDP and TCP at once (Kamailio listens on both with one number)."""
    return free_port("both", host)


# ---------------------------------------------------------------------------------------------
# A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate.


@dataclass(slots=True, frozen=True)
class TlsFiles:
    directory: Path
    ca: Path  # ca.pem: the trust anchor clients load
    ca_key: Path
    cert: Path  # cert.pem: server certificate, SAN IP:127.0.0.1 and DNS:localhost
    key: Path  # key.pem
    client_cert: Path
    client_key: Path

    def client_context(self, *, with_client_cert: bool = False) -> ssl.SSLContext:
        """A verifying client context that trusts only this CA."""
        ctx = ssl.create_default_context(cafile=str(self.ca))
        if with_client_cert:
            ctx.load_cert_chain(str(self.client_cert), str(self.client_key))
        return ctx


# Our own config instead of the system openssl.cnf: the extensions are exactly these, so
# strict verifiers (VERIFY_X509_STRICT, default in newer Pythons) accept the chain.
_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""

# EC P-256 keys: generated in milliseconds, unlike RSA, and both Kamailio and Python accept them.
_KEY_ARGS = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


def _openssl(openssl: str, *args: str, cwd: Path) -> None:
    proc = subprocess.run(
        [openssl, *args], cwd=cwd, capture_output=True, text=True, timeout=30, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args[:2])} failed: {proc.stderr.strip()}")


def make_tls_ca(directory: Path) -> TlsFiles:
    """Create the CA, server and client certificates in `directory` with the openssl CLI."""
    openssl = require_binary("openssl")
    directory.mkdir(parents=True, exist_ok=True)
    cnf = directory / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF)
    c = str(cnf)
    _openssl(openssl, "req", "-x509", *_KEY_ARGS, "-keyout", "ca.key", "-out", "ca.pem",
             "-days", str(CERT_DAYS), "-subj", "/CN=trunkwatch test CA", "-config", c,
             "-extensions", "ca_ext", cwd=directory)  # fmt: skip
    for name, cn, ext in (
        ("server", "127.0.0.1", "server_ext"),
        ("client", "client", "client_ext"),
    ):
        key = "key.pem" if name == "server" else "client-key.pem"
        crt = "cert.pem" if name == "server" else "client-cert.pem"
        _openssl(openssl, "req", "-new", *_KEY_ARGS, "-keyout", key, "-out", f"{name}.csr",
                 "-subj", f"/CN={cn}", "-config", c, cwd=directory)  # fmt: skip
        _openssl(openssl, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey",
                 "ca.key", "-set_serial", str(secrets.randbits(63)), "-days", str(CERT_DAYS),
                 "-out", crt, "-extfile", c, "-extensions", ext, cwd=directory)  # fmt: skip
    return TlsFiles(
        directory=directory,
        ca=directory / "ca.pem",
        ca_key=directory / "ca.key",
        cert=directory / "cert.pem",
        key=directory / "key.pem",
        client_cert=directory / "client-cert.pem",
        client_key=directory / "client-key.pem",
    )


# ---------------------------------------------------------------------------------------------
# A hand-written OPTIONS ping, independent of probes/sip, for readiness checks and smoke tests.


def options_request(
    host: str, port: int, transport: Transport, local_host: str, local_port: int
) -> bytes:
    """A minimal RFC 3261 OPTIONS request (all mandatory headers, fresh branch/tag/Call-ID)."""
    token = secrets.token_hex(8)
    via_transport = transport.upper()
    return (
        f"OPTIONS sip:{host}:{port};transport={transport} SIP/2.0\r\n"
        f"Via: SIP/2.0/{via_transport} {local_host}:{local_port};branch=z9hG4bK{token};rport\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:peers@{local_host}>;tag={token[:8]}\r\n"
        f"To: <sip:{host}:{port}>\r\n"
        f"Call-ID: {token}@{local_host}\r\n"
        "CSeq: 1 OPTIONS\r\n"
        "Content-Length: 0\r\n"
        "\r\n"
    ).encode()


def status_code_of(reply: bytes) -> int | None:
    """The status code of a SIP response's status line, or None if it is not one."""
    first, _, _ = reply.partition(b"\r\n")
    parts = first.split(b" ", 2)
    if len(parts) < 2 or parts[0] != b"SIP/2.0" or not parts[1].isdigit():
        return None
    return int(parts[1])


def _read_header_block(sock: socket.socket) -> bytes:
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
        if len(buf) > MAX_PING_REPLY_BYTES:
            break
    return buf


def options_ping(
    port: int,
    transport: Transport = "udp",
    *,
    host: str = LOOPBACK,
    timeout: float = 1.0,
    ssl_context: ssl.SSLContext | None = None,
) -> int | None:
    """Send one OPTIONS and return the reply's status code, or None on timeout/refusal.

    TLS needs `ssl_context`; verification errors propagate (a smoke test must see them).
    """
    family = _family(host)
    if transport == "udp":
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.settimeout(timeout)
            sock.bind((host, 0))
            sock.sendto(options_request(host, port, "udp", host, sock.getsockname()[1]),
                        (host, port))  # fmt: skip
            try:
                while True:
                    data = sock.recv(MAX_PING_REPLY_BYTES)
                    code = status_code_of(data)
                    if code is not None and code >= 200:  # skip provisional replies
                        return code
            except (TimeoutError, ConnectionRefusedError):
                return None
    try:
        raw = socket.create_connection((host, port), timeout=timeout)
    except (TimeoutError, ConnectionRefusedError):
        return None
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(raw)
        if transport == "tls":
            if ssl_context is None:
                raise ValueError("options_ping over TLS needs ssl_context")
            sock = stack.enter_context(ssl_context.wrap_socket(raw, server_hostname=host))
        try:
            sock.sendall(options_request(host, port, transport, host, sock.getsockname()[1]))
            return status_code_of(_read_header_block(sock))
        except (TimeoutError, ConnectionResetError):
            return None


# ---------------------------------------------------------------------------------------------
# Kamailio: OPTIONS → 200 "Keepalive" on UDP+TCP (one port) and TLS (another), 404 otherwise.

_KAMAILIO_CFG = """\
#!KAMAILIO
debug=2
log_stderror=yes
children=1
tcp_children=1
enable_tls=yes
listen=udp:{host}:{port}
listen=tcp:{host}:{port}
listen=tls:{host}:{tls_port}
mpath="{mpath}"
loadmodule "tls.so"
modparam("tls", "config", "{tls_cfg}")
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
request_route {{
    if (is_method("OPTIONS")) {{ sl_send_reply("200","Keepalive"); exit; }}
    if (is_method("ACK")) {{ exit; }}
    sl_send_reply("404","Not here");
}}
"""

_KAMAILIO_TLS_CFG = """\
[server:default]
method = TLSv1.2+
verify_certificate = {verify}
require_certificate = {verify}
private_key = {key}
certificate = {cert}
ca_list = {ca}
"""


def kamailio_module_dir() -> str:
    """The directory holding Kamailio's modules, including tls.so (kamailio-tls-modules)."""
    candidates = [*sorted(glob.glob("/usr/lib/*/kamailio/modules")), "/usr/lib/kamailio/modules"]
    for candidate in candidates:
        if os.path.isfile(os.path.join(candidate, "tls.so")):
            return candidate
    missing_peer("Kamailio's tls.so is not installed (Debian package kamailio-tls-modules)")
    raise AssertionError("unreachable")


# Every Kamailio this process started, so an interrupted run still stops them by PID.
_live: set[Kamailio] = set()


@dataclass(eq=False)
class Kamailio:
    """One Kamailio process on loopback; stop()/start() keep the same ports (induced outages)."""

    workdir: Path
    tls: TlsFiles
    binary: str
    require_client_cert: bool = False
    host: str = LOOPBACK
    udp_port: int = 0  # 0 = pick a free one; TCP uses the same number
    tls_port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)
    starts_stopped: int = field(default=0, init=False)  # completed start→stop cycles

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.udp_port == 0:
            self.udp_port = free_port_both(self.host)
        if self.tls_port == 0:
            self.tls_port = free_port("tcp", self.host)
        self.cfg_path = self.workdir / "kamailio.cfg"
        self.tls_cfg_path = self.workdir / "tls.cfg"
        self.pid_path = self.workdir / "kamailio.pid"
        self.log_path = self.workdir / "kamailio.log"
        self._write_config()

    @property
    def tcp_port(self) -> int:
        return self.udp_port

    def port(self, transport: Transport) -> int:
        return self.tls_port if transport == "tls" else self.udp_port

    def uri(self, transport: Transport = "udp") -> str:
        return f"sip:{self.host}:{self.port(transport)};transport={transport}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def _write_config(self) -> None:
        verify = "yes" if self.require_client_cert else "no"
        self.tls_cfg_path.write_text(
            _KAMAILIO_TLS_CFG.format(
                verify=verify, key=self.tls.key, cert=self.tls.cert, ca=self.tls.ca
            )
        )
        self.cfg_path.write_text(
            _KAMAILIO_CFG.format(
                host=self.host,
                port=self.udp_port,
                tls_port=self.tls_port,
                mpath=kamailio_module_dir() + "/",
                tls_cfg=self.tls_cfg_path,
            )
        )

    def check_config(self) -> None:
        proc = subprocess.run(
            [self.binary, "-c", "-f", str(self.cfg_path)],
            capture_output=True, text=True, timeout=30, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"kamailio -c rejected {self.cfg_path}:\n{proc.stderr[-4000:]}")

    def start(self, timeout: float = KAMAILIO_START_TIMEOUT_S) -> None:
        """Start (or restart) on the same ports and return once it answers OPTIONS over UDP."""
        if self.pid is not None:
            return
        with self.log_path.open("ab") as log:
            log.write(f"=== test harness: start #{self.starts_stopped + 1} ===\n".encode())
            log.flush()
            # Own session: the PID is also the process group of Kamailio's forked children.
            self.proc = subprocess.Popen(
                [self.binary, "-DD", "-E", "-f", str(self.cfg_path), "-P", str(self.pid_path),
                 "-m", str(KAMAILIO_SHM_MB), "-M", str(KAMAILIO_PKG_MB)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"kamailio exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}"
                )
            if options_ping(self.udp_port, "udp", host=self.host, timeout=READY_PING_INTERVAL_S):
                return
        self.stop()
        raise RuntimeError(f"kamailio did not answer within {timeout}s:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        """Stop at once: SIGKILL to the process group of the PID we started, then reap it.

        Not SIGTERM: Kamailio 5.6.3's graceful shutdown stalls for 5 s in about half of the
        runs here, and a test peer has nothing to save (its shared memory is anonymous and
        dies with the processes). For the monitor an abrupt stop is also the realistic outage.
        """
        proc, self.proc = self.proc, None
        _live.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            # The group is still led by an unreaped PID of ours, so this cannot hit strangers.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(KAMAILIO_STOP_TIMEOUT_S)
        # Children may still be exiting (holding the ports) when the main process is reaped.
        deadline = time.monotonic() + KAMAILIO_STOP_TIMEOUT_S
        while _group_has_live_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.001)
        self.starts_stopped += 1

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


def _group_has_live_members(pgid: int) -> bool:
    """True while a process of group `pgid` is not yet a zombie (zombies hold no sockets)."""
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = Path(stat).read_text()
        except OSError:
            continue  # exited while we looked
        # Fields after the parenthesised command name: state, ppid, pgrp (proc(5)).
        fields = text[text.rfind(")") + 2 :].split()
        if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False


@contextlib.contextmanager
def running_kamailio(
    workdir: Path, tls: TlsFiles, *, require_client_cert: bool = False
) -> Iterator[Kamailio]:
    """A checked, started Kamailio that is stopped by PID on exit, whatever happens."""
    binary = require_binary("kamailio")
    kam = Kamailio(workdir, tls, binary, require_client_cert=require_client_cert)
    try:
        kam.check_config()
        kam.start()
        yield kam
    finally:
        kam.stop()


@atexit.register
def _stop_leftovers() -> None:
    for kam in list(_live):
        kam.stop()


# ---------------------------------------------------------------------------------------------
# promtool: the exposition-format linter.

PROMTOOL_TIMEOUT_S = 30


@dataclass(slots=True, frozen=True)
class Promtool:
    path: str

    def check_metrics(self, text: str) -> tuple[int, str]:
        """`promtool check metrics` on `text`: (exit code, combined output); rc 0 means clean."""
        proc = subprocess.run(
            [self.path, "check", "metrics"],
            input=text, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S, check=False,
        )  # fmt: skip
        return proc.returncode, (proc.stdout + proc.stderr).strip()


def check_metrics(text: str) -> tuple[int, str]:
    return Promtool(require_binary("promtool")).check_metrics(text)
