"""`trunkwatch reload`: asks the running monitor (POST /api/v1/reload) to apply its config
file again, and says what it did or why it refused."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from monitor.config import HttpSettings
from monitor.web_config import load_web_config

# Validating and applying 100,000 trunks takes seconds, not minutes.
TIMEOUT_S: Final = 300.0
EXIT_REFUSED: Final = 2  # the config is not valid (as check-config)
EXIT_FAILED: Final = 1  # the monitor could not be asked


class ReloadFailed(Exception):
    """The reload did not happen; the message says why."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def base_url(http: HttpSettings) -> str:
    """The listener as a client reaches it: a wildcard address means this machine."""
    host = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(http.listen, http.listen)
    if ":" in host:
        host = f"[{host}]"
    tls = http.web_config_file is not None and (
        load_web_config(http.web_config_file).ssl_context is not None
    )
    return f"{'https' if tls else 'http'}://{host}:{http.port}"


def request_reload(
    http: HttpSettings,
    env: Mapping[str, str],
    *,
    url: str | None = None,
    cacert: Path | None = None,
    timeout: float = TIMEOUT_S,
) -> str:
    """Ask for the reload; the monitor's report as one line, or ReloadFailed."""
    token = env.get(http.write_token_env) if http.write_token_env else None
    if not token:
        where = http.write_token_env or "http.write_token_env"
        raise ReloadFailed(f"needs the API write token: set {where} (or send the monitor SIGHUP)")
    target = f"{(url or base_url(http)).rstrip('/')}/api/v1/reload"
    request = urllib.request.Request(
        target, method="POST", data=b"", headers={"Authorization": f"Bearer {token}"}
    )
    context = ssl.create_default_context(cafile=cacert) if target.startswith("https:") else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as response:
            return summary(json.loads(response.read()))
    except urllib.error.HTTPError as exc:
        raise _refused(exc) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ReloadFailed(f"cannot reach the monitor at {target}: {reason}") from None


def _refused(exc: urllib.error.HTTPError) -> ReloadFailed:
    try:
        body: Any = json.loads(exc.read())
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("message") or f"HTTP {exc.code}"
    if exc.code == 422:
        problems = "\n".join(str(p) for p in body.get("detail") or [])
        return ReloadFailed(f"{message}\n{problems}".rstrip(), EXIT_REFUSED)
    return ReloadFailed(f"{message} (HTTP {exc.code})")


def summary(report: Mapping[str, Any]) -> str:
    """`reloaded x.yaml: 2 added, 1 removed, ...` from the monitor's report."""
    text = (
        f"reloaded {report['source']}: {report['added']} added, {report['removed']} removed, "
        f"{report['changed']} changed, {report['unchanged']} unchanged"
    )
    ended = report.get("outages_removed") or []
    if ended:
        text += f"; {len(ended)} open outage(s) ended as removed: {', '.join(ended)}"
    pending = report.get("restart_required") or []
    if pending:
        text += f"; needs a restart to apply: {', '.join(pending)}"
    return text
