"""Kamailio as a digest-authenticating registrar (usrloc, registrar, auth_db on db_text).

Users: `alice` and `quick` register normally, `banned` is refused with 403 after a correct
digest. A REGISTER asking for 0 < Expires < 60 gets 423 with Min-Expires: 60, except from
`quick`, whose short expiries are granted as asked (for real refreshes within seconds).
`bindings()` reads the location table through `kamcmd ul.dump`.
"""

from __future__ import annotations

import contextlib
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from peers import Kamailio, TlsFiles, kamailio_module_dir, require_binary

USERS = {"alice": "alice-pw-1", "banned": "banned-pw-2", "quick": "quick-pw-3"}
MIN_EXPIRES = 60
MAX_EXPIRES = 3600
KAMCMD_TIMEOUT_S = 10

_REGISTRAR_CFG = """\
#!KAMAILIO
debug=2
log_stderror=yes
children=1
listen=udp:{host}:{port}
mpath="{mpath}"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "textops.so"
loadmodule "db_text.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "ctl.so"
modparam("usrloc", "db_mode", 0)
modparam("registrar", "min_expires", 1)
modparam("registrar", "max_expires", {max_expires})
modparam("auth_db", "db_url", "text://{db_dir}")
modparam("auth_db", "calculate_ha1", 1)
modparam("auth_db", "password_column", "password")
modparam("auth_db", "load_credentials", "")
modparam("ctl", "binrpc", "unix:{ctl}")
request_route {{
    if (is_method("OPTIONS")) {{ sl_send_reply("200", "Keepalive"); exit; }}
    if (is_method("ACK")) {{ exit; }}
    if (!is_method("REGISTER")) {{ sl_send_reply("405", "Method Not Allowed"); exit; }}
    if (!www_authorize("$td", "subscriber")) {{ www_challenge("$td", "1"); exit; }}
    if ($au == "banned") {{ sl_send_reply("403", "Forbidden"); exit; }}
    if ($au != "quick" && is_present_hf("Expires")
            && $(hdr(Expires){{s.int}}) > 0 && $(hdr(Expires){{s.int}}) < {min_expires}) {{
        append_to_reply("Min-Expires: {min_expires}\\r\\n");
        sl_send_reply("423", "Interval Too Brief");
        exit;
    }}
    consume_credentials();
    if (!save("location")) {{ sl_reply_error(); }}
}}
"""

# db_text tables: a header line of typed columns, then rows; "version" names schema versions.
_VERSION_TABLE = "table_name(string) table_version(int)\nsubscriber:7\n"
_SUBSCRIBER_HEADER = (
    "id(int,auto) username(string) domain(string) password(string) "
    "ha1(string,null) ha1b(string,null)\n"
)


@dataclass(eq=False)
class Registrar(Kamailio):
    """A Kamailio registrar on loopback UDP; stop()/start() keep the port (induced outages)."""

    users: dict[str, str] = field(default_factory=lambda: dict(USERS))

    def _write_config(self) -> None:
        db_dir = self.workdir / "db"
        db_dir.mkdir(exist_ok=True)
        (db_dir / "version").write_text(_VERSION_TABLE)
        rows = "".join(
            f"{i}:{user}:{self.host}:{password}:::\n"
            for i, (user, password) in enumerate(self.users.items(), 1)
        )
        (db_dir / "subscriber").write_text(_SUBSCRIBER_HEADER + rows)
        self.ctl_path = self.workdir / "ctl.sock"
        self.cfg_path.write_text(
            _REGISTRAR_CFG.format(
                host=self.host,
                port=self.udp_port,
                mpath=kamailio_module_dir() + "/",
                max_expires=MAX_EXPIRES,
                min_expires=MIN_EXPIRES,
                db_dir=db_dir,
                ctl=self.ctl_path,
            )
        )

    def aor(self, user: str) -> str:
        return f"sip:{user}@{self.host}"

    def dump(self) -> str:
        """`kamcmd ul.dump`: the location table as Kamailio prints it."""
        proc = subprocess.run(
            [require_binary("kamcmd"), "-s", f"unix:{self.ctl_path}", "ul.dump"],
            capture_output=True, text=True, timeout=KAMCMD_TIMEOUT_S, check=False,
        )  # fmt: skip
        if proc.returncode != 0:
            raise RuntimeError(f"kamcmd ul.dump failed: {proc.stderr.strip()}")
        return proc.stdout

    def bindings(self, user: str) -> dict[str, int]:
        """Contact address → remaining expiry (s) of `user`'s bindings in the location table."""
        out: dict[str, int] = {}
        aor = None
        address = None
        for line in self.dump().splitlines():
            text = line.strip()
            if m := re.fullmatch(r"AoR: (\S+)", text):
                aor = m[1]
            elif m := re.fullmatch(r"Address: (\S+)", text):
                address = m[1]
            elif (m := re.fullmatch(r"Expires: (\d+)", text)) and aor == user and address:
                out[address] = int(m[1])
        return out


@contextlib.contextmanager
def running_registrar(workdir: Path, tls: TlsFiles) -> Iterator[Registrar]:
    """A checked, started registrar that is stopped by PID on exit, whatever happens."""
    binary = require_binary("kamailio")
    require_binary("kamcmd")
    registrar = Registrar(workdir, tls, binary)
    try:
        registrar.check_config()
        registrar.start()
        yield registrar
    finally:
        registrar.stop()
