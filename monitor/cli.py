"""The `trunkwatch` command line."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer

from monitor import __version__, sla_cli
from monitor.tickets.cli import tickets_app
from probes.hostport import split_host_port

if TYPE_CHECKING:
    from probes.probe import Probe
    from probes.result import ProbeResult

app = typer.Typer(
    help="trunkwatch: SIP trunk availability monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
probe_app = typer.Typer(help="One-shot probes, like sipsak.", no_args_is_help=True)
sip_app = typer.Typer(help="SIP message tools.", no_args_is_help=True)
app.add_typer(probe_app, name="probe")
app.add_typer(sip_app, name="sip")
app.add_typer(sla_cli.sla_app, name="sla")
app.add_typer(sla_cli.evidence_app, name="evidence")
app.add_typer(sla_cli.maintenance_app, name="maintenance")
app.add_typer(sla_cli.exclude_app, name="exclude")
app.add_typer(sla_cli.outages_app, name="outages")
app.add_typer(sla_cli.audit_app, name="audit")
app.add_typer(tickets_app, name="tickets")

T = TypeVar("T")
EXIT_CONFIG = 2

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The YAML config file.")]


def _run(coro: Coroutine[Any, Any, T], *, use_uvloop: bool = True) -> T:
    # Only the import may fall back: an ImportError raised while the command runs (a missing
    # database driver, say) is the command's own error, not a missing uvloop.
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass  # the stock loop is a supported fallback
        else:
            return uvloop.run(coro)
    return asyncio.run(coro)


def _stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)


def _reload_on_sighup(reload: Callable[[], Coroutine[Any, Any, object]]) -> None:
    """SIGHUP (systemd's ExecReload) applies the config file again; the outcome is logged."""
    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[object]] = set()  # the loop keeps only weak references

    def on_hup() -> None:
        task = loop.create_task(reload(), name="reload")
        pending.add(task)
        task.add_done_callback(pending.discard)

    with contextlib.suppress(NotImplementedError, RuntimeError):
        loop.add_signal_handler(signal.SIGHUP, on_hup)


def _load(path: Path) -> Any:
    from monitor.config import ConfigError, load_config

    try:
        return load_config(path)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from None


@app.callback()
def main_options(
    log_format: Annotated[
        str, typer.Option("--log-format", help="auto (JSON unless a TTY), json or console.")
    ] = "auto",
    log_level: Annotated[str, typer.Option("--log-level")] = "info",
) -> None:
    from monitor.log import configure_logging

    json_logs = None if log_format == "auto" else log_format == "json"
    configure_logging(json=json_logs, level=log_level)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"trunkwatch {__version__}")


@app.command()
def run(config: ConfigOpt) -> None:
    """Monitor the trunks in a config file until SIGINT/SIGTERM."""
    from sqlalchemy.exc import SQLAlchemyError

    from monitor import heap
    from monitor.app import Monitor
    from monitor.log import get_logger
    from monitor.store.engine import describe_store_error

    heap.return_large_frees()
    cfg = _load(config)
    # The config lives as long as the monitor: out of the cyclic GC's passes from here, as
    # start-up's objects are after it (heap.settle). A pass over its objects in between
    # took ~0.1 s at 100,000 trunks. What a reload replaces is freed by reference counts.
    heap.freeze()
    if not cfg.trunks:
        get_logger("trunkwatch").warning("no_trunks", config=str(config))

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        monitor = Monitor(cfg)
        try:
            await monitor.start()
        except (SQLAlchemyError, OSError) as exc:
            await monitor.stop()
            typer.echo(f"{config}: store.url: {describe_store_error(exc)}", err=True)
            raise typer.Exit(EXIT_CONFIG) from None
        _reload_on_sighup(monitor.reload)
        try:
            await stop.wait()
        finally:
            await monitor.stop()

    _run(main(), use_uvloop=cfg.scheduler.uvloop)
    _exit_at_once()


def _exit_at_once() -> NoReturn:
    """Exit 0 without freeing the heap object by object: the monitor has written and closed
    everything (its last line is logged). At 100,000 trunks that teardown took 1.5–1.8 s
    of a 2.7–6.8 s stop (bench/scale.py); the kernel frees the memory at once."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(0)


@app.command("reload")
def reload_command(
    config: ConfigOpt,
    url: Annotated[
        str | None,
        typer.Option(help="The monitor's base URL (default: from http.listen and http.port)."),
    ] = None,
    cacert: Annotated[
        Path | None, typer.Option(help="CA file for an https listener (default: system CAs).")
    ] = None,
) -> None:
    """Make the running monitor apply its config file again (POST /api/v1/reload).

    The file is checked here first; the monitor checks it again with its secrets and keeps
    its running config when it is not valid. Needs the write token (http.write_token_env).
    """
    from monitor.config import ConfigError, load_config
    from monitor.reload_client import ReloadFailed, request_reload

    try:
        cfg = load_config(config, secrets=False)
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    try:
        typer.echo(request_reload(cfg.http, os.environ, url=url, cacert=cacert))
    except ReloadFailed as exc:
        typer.echo(f"{config}: reload: {exc}", err=True)
        raise typer.Exit(exc.exit_code) from None


@app.command("check-config")
def check_config(config: ConfigOpt) -> None:
    """Validate a config file; exit 2 naming file, line, field and problem if it is wrong."""
    from monitor.store.engine import store_problem

    cfg = _load(config)
    problem = store_problem(cfg.store.url)
    if problem is not None:
        typer.echo(f"{config}: store.url: {problem}", err=True)
        raise typer.Exit(EXIT_CONFIG)
    typer.echo(f"{config}: OK: agent {cfg.agent}, {len(cfg.trunks)} trunk(s)")
    if not cfg.trunks:
        typer.echo(f"{config}: warning: no trunks: nothing will be monitored", err=True)
    lines = [f"  {t.name}: {t.uri} every {t.interval:g}s" for t in cfg.trunks]
    for e in cfg.endpoints:
        where = e.host if e.port is None else f"{e.host}:{e.port}"
        lines.append(f"  {e.name}: {e.kind} {where} every {e.interval:g}s (endpoint, {e.role})")
    if lines:  # one write: 100,000 trunks echoed line by line took ~1 s
        typer.echo("\n".join(lines))


@app.command()
def migrate(config: ConfigOpt) -> None:
    """Bring the store's schema to this version's, then exit (`run` does it too, if needed).

    Run before the agents (the systemd unit's ExecStartPre): a daemon that finds its
    schema current never loads Alembic, which stays ~10 MB of its memory once loaded.
    """
    from sqlalchemy.exc import SQLAlchemyError

    from monitor.store.engine import create_engine, describe_store_error, writing
    from monitor.store.migrations import HEAD_REVISION, upgrade_to_head

    cfg = _load(config)

    async def main() -> str | None:
        engine = create_engine(cfg.store.url)
        try:
            async with writing(engine) as conn:
                return await conn.run_sync(upgrade_to_head)
        finally:
            await engine.dispose()

    try:
        before = _run(main())
    except (SQLAlchemyError, OSError) as exc:
        typer.echo(f"{config}: store.url: {describe_store_error(exc)}", err=True)
        raise typer.Exit(EXIT_CONFIG) from None
    if before == HEAD_REVISION:
        typer.echo(f"{config}: store schema already at {HEAD_REVISION}")
    else:
        typer.echo(f"{config}: store schema migrated from {before or 'empty'} to {HEAD_REVISION}")


@app.command()
def demo(
    duration: Annotated[
        float | None, typer.Option(help="Stop after this many seconds (default: Ctrl-C).")
    ] = None,
    port: Annotated[int, typer.Option(help="HTTP port for /metrics.")] = 9465,
    silent_at: Annotated[float, typer.Option(help="Seconds into each minute to go silent.")] = 10.0,
    silent_for: Annotated[float, typer.Option(help="Seconds the responder stays silent.")] = 20.0,
    period: Annotated[float, typer.Option(help="Seconds between scripted outages.")] = 60.0,
    interval: Annotated[float, typer.Option(help="Probe interval in seconds.")] = 1.0,
    folder: Annotated[
        Path,
        typer.Option("--dir", help="Where the demo keeps its config, store and evidence key."),
    ] = Path("trunkwatch-demo"),
) -> None:
    """Monitor a built-in responder on 127.0.0.1 that goes silent on a schedule."""
    from monitor.demo import DemoScript, run_demo

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        if duration is not None:
            asyncio.get_running_loop().call_later(duration, stop.set)
        await run_demo(
            stop,
            http_port=port,
            folder=folder,
            script=DemoScript(
                interval=interval, silent_at=silent_at, silent_for=silent_for, period=period
            ),
        )

    _run(main())


@app.command()
def responder(
    listen: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="SIP port (UDP and TCP).")] = 5060,
    calls: Annotated[
        bool, typer.Option("--calls", help="Also answer G.711 test calls (pjsua2).")
    ] = False,
    mode: Annotated[
        str, typer.Option(help="With --calls: echo the received audio, or play the tone.")
    ] = "echo",
    ring: Annotated[float, typer.Option(help="With --calls: seconds to ring first.")] = 0.0,
    rtp_port: Annotated[int, typer.Option(help="With --calls: first RTP port.")] = 30000,
) -> None:
    """The far end of a test: answers OPTIONS, and with --calls answers test calls too."""
    if mode not in ("echo", "tone"):
        typer.echo(f"error: --mode must be echo or tone, not {mode!r}", err=True)
        raise typer.Exit(2)

    async def main() -> None:
        stop = asyncio.Event()
        _stop_on_signals(stop)
        if not calls:
            from probes.responder import run_responder

            await run_responder(listen, port, stop)
            return
        # pjsua2 answers OPTIONS on its own SIP socket as well as the calls.
        from probes.call_responder import CallResponder, ResponderSettings

        far_end = CallResponder(
            ResponderSettings(address=listen, port=port, mode=mode, ring_s=ring, rtp_port=rtp_port)  # type: ignore[arg-type]
        )
        await far_end.start()
        typer.echo(f"answering calls at {far_end.uri}")
        try:
            await stop.wait()
        finally:
            await far_end.stop()

    _run(main(), use_uvloop=not calls)


def _password_from(variable: str) -> str:
    """The password in environment variable `variable`; exit 2 (usage) when it is not set."""
    password = os.environ.get(variable)
    if password is None:
        typer.echo(f"error: environment variable {variable} is not set", err=True)
        raise typer.Exit(2)
    return password


@probe_app.command("call")
def probe_call(
    uri: Annotated[str, typer.Argument(help="sip:number@host[:port]: whom to call")],
    codecs: Annotated[str, typer.Option(help="G.711 codecs in offer order.")] = "PCMU,PCMA",
    seconds: Annotated[float, typer.Option(help="Hang up this long after the answer.")] = 10.0,
    answer_timeout: Annotated[float, typer.Option(help="Give up unanswered after.")] = 30.0,
    username: Annotated[str | None, typer.Option(help="Digest user name.")] = None,
    password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the password.")
    ] = None,
    profile: Annotated[
        str, typer.Option(help="Threshold profile: client_to_edge or edge_to_edge.")
    ] = "client_to_edge",
    no_tone: Annotated[
        bool, typer.Option("--no-tone", help="The far end does not echo the tone.")
    ] = False,
) -> None:
    """Place one G.711 test call; print PDD, answer time, MOS, jitter, loss, burst loss, RTT."""
    from probes.media.thresholds import BUILTIN_PROFILES
    from probes.pjsua import pjsua2_missing

    missing = pjsua2_missing()
    if missing is not None:
        typer.echo(f"error: {missing}", err=True)
        raise typer.Exit(2)
    from probes.call import CallSettings, one_call, summary_lines

    password = None if password_env is None else _password_from(password_env)
    if profile not in BUILTIN_PROFILES:
        typer.echo(f"error: unknown profile {profile!r}", err=True)
        raise typer.Exit(2)
    try:
        settings = CallSettings(
            trunk="cli",
            uri=uri,
            codecs=tuple(c.strip().upper() for c in codecs.split(",") if c.strip()),
            max_call_s=seconds,
            answer_timeout_s=answer_timeout,
            username=username,
            password=password,
            expect_tone=not no_tone,
            profile=BUILTIN_PROFILES[profile],
        )
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    result = _run(one_call(settings), use_uvloop=False)
    for line in summary_lines(result):
        typer.echo(line)
    raise typer.Exit(0 if result.ok else 1)


@probe_app.command("options")
def probe_options(
    uri: Annotated[str, typer.Argument(help="sip:host[:port][;transport=udp|tcp|tls]")],
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the answer.")] = 4.0,
    username: Annotated[str | None, typer.Option(help="Digest user name.")] = None,
    password_env: Annotated[
        str | None, typer.Option(help="Environment variable holding the password.")
    ] = None,
    ca_file: Annotated[Path | None, typer.Option(help="CA bundle for TLS.")] = None,
    insecure: Annotated[bool, typer.Option(help="Do not verify the TLS certificate.")] = False,
    verbose: Annotated[bool, typer.Option("-v", help="Print the request and response.")] = False,
) -> None:
    """Send one OPTIONS and print outcome, status line, RTT and key headers."""
    from probes.options import OptionsSettings, probe_options_once
    from probes.sip.errors import SipParseError

    password = None if password_env is None else _password_from(password_env)
    try:
        settings = OptionsSettings(
            trunk="cli",
            uri=uri,
            timeout=timeout,
            username=username,
            password=password,
            tls_verify=not insecure,
            tls_ca_file=ca_file,
            user_agent=f"trunkwatch/{__version__}",
        )
        result, probe = _run(probe_options_once(settings), use_uvloop=False)
    except (SipParseError, ValueError) as exc:
        typer.echo(f"error: {uri}: {exc}", err=True)
        raise typer.Exit(2) from None
    if verbose and probe.last_request:
        typer.echo("--- request ---")
        typer.echo(probe.last_request.decode("utf-8", "replace").rstrip())
    response = probe.last_response
    if verbose and response is not None:
        typer.echo("--- response ---")
        typer.echo(f"SIP/2.0 {response.status} {response.reason}")
        for name, value in response.headers:
            typer.echo(f"{name}: {value}")
        typer.echo("---")
    typer.echo(f"outcome: {result.outcome.value}")
    if result.status_code is not None:
        typer.echo(f"status: {result.status_code} {result.reason or ''}".rstrip())
    if result.rtt_ns is not None:
        typer.echo(f"rtt: {result.rtt_ns / 1e6:.3f} ms")
    if result.duration_ns is not None:
        typer.echo(f"duration: {result.duration_ns / 1e6:.3f} ms")
    if result.detail:
        typer.echo(f"detail: {result.detail}")
    if response is not None:
        for name in ("Server", "User-Agent", "Allow", "Supported", "Accept", "Contact"):
            header = response.headers.get(name)
            if header is not None:
                typer.echo(f"{name.lower()}: {header}")
    raise typer.Exit(0 if result.ok else 1)


@probe_app.command("register")
def probe_register(
    uri: Annotated[str, typer.Argument(help="Address-of-record: sip:user@domain[:port]")],
    password_env: Annotated[str, typer.Option(help="Environment variable holding the password.")],
    username: Annotated[
        str | None, typer.Option(help="Digest user name (default: the AoR's user).")
    ] = None,
    expires: Annotated[int, typer.Option(min=1, help="Requested lifetime, seconds.")] = 300,
    registrar: Annotated[
        str | None,
        typer.Option(metavar="HOST:PORT", help="Where to send (default: the AoR's domain)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each attempt.")] = 4.0,
) -> None:
    """REGISTER once, print outcome, status, granted expiry and bindings, then un-REGISTER."""
    from probes.register import RegisterSettings, register_once
    from probes.register_state import RegisterOutcome
    from probes.sip.errors import SipParseError
    from probes.sip.uri import SipUri

    password = _password_from(password_env)
    try:
        aor = SipUri.parse(uri)
        target = split_host_port(registrar, 5060) if registrar is not None else None
        user = username or aor.user
        if user is None:
            raise ValueError("no user name: give --username or a user in the URI")
        settings = RegisterSettings(
            trunk="cli",
            aor=uri,
            username=user,
            password=password,
            registrar=target,
            expires=expires,
            timeout=timeout,
            user_agent=f"trunkwatch/{__version__}",
        )
        shot = _run(register_once(settings), use_uvloop=False)
    except (SipParseError, ValueError) as exc:
        typer.echo(f"error: {uri}: {exc}", err=True)
        raise typer.Exit(2) from None
    result, attempt = shot.result, shot.attempt
    registered = attempt is not None and attempt.outcome is RegisterOutcome.OK
    typer.echo(f"outcome: {attempt.outcome.value if attempt else result.outcome.value}")
    typer.echo(f"status: {'registered' if registered else 'not registered'}")
    if result.status_code is not None:
        typer.echo(f"response: {result.status_code} {result.reason or ''}".rstrip())
    if registered and attempt is not None:
        typer.echo(f"expires: {attempt.expires} s")
        for binding in attempt.bindings:
            lifetime = "" if binding.expires is None else f";expires={binding.expires}"
            typer.echo(f"binding: <{binding.uri}>{lifetime}")
    if result.rtt_ns is not None:
        typer.echo(f"rtt: {result.rtt_ns / 1e6:.3f} ms")
    if attempt is not None and attempt.detail:
        typer.echo(f"detail: {attempt.detail}")
    elif attempt is None and result.detail:
        typer.echo(f"detail: {result.detail}")
    unregister = shot.unregister
    if unregister is not None:
        status = "" if unregister.status is None else f" ({unregister.status})"
        typer.echo(f"unregister: {unregister.outcome.value}{status}")
    raise typer.Exit(0 if registered else 1)


@probe_app.command("cert")
def probe_cert(
    target: Annotated[str, typer.Argument(metavar="HOST[:PORT]", help="Server (port 443).")],
    sni: Annotated[
        str | None, typer.Option(help="TLS server name, the name checked (default: HOST).")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="Trusted CA certificates, PEM (default: system store).")
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds for connect + handshake.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Fetch a server's TLS certificate chain and inspect it: exit 0 when valid, 1 when not."""
    import json
    from datetime import UTC, datetime

    from probes.tls.anchors import AnchorLoadError, load_trust_anchors
    from probes.tls.cert import inspect_chain
    from probes.tls.fetch import CertFetchError, fetch_chain
    from probes.tls.report import CertInspectError

    try:
        host, port = split_host_port(target, 443)
    except ValueError as exc:
        typer.echo(f"error: {target}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        anchors = load_trust_anchors(ca_file)
    except AnchorLoadError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    name = sni if sni is not None else host
    try:
        chain = _run(fetch_chain(host, port, sni=name, timeout=timeout), use_uvloop=False)
        report = inspect_chain(chain, name, anchors, datetime.now(UTC))
    except CertFetchError as exc:
        typer.echo(f"error: {host}:{port}: {exc}", err=True)
        raise typer.Exit(2) from None
    except CertInspectError as exc:
        typer.echo(f"error: {host}:{port}: {exc}", err=True)
        raise typer.Exit(2) from None
    fields = report.as_dict()
    if as_json:
        typer.echo(json.dumps(fields, sort_keys=True))
    else:
        for key, value in fields.items():
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value) or "-"
            typer.echo(f"{key}: {'-' if value is None else value}")
    raise typer.Exit(0 if report.valid else 1)


def _endpoint_fields(result: ProbeResult) -> dict[str, object]:
    """An endpoint probe's figures for printing: milliseconds, ratios, the outcome."""

    def ms(seconds: float | None) -> float | None:
        return None if seconds is None else round(seconds * 1000, 3)

    m = result.endpoint
    fields: dict[str, object] = {"outcome": result.outcome.value}
    if result.status_code is not None:
        fields["status"] = result.status_code
        fields["reason"] = result.reason
    if m is not None:
        fields.update(
            {"connect_ms": ms(m.connect_s), "tls_ms": ms(m.tls_s), "ttfb_ms": ms(m.ttfb_s)}
        )
        if m.echo_sent:
            fields.update(
                sent=m.echo_sent,
                received=m.echo_received,
                loss_ratio=m.loss_ratio,
                rtt_min_ms=ms(m.rtt_min_s),
                rtt_avg_ms=ms(m.rtt_avg_s),
                rtt_max_ms=ms(m.rtt_max_s),
            )
        fields["total_ms"] = ms(m.total_s)
    if result.detail:
        fields["detail"] = result.detail
    return {k: v for k, v in fields.items() if v is not None}


def _endpoint_report(probe: Probe, as_json: bool) -> None:
    """Run one endpoint probe, print its figures, exit 0 when it succeeded, 1 when not."""
    import json

    from probes.probe import run_once

    async def once() -> ProbeResult:
        try:
            return await run_once(probe)
        finally:
            await probe.close()

    result = _run(once(), use_uvloop=False)
    fields = _endpoint_fields(result)
    if as_json:
        typer.echo(json.dumps(fields, sort_keys=True))
    else:
        for key, value in fields.items():
            typer.echo(f"{key}: {value}")
    raise typer.Exit(0 if result.ok else 1)


def _usage_error(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


@probe_app.command("https")
def probe_https(
    url: Annotated[str, typer.Argument(help="https://HOST[:PORT]/PATH (http:// without TLS).")],
    sni: Annotated[
        str | None, typer.Option(help="TLS server name, the name verified (default: HOST).")
    ] = None,
    ca_file: Annotated[
        Path | None, typer.Option(help="Trusted CA certificates, PEM (default: system store).")
    ] = None,
    insecure: Annotated[bool, typer.Option(help="Do not verify the certificate.")] = False,
    expect_status: Annotated[
        str, typer.Option(help="Status codes that count as alive, e.g. '2xx,3xx' or '200'.")
    ] = "2xx,3xx",
    timeout: Annotated[float, typer.Option(help="Seconds for the whole request.")] = 10.0,
    as_json: JsonOpt = False,
) -> None:
    """GET a URL: status code, connect, TLS, time to first byte and total time. Exit 0 when
    the status is alive, 1 when not (or no answer)."""
    from urllib.parse import urlsplit

    from monitor.config import parse_alive_codes
    from probes.https import HttpsProbe
    from probes.task_probe import client_context

    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        _usage_error(f"{url}: expected https://HOST[:PORT]/PATH")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        alive = parse_alive_codes(expect_status)
        tls = client_context(ca_file, verify=not insecure) if parts.scheme == "https" else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        probe = HttpsProbe(
            "cli", parts.hostname, port, path=path, sni=sni, tls=tls, alive_status=alive,
            timeout=timeout,
        )  # fmt: skip
    except (ValueError, OSError) as exc:
        _usage_error(f"{url}: {exc}")
    _endpoint_report(probe, as_json)


@probe_app.command("tcp")
def probe_tcp(
    target: Annotated[str, typer.Argument(metavar="HOST:PORT", help="Where to connect.")],
    timeout: Annotated[float, typer.Option(help="Seconds for the connect.")] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Open a TCP connection and close it: the connect time. Exit 0 when connected, 1 when not."""
    from probes.tcp_connect import ConnectProbe

    try:
        host, port = split_host_port(target, 0)
    except ValueError as exc:
        _usage_error(f"{target}: {exc}")
    if port == 0:
        _usage_error(f"{target}: a port is needed (HOST:PORT)")
    _endpoint_report(ConnectProbe("cli", host, port, timeout=timeout), as_json)


@probe_app.command("icmp")
def probe_icmp(
    host: Annotated[str, typer.Argument(help="Host name, IPv4 or IPv6 address.")],
    count: Annotated[int, typer.Option(min=1, max=100, help="Echoes to send.")] = 5,
    spacing: Annotated[float, typer.Option(help="Seconds between echoes.")] = 0.2,
    timeout: Annotated[float, typer.Option(help="Seconds for the whole round.")] = 5.0,
    as_json: JsonOpt = False,
) -> None:
    """Send ICMP echoes over an unprivileged ping socket: loss and round-trip times. Exit 0
    when any reply came, 1 when none (or the kernel refused: net.ipv4.ping_group_range)."""
    from probes.icmp.probe import IcmpProbe

    if (count - 1) * spacing >= timeout:
        _usage_error(f"{count} echoes {spacing:g} s apart do not fit in --timeout {timeout:g}")
    _endpoint_report(IcmpProbe("cli", host, count=count, spacing=spacing, timeout=timeout), as_json)


@probe_app.command("dns")
def probe_dns(
    uri: Annotated[str, typer.Argument(help="sip:DOMAIN or sips:DOMAIN (RFC 3263 location).")],
    nameserver: Annotated[
        str | None,
        typer.Option(metavar="HOST[:PORT]", help="DNS server to ask (default: the system's)."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per DNS query.")] = 5.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False,
) -> None:
    """Locate a SIP server (NAPTR, SRV, A/AAAA) and list every target in order: exit 0 when
    found, 1 on a DNS failure."""
    import json

    from probes.dns.resolver import SipResolver
    from probes.dns.rfc3263 import Destination, DnsFailure
    from probes.dns.settings import ResolverSettings

    try:
        destination = Destination.from_uri(uri)
        if nameserver is None:
            settings = ResolverSettings(timeout=timeout)
        else:
            host, port = split_host_port(nameserver, 53)
            settings = ResolverSettings(nameserver=host, port=port, timeout=timeout)
        resolver = SipResolver(settings)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        resolved = _run(resolver.resolve(destination), use_uvloop=False)
    except DnsFailure as exc:
        if as_json:
            typer.echo(
                json.dumps({"uri": uri, "ok": False, "kind": exc.kind, "detail": exc.detail})
            )
        else:
            typer.echo(f"error: {uri}: {exc.kind}: {exc.detail}", err=True)
        raise typer.Exit(1) from None
    targets = [
        {"host": t.host, "port": t.port, "transport": t.transport, "address": t.address,
         "family": t.family, "ttl": t.ttl}
        for t in resolved.targets
    ]  # fmt: skip
    if as_json:
        typer.echo(json.dumps({"uri": uri, "ok": True, "ttl": resolved.ttl, "targets": targets}))
    else:
        typer.echo(f"ttl: {'-' if resolved.ttl is None else resolved.ttl}")
        for n, t in enumerate(resolved.targets, 1):
            ttl = "-" if t.ttl is None else t.ttl
            typer.echo(f"{n}. {t.transport} {t.host}:{t.port} {t.address} ttl={ttl}")
    raise typer.Exit(0)


@sip_app.command("lint")
def sip_lint(
    files: Annotated[list[Path], typer.Argument(help="Files holding one SIP message each.")],
) -> None:
    """Parse SIP messages; exit 0 if all are valid, 1 if any is invalid, 2 on usage errors."""
    from probes.sip.errors import SipParseError
    from probes.sip.message import SipRequest, parse_message

    invalid = 0
    for path in files:
        try:
            data = path.read_bytes()
        except OSError as exc:
            typer.echo(f"error: {path}: {exc.strerror}", err=True)
            raise typer.Exit(2) from None
        try:
            msg = parse_message(data)
        except SipParseError as exc:
            invalid += 1
            typer.echo(f"{path}: invalid: {exc}")
            continue
        what = f"request {msg.method}" if isinstance(msg, SipRequest) else f"response {msg.status}"
        typer.echo(f"{path}: valid: {what}")
    raise typer.Exit(1 if invalid else 0)


def main() -> None:
    app(prog_name="trunkwatch")


if __name__ == "__main__":
    main()
