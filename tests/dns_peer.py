"""A real DNS server for the tests: Debian's dnsmasq on 127.0.0.1 and a free port, answering
only from its own conf file (NAPTR, SRV, A/AAAA records). No system service is used or touched.

dnsmasq reads its conf file at start only (SIGHUP re-reads hosts files, not --srv-host and the
like), so a record change rewrites the file and restarts the process on the same port. As root
it drops to its compiled-in user after binding; the conf file is read before that.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.message
import dns.query
from peers import LOOPBACK, free_port, require_binary

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0
READY_POLL_S = 0.05
# TTL of --srv-host/--naptr-record answers (dnsmasq's default, 0, would defeat TTL tests).
DEFAULT_LOCAL_TTL = 60


def naptr(
    name: str, order: int, preference: int, service: str, replacement: str, flags: str = "s"
) -> str:
    """A --naptr-record line (no regexp: RFC 3263 NAPTRs carry a replacement)."""
    return f'naptr-record={name},{order},{preference},"{flags}","{service}","",{replacement}'


def srv(name: str, target: str, port: int, priority: int, weight: int) -> str:
    """A --srv-host line."""
    return f"srv-host={name},{target},{port},{priority},{weight}"


def host(name: str, *addresses: str, ttl: int | None = None) -> str:
    """A --host-record line: at most one IPv4 and one IPv6 address, an optional TTL."""
    fields = [name, *addresses] + ([str(ttl)] if ttl is not None else [])
    return "host-record=" + ",".join(fields)


# Every dnsmasq this process started, so an interrupted run still stops them by PID.
_live: set[Dnsmasq] = set()


@dataclass(eq=False)
class Dnsmasq:
    """One dnsmasq on loopback; `serve()` replaces its records (restarting on the same port)."""

    workdir: Path
    binary: str
    local_domains: tuple[str, ...]  # names under these answer NXDOMAIN unless configured
    local_ttl: int = DEFAULT_LOCAL_TTL
    host: str = LOOPBACK
    port: int = 0
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port("both", self.host)  # dnsmasq answers on UDP and TCP
        self.conf_path = self.workdir / "dnsmasq.conf"
        self.log_path = self.workdir / "dnsmasq.log"
        self.conf_path.write_text("")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def write_records(self, lines: Sequence[str]) -> None:
        """Write the conf file: the local domains, then `lines` (see naptr/srv/host)."""
        local = [f"local=/{d}/" for d in self.local_domains]
        self.conf_path.write_text("\n".join([*local, *lines]) + "\n")

    def serve(self, lines: Sequence[str]) -> None:
        """Answer with exactly these records from now on (a restart if it runs)."""
        self.write_records(lines)
        self.stop()
        self.start()

    def start(self, timeout: float = START_TIMEOUT_S) -> None:
        if self.pid is not None:
            return
        command = [
            self.binary, "--keep-in-foreground", "--log-facility=-", "--log-queries",
            f"--port={self.port}", f"--listen-address={self.host}", "--bind-interfaces",
            "--no-resolv", "--no-hosts", "--no-poll", "--pid-file=",
            f"--conf-file={self.conf_path}", f"--local-ttl={self.local_ttl}",
            "--cache-size=0",
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            log.write(b"=== test harness: start ===\n")
            log.flush()
            self.proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"dnsmasq exited with {self.proc.returncode}:\n{self.log()}")
            if self._answers():
                return
        self.stop()
        raise RuntimeError(f"dnsmasq did not answer within {timeout}s:\n{self.log()}")

    def _answers(self) -> bool:
        # Any reply (REFUSED included) means it is bound and serving.
        query = dns.message.make_query("trunkwatch-ready.invalid.", "A")
        try:
            dns.query.udp(query, self.host, port=self.port, timeout=READY_POLL_S)
        except (dns.exception.Timeout, OSError):
            return False
        return True

    def stop(self) -> None:
        """SIGTERM the PID we started (dnsmasq exits at once on it), then reap it."""
        proc, self.proc = self.proc, None
        _live.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""


@contextlib.contextmanager
def running_dnsmasq(
    workdir: Path,
    lines: Sequence[str],
    *,
    local_domains: Sequence[str],
    local_ttl: int = DEFAULT_LOCAL_TTL,
) -> Iterator[Dnsmasq]:
    """A dnsmasq serving `lines`, stopped by PID on exit whatever happens."""
    server = Dnsmasq(workdir, require_binary("dnsmasq"), tuple(local_domains), local_ttl)
    server.write_records(lines)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def silent_udp_port(host: str = LOOPBACK) -> Iterator[int]:
    """A bound UDP port that never answers: queries to it time out (no ICMP refusal)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, free_port("udp", host)))
        yield sock.getsockname()[1]


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        server.stop()
