"""Real call peers for the call tests: SIPp scenarios, baresip, ports and loopback aliases.

Verified configurations are in notes/test-peers.md. Every peer is started in the foreground of
a child process, its PID kept, and killed by PID at teardown. Missing binaries skip a test on a
developer machine and fail it under CI (peers.require_binary).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from peers import missing_peer, options_ping, require_binary

from probes.call_responder import CallResponder, ResponderSettings
from probes.pjsua.pool import RTP_PORTS_PER_WORKER, PoolSettings, WorkerPool
from probes.pjsua.protocol import Counts

LOOPBACK = "127.0.0.1"
# Port blocks for call tests come from here: below the kernel's ephemeral range (32768+) and
# below tests/peers.py's 20000-32000, so the two helpers never hand out the same port.
CALL_PORT_RANGE = (12_000, 20_000)
PORT_ATTEMPTS = 200
# A peer binds its port within ~0.1 s; wait this long before calling it broken.
PEER_START_TIMEOUT_S = 10.0
PEER_POLL_S = 0.02
PEER_STOP_TIMEOUT_S = 5.0

_handed_out: set[int] = set()


def alias(n: int) -> str:
    """Another loopback address (all of 127/8 is local on Linux) for the relay topology."""
    if not 2 <= n <= 254:
        raise ValueError("alias number must be 2..254")
    return f"127.0.0.{n}"


def _bindable(port: int, hosts: tuple[str, ...]) -> bool:
    for host in hosts:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def port_block(size: int, *, hosts: tuple[str, ...] = (LOOPBACK,)) -> range:
    """`size` consecutive UDP ports (even start) free on every host, not handed out before."""
    rng = random.Random(secrets.randbits(64))
    for _ in range(PORT_ATTEMPTS):
        start = rng.randrange(CALL_PORT_RANGE[0], CALL_PORT_RANGE[1] - size) & ~1
        block = range(start, start + size)
        if any(p in _handed_out for p in block):
            continue
        if all(_bindable(p, hosts) for p in block):
            _handed_out.update(block)
            return block
    raise RuntimeError(f"no free block of {size} UDP ports in {CALL_PORT_RANGE}")


def free_udp_port(hosts: tuple[str, ...] = (LOOPBACK,)) -> int:
    return port_block(1, hosts=hosts).start


def _wait_bound(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + PEER_START_TIMEOUT_S
    while _bindable(port, (LOOPBACK,)):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before binding {port}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not bind UDP {port} within {PEER_START_TIMEOUT_S} s")
        time.sleep(PEER_POLL_S)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(PEER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --- SIPp -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sipp:
    port: int
    media_port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def uri(self) -> str:
        return f"sip:service@{LOOPBACK}:{self.port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@contextlib.contextmanager
def running_sipp(
    workdir: Path,
    *,
    scenario: str | None = None,
    builtin: str = "uas",
    echo: bool = False,
    calls: int | None = None,
) -> Iterator[Sipp]:
    """SIPp as a UAS on loopback: a scenario XML text, or the built-in `uas` (with RTP echo).

    With `calls`, SIPp exits after that many calls: exit status 0 means every call went
    through the scenario as written.
    """
    sipp = require_binary("sipp")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    media = port_block(4).start
    args = [sipp, "-i", LOOPBACK, "-p", str(port), "-mi", LOOPBACK, "-mp", str(media)]
    if scenario is not None:
        path = workdir / "scenario.xml"
        path.write_text(scenario)
        args += ["-sf", str(path)]
    else:
        args += ["-sn", builtin]
    if echo:
        args.append("-rtp_echo")
    if calls is not None:
        args += ["-m", str(calls)]
    args += ["-nostdin", "-trace_err", "-error_file", str(workdir / "errors.log")]
    log = workdir / "sipp.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=workdir)
    try:
        _wait_bound(port, proc, "sipp")
        yield Sipp(port=port, media_port=media, proc=proc, log=log)
    finally:
        _stop(proc)


_RESPONSE_HEADERS = """\
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:service@[local_ip]:[local_port];transport=[transport]>"""

# A registrar's responses carry the registered Contact, not one of their own.
_REGISTER_HEADERS = _RESPONSE_HEADERS.rsplit("\n", 1)[0]

_SDP = """\
v=0
o=sipp 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP {pt}
a=rtpmap:{pt} {codec}/{rate}
"""

_OK_WITH_SDP = """\
  <send>
    <![CDATA[
SIP/2.0 200 OK
{headers}
Content-Type: application/sdp
Content-Length: [len]

{body}
    ]]>
  </send>
"""

_CAPTURE_DIALOG = """\
  <recv request="INVITE" rrs="true">
    <action>
      <ereg regexp=".*" search_in="hdr" header="From:" assign_to="remote_party"/>
      <ereg regexp=".*" search_in="hdr" header="To:" assign_to="local_party"/>
    </action>
  </recv>
"""

# A request SIPp sends inside the dialog it answered (From/To swapped, its own CSeq space).
_IN_DIALOG_REQUEST = """\
  <send retrans="500">
    <![CDATA[
{method} [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: [$local_party];tag=[pid]SIPpTag01[call_number]
To: [$remote_party]
Call-ID: [call_id]
CSeq: {cseq} {method}
Contact: <sip:service@[local_ip]:[local_port];transport=[transport]>
Max-Forwards: 70
{extra}Content-Length: [len]

{body}
    ]]>
  </send>
"""


def _scenario(name: str, body: str) -> str:
    head = '<?xml version="1.0" encoding="ISO-8859-1" ?>'
    return f'{head}\n<scenario name="{name}">\n{body}</scenario>\n'


def _ok(body: str) -> str:
    return _OK_WITH_SDP.format(headers=_RESPONSE_HEADERS, body=body)


def reject_scenario(status: int, reason: str) -> str:
    """Answer the INVITE with a final error status (after 100 Trying), take the ACK."""
    return _scenario(
        f"reject-{status}",
        f"""\
  <recv request="INVITE"/>
  <send>
    <![CDATA[
SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <send>
    <![CDATA[
SIP/2.0 {status} {reason}
{_RESPONSE_HEADERS}
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
""",
    )


def no_answer_scenario() -> str:
    """180 Ringing for ever; the caller's CANCEL gets 200, the INVITE 487 (RFC 3261 §9.2)."""
    return _scenario(
        "no-answer",
        f"""\
  <recv request="INVITE">
    <action>
      <ereg regexp="CSeq: ([0-9]+)" search_in="msg" assign_to="junk,invite_cseq"/>
    </action>
  </recv>
  <send>
    <![CDATA[
SIP/2.0 180 Ringing
{_RESPONSE_HEADERS}
Content-Length: 0

    ]]>
  </send>
  <recv request="CANCEL"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
{_RESPONSE_HEADERS}
Content-Length: 0

    ]]>
  </send>
  <send>
    <![CDATA[
SIP/2.0 487 Request Terminated
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SIPpTag01[call_number]
[last_Call-ID:]
CSeq: [$invite_cseq] INVITE
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
  <Reference variables="junk"/>
""",
    )


def answer_scenario(*, sdp: str | None = None, then: str = "wait_bye") -> str:
    """Answer 200 with `sdp` (default: PCMU at SIPp's media port) and then:

    - `wait_bye`: wait for the caller's BYE;
    - `early_bye`: hang up after 1.5 s;
    - `reinvite`: after 1 s send a re-INVITE (same SDP), then wait for the caller's BYE.
    """
    body = sdp if sdp is not None else _SDP.format(pt=0, codec="PCMU", rate=8000)
    # Waiting for the BYE, the ACK is optional: a caller that cannot use the answer's SDP
    # may send its BYE first.
    ack_optional = ' optional="true"' if then == "wait_bye" else ""
    steps = _CAPTURE_DIALOG + _ok(body) + f'  <recv request="ACK"{ack_optional}/>\n'
    if then == "early_bye":
        steps += '  <pause milliseconds="1500"/>\n'
        steps += _IN_DIALOG_REQUEST.format(method="BYE", cseq=1, extra="", body="")
        steps += '  <recv response="200"/>\n'
    elif then == "reinvite":
        steps += '  <pause milliseconds="1000"/>\n'
        steps += _IN_DIALOG_REQUEST.format(
            method="INVITE", cseq=1, extra="Content-Type: application/sdp\n", body=body
        )
        steps += '  <recv response="100" optional="true"/>\n  <recv response="200"/>\n'
        steps += _IN_DIALOG_REQUEST.replace(' retrans="500"', "").format(
            method="ACK", cseq=1, extra="", body=""
        )
        then = "wait_bye"
    if then == "wait_bye":
        steps += """\
  <recv request="BYE"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
"""
    steps += '  <Reference variables="remote_party,local_party"/>\n'
    return _scenario(f"answer-{then}", steps)


def sdp_with(pt: int, codec: str, rate: int = 8000) -> str:
    """SIPp's answer SDP offering one codec (for a codec-mismatch answer)."""
    return _SDP.format(pt=pt, codec=codec, rate=rate)


MALFORMED_SDP = "v=0\nthis is not SDP at all\nm=audio port-is-not-a-number RTP/AVP 0\n"


# --- baresip ----------------------------------------------------------------------------------

_BARESIP_CONFIG = """\
poll_method\t\tepoll
sip_listen\t\t{host}:{port}
net_interface\t\t{host}
audio_player\t\taubridge,loop
audio_source\t\taubridge,loop
audio_alert\t\taubridge,loop
audio_srate\t\t8000
audio_channels\t\t1
rtp_ports\t\t{rtp_min}-{rtp_max}
module_path\t\t/usr/lib/baresip/modules
module\t\t\tg711.so
module\t\t\taubridge.so
module_app\t\taccount.so
"""
_BARESIP_ACCOUNTS = "<sip:echo@{host}>;regint=0;answermode=auto;audio_codecs=PCMU,PCMA\n"


@dataclass(slots=True)
class Baresip:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def uri(self) -> str:
        return f"sip:echo@{LOOPBACK}:{self.port}"


@contextlib.contextmanager
def running_baresip(workdir: Path) -> Iterator[Baresip]:
    """baresip answering automatically and echoing audio (aubridge loop), G.711 only."""
    baresip = require_binary("baresip")
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_udp_port()
    rtp = port_block(8)
    (workdir / "config").write_text(
        _BARESIP_CONFIG.format(host=LOOPBACK, port=port, rtp_min=rtp.start, rtp_max=rtp.stop - 1)
    )
    (workdir / "accounts").write_text(_BARESIP_ACCOUNTS.format(host=LOOPBACK))
    log = workdir / "baresip.out"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [baresip, "-f", str(workdir)], stdin=subprocess.DEVNULL, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + PEER_START_TIMEOUT_S
        while options_ping(port, timeout=0.2) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"baresip did not come up: {log.read_text(errors='replace')}")
        yield Baresip(port=port, proc=proc, log=log)
    finally:
        _stop(proc)


# --- trunkwatch's own call machinery on loopback ------------------------------------------------

# Conference bridge ports of an idle worker: the master (null sound device) port and the player.
IDLE_CONF_PORTS = 2


def require_pjsua2() -> None:
    """pjsua2 is the `trunkwatch[calls]` extra: missing, the call tests skip (fail under CI)."""
    if importlib.util.find_spec("pjsua2") is None:
        missing_peer("pjsua2 is not installed (pip install 'trunkwatch[calls]')")


@contextlib.asynccontextmanager
async def call_pool(
    *, max_calls: int = 4, media_public_address: str | None = None, **overrides: Any
) -> AsyncIterator[WorkerPool]:
    """A started WorkerPool on loopback with its own RTP port blocks."""
    require_pjsua2()
    settings = PoolSettings(max_calls=max_calls, **overrides)
    workers = settings.max_workers
    hosts = (LOOPBACK, media_public_address) if media_public_address else (LOOPBACK,)
    block = port_block(RTP_PORTS_PER_WORKER * workers, hosts=hosts)
    settings = replace(
        settings,
        sip_address=LOOPBACK,
        media_address=LOOPBACK,
        media_public_address=media_public_address,
        rtp_port_min=block.start,
    )
    pool = WorkerPool(settings)
    await pool.start()
    try:
        yield pool
    finally:
        await pool.stop()


@contextlib.asynccontextmanager
async def call_responder(**overrides: Any) -> AsyncIterator[CallResponder]:
    """A started CallResponder on loopback (free SIP port, its own RTP block)."""
    require_pjsua2()
    hosts = (
        (LOOPBACK, overrides["media_public_address"])
        if overrides.get("media_public_address")
        else (LOOPBACK,)
    )
    rtp = port_block(16, hosts=hosts)
    settings = ResponderSettings(
        address=LOOPBACK,
        port=free_udp_port(),
        rtp_port=rtp.start,
        rtp_port_range=len(rtp),
        **overrides,
    )
    responder = CallResponder(settings)
    await responder.start()
    try:
        yield responder
    finally:
        await responder.stop()


def assert_idle(counts: Counts) -> None:
    """No call, pjsua call slot, pjsua2 Call object or recorder left behind."""
    assert (counts.calls, counts.pj_calls, counts.pj_call_objects, counts.recorders) == (
        0,
        0,
        0,
        0,
    ), counts
    assert counts.conf_ports == IDLE_CONF_PORTS, counts


async def assert_pool_idle(pool: WorkerPool, within_s: float = 2.0) -> None:
    """Every worker idle, allowing `within_s` for a call pjsua2 is still tearing down (a
    refused incoming call's object outlives the caller's final answer by a few ms)."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        counts = await pool.counts()
        assert counts, "no worker running"
        try:
            for c in counts:
                assert_idle(c)
            return
        except AssertionError:
            if asyncio.get_running_loop().time() > deadline:
                raise
        await asyncio.sleep(0.05)


def auth_invite_scenario(username: str, password: str, realm: str = "trunkwatch.test") -> str:
    """Challenge the INVITE with 401 (RFC 3261 §22.2; SIPp's verifyauth reads only the
    Authorization header, not a 407's Proxy-Authorization), verify the retried INVITE's digest:
    a valid one is answered 200 (with SDP; then wait for BYE), an invalid one 403."""
    return _scenario(
        "auth-invite",
        f"""\
  <recv request="INVITE"/>
  <send>
    <![CDATA[
SIP/2.0 401 Unauthorized
{_RESPONSE_HEADERS}
WWW-Authenticate: Digest realm="{realm}", nonce="4711abcdef", algorithm=MD5, qop="auth"
Content-Length: 0

    ]]>
  </send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <verifyauth assign_to="authvalid" username="{username}" password="{password}"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="refused">
    <![CDATA[
SIP/2.0 403 Forbidden
{_RESPONSE_HEADERS}
Content-Length: 0

    ]]>
  </send>
  <label id="good"/>
{_ok(_SDP.format(pt=0, codec="PCMU", rate=8000))}  <recv request="ACK"/>
  <recv request="BYE"/>
  <send next="done">
    <![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

    ]]>
  </send>
  <label id="refused"/>
  <recv request="ACK"/>
  <label id="done"/>
""",
    )


def registrar_scenario(username: str, password: str, realm: str = "trunkwatch.test") -> str:
    """A registrar: challenge REGISTER with 401, then 200 for a valid digest, 403 otherwise."""
    return _scenario(
        "registrar",
        f"""\
  <recv request="REGISTER"/>
  <send>
    <![CDATA[
SIP/2.0 401 Unauthorized
{_REGISTER_HEADERS}
WWW-Authenticate: Digest realm="{realm}", nonce="8675309abc", algorithm=MD5
Content-Length: 0

    ]]>
  </send>
  <recv request="REGISTER">
    <action>
      <verifyauth assign_to="authvalid" username="{username}" password="{password}"/>
    </action>
  </recv>
  <nop hide="true" test="authvalid" next="good"/>
  <send next="done">
    <![CDATA[
SIP/2.0 403 Forbidden
{_REGISTER_HEADERS}
Content-Length: 0

    ]]>
  </send>
  <label id="good"/>
  <send>
    <![CDATA[
SIP/2.0 200 OK
{_REGISTER_HEADERS}
[last_Contact:];expires=300
Content-Length: 0

    ]]>
  </send>
  <label id="done"/>
""",
    )
