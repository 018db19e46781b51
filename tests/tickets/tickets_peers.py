"""Real ticket peers on loopback: Dovecot IMAP and Request Tracker 5 (notes/test-peers.md).

Each is started in the foreground as our child, in its own session, and stopped by its
PID (the process group it leads, for RT's prefork workers) in teardown.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from base64 import b64encode
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from peers import free_port, require_binary

LOOPBACK = "127.0.0.1"
DOVECOT_START_TIMEOUT_S = 10.0
# rt-server loads RT and compiles its Mason templates before it listens: ~3.7 s measured
# here; leave room for a slow shared CI runner.
RT_START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
RT_HOME = Path("/usr/share/request-tracker5")
RT_USER, RT_PASSWORD = "root", "password"  # rt-setup-database's initial superuser
IMAP_USER, IMAP_PASSWORD = "noc", "imap-secret"


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} while starting")
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex((LOOPBACK, port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout_s}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group our child leads (start_new_session)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=STOP_TIMEOUT_S)
    except ProcessLookupError:
        proc.wait(timeout=STOP_TIMEOUT_S)


# --- Dovecot --------------------------------------------------------------------------------


@dataclass(slots=True)
class Dovecot:
    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None


_DOVECOT_CONF = """\
protocols = imap
listen = 127.0.0.1
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {d}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={d}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    port = 0
  }}
  chroot =
}}
service anvil {{
  chroot =
}}
"""


@contextmanager
def running_dovecot() -> Iterator[Dovecot]:
    """Dovecot's auth and mail processes run as the dovecot user, which cannot enter
    pytest's 0700 temp dirs: this one lives in its own 0755 directory, removed after."""
    binary = require_binary("dovecot")
    directory = Path(tempfile.mkdtemp(prefix="trunkwatch-dovecot-"))
    directory.chmod(0o755)
    for sub in ("run", "state", "home"):
        (directory / sub).mkdir(exist_ok=True)
    shutil.chown(directory / "home", "dovecot", "dovecot")
    (directory / "users").write_text(f"{IMAP_USER}:{{PLAIN}}{IMAP_PASSWORD}\n")
    port = free_port("tcp")
    conf = directory / "dovecot.conf"
    conf.write_text(_DOVECOT_CONF.format(d=directory, port=port))
    subprocess.run([binary, "-c", str(conf), "-n"], check=True, capture_output=True, timeout=30)
    peer = Dovecot(directory, port)
    peer.proc = subprocess.Popen(
        [binary, "-F", "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        _wait_port(port, peer.proc, DOVECOT_START_TIMEOUT_S, "dovecot")
        yield peer
    finally:
        _stop(peer.proc)
        shutil.rmtree(directory, ignore_errors=True)


# --- Request Tracker 5 ----------------------------------------------------------------------


@dataclass(slots=True)
class RequestTracker:
    directory: Path
    port: int
    proc: subprocess.Popen[bytes] | None = None
    started_in_s: float = 0.0

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def get_json(self, path: str) -> bytes:
        request = urllib.request.Request(
            self.url + path,
            headers={
                "Authorization": "Basic " + b64encode(f"{RT_USER}:{RT_PASSWORD}".encode()).decode()
            },
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            body: bytes = reply.read()
        return body


def _site_config(directory: Path, port: int) -> Path:
    conf = directory / "RT_SiteConfig.pm"
    conf.write_text(
        "Set($rtname, 'rt.test');\n"
        "Set($Organization, 'test');\n"
        "Set($Timezone, 'UTC');\n"
        "Set($DatabaseType, 'SQLite');\n"
        f"Set($DatabaseName, '{directory}/rtdb');\n"
        'Set($WebPath, "");\n'
        'Set($WebDomain, "127.0.0.1");\n'
        f"Set($WebPort, {port});\n"
        f'Set($WebBaseURL, "http://127.0.0.1:{port}");\n'
        "Set($CanonicalizeRedirectURLs, 0);\n"
        "Set($RestrictReferrer, 0);\n"
        "Set($MailCommand, 'mbox');\n"  # outgoing mail to an mbox file, never the network
        "Set($LogToSyslog, undef);\n"
        "Set($LogToSTDERR, 'error');\n"
        "1;\n"
    )
    (directory / "RT_SiteConfig.d").mkdir(exist_ok=True)  # empty: the system's is not read
    return conf


def _rt_env(directory: Path, conf: Path) -> dict[str, str]:
    return {
        **os.environ,
        "RT_SITE_CONFIG": str(conf),
        "RT_SITE_CONFIG_DIR": str(directory / "RT_SiteConfig.d"),
    }


RT_CUSTOM_FIELD = "TrunkwatchRef"
# Adds a ticket custom field on queue General, for the find-by-custom-field variant.
_ADD_CUSTOM_FIELD = f"""
use strict; use warnings;
use RT; RT::LoadConfig(); RT::Init();
my $queue = RT::Queue->new(RT->SystemUser); $queue->Load('General') or die "no queue General";
my $cf = RT::CustomField->new(RT->SystemUser);
my ($ok, $msg) = $cf->Create(Name => '{RT_CUSTOM_FIELD}', Type => 'Freeform', MaxValues => 1,
                             LookupType => 'RT::Queue-RT::Ticket');
die "create: $msg" unless $ok;
($ok, $msg) = $cf->AddToObject($queue);
die "apply: $msg" unless $ok;
"""


def pristine_rt_database(directory: Path) -> Path:
    """A fresh RT database (rt-setup-database --action init, ~2 s) with our custom field."""
    setup = require_binary("rt-setup-database")
    directory.mkdir(parents=True, exist_ok=True)
    conf = _site_config(directory, 1)
    env = _rt_env(directory, conf)
    subprocess.run(
        [setup, "--action", "init", "--skip-create"],
        env=env,
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=120,
    )
    subprocess.run(
        [require_binary("perl"), f"-I{RT_HOME / 'lib'}", "-e", _ADD_CUSTOM_FIELD],
        env=env,
        cwd=directory,
        check=True,
        capture_output=True,
        timeout=120,
    )
    return directory / "rtdb"


@contextmanager
def running_rt(directory: Path, pristine: Path) -> Iterator[RequestTracker]:
    server = RT_HOME / "libexec" / "rt-server"
    if not server.exists():
        require_binary("rt-server")  # skips (or fails under CI) with the usual message
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pristine, directory / "rtdb")
    port = free_port("tcp")
    conf = _site_config(directory, port)
    rt = RequestTracker(directory, port)
    started = time.monotonic()
    rt.proc = subprocess.Popen(
        # --host: without it rt-server listens on every interface.
        [str(server), "--host", LOOPBACK, "--port", str(port), "--max-workers", "2"],
        env=_rt_env(directory, conf),
        cwd=directory,
        stdout=subprocess.DEVNULL,
        stderr=(directory / "rt-server.log").open("wb"),
        start_new_session=True,
    )
    try:
        _wait_port(port, rt.proc, RT_START_TIMEOUT_S, "rt-server")
        rt.get_json("/REST/2.0/queues/all")  # answers only once RT is fully loaded
        rt.started_in_s = time.monotonic() - started
        yield rt
    finally:
        _stop(rt.proc)
