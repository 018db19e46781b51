"""Endpoints in the daemon (issue 14): config, the pipeline's verdicts, /metrics, and a
running monitor whose https endpoint, part of an SLA service, goes down and comes back."""

from __future__ import annotations

import asyncio
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from http_peer import Pki, https_server, make_pki
from peers import Promtool
from pydantic import ValidationError
from test_monitor_e2e import scrape, wait_for
from tls_pki import issue

from monitor.app import Monitor
from monitor.certificates import targets
from monitor.config import ConfigError, config_from_text, load_config
from monitor.endpoints import EndpointWatch
from monitor.events import OutageKind, OutageOpened
from monitor.health import TrunkHealth, TrunkState
from monitor.metrics.exposition import ExpositionFormat
from monitor.pipeline import Pipeline
from monitor.probable_cause import probable_cause
from monitor.store import Store
from monitor.tickets.config import TicketsSettings
from monitor.tickets.routing import TicketRouting
from monitor.vantage import VantageGuard
from probes.https import HttpsProbe
from probes.icmp.probe import IcmpProbe
from probes.result import EndpointMeasurements, Outcome, ProbeResult
from probes.tcp_connect import ConnectProbe

NOW = datetime(2026, 10, 3, 14, 0, tzinfo=UTC)


def _problems(text: str, tmp_path: Path) -> list[tuple[int | None, str, str]]:
    path = tmp_path / "trunkwatch.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    return [(p.line, p.field, p.problem) for p in caught.value.problems]


# --- config -------------------------------------------------------------------------------


def test_endpoints_with_their_kinds_defaults(tmp_path: Path) -> None:
    ca = make_pki(tmp_path).ca_file
    cfg = config_from_text(
        f"""
endpoints:
  - {{name: proxy, kind: https, host: uc.example.com, path: /health, role: reverse_proxy,
      ca_file: "{ca}", expect_status: "200"}}
  - {{name: edge-sip, kind: tls, host: edge.example.com, port: 5061, interval: 10s}}
  - {{name: dirsync, kind: tcp, host: 10.0.0.5, port: 636, owner: it-dept}}
  - {{name: vpn-end, kind: icmp, host: "2001:db8::1", count: 10, spacing: 100ms}}
"""
    )
    proxy, edge, dirsync, vpn = cfg.endpoints
    assert (proxy.port, proxy.path, proxy.expect_status) == (443, "/health", frozenset({200}))
    assert (proxy.interval, proxy.timeout, proxy.owner) == (30.0, 10.0, "customer")
    assert (edge.port, edge.interval, edge.timeout) == (5061, 10.0, 8.0)  # timeout derived
    assert (dirsync.port, dirsync.owner, dirsync.role) == (636, "it-dept", "endpoint")
    assert (vpn.port, vpn.count, vpn.spacing) == (None, 10, 0.1)
    assert 200 not in (proxy.expect_status - {200}) and 302 in edge.expect_status
    # tls and https endpoints get their certificate checked too (monitor/certificates.py).
    assert [(t.name, t.port) for t in targets(cfg)] == [("proxy", 443), ("edge-sip", 5061)]
    watch = EndpointWatch(cfg)
    probes = watch.attach(Pipeline("a", {}, {}), {})
    kinds = [(type(p).__name__, p.kind, interval) for p, interval in probes]
    assert kinds == [
        (HttpsProbe.__name__, "https", 30.0),
        (ConnectProbe.__name__, "tls", 10.0),
        (ConnectProbe.__name__, "tcp", 30.0),
        (IcmpProbe.__name__, "icmp", 30.0),
    ]
    assert watch.owners()[2] == ("dirsync", "it-dept")


def test_endpoint_problems_name_file_line_field(tmp_path: Path) -> None:
    problems = _problems(
        """
        trunks:
          - {name: sbc1, uri: "sip:sbc1.example"}
        endpoints:
          - {name: dirsync, kind: tcp, host: 10.0.0.5}
          - {name: proxy, kind: tcp, host: h.example, port: 80, path: /x}
          - {name: sbc1, kind: icmp, host: 10.0.0.1}
          - {name: vpn, kind: icmp, host: 10.0.0.1, count: 50, spacing: 1s, timeout: 5s}
          - {name: web, kind: ftp, host: h.example}
          - {name: web2, kind: https, host: "bad host", bogus: 1}
          - {name: w3, kind: https, host: h.example, path: "no-slash"}
          - {name: w4, kind: https, host: h.example, interval: 5s, timeout: 6s}
        sla:
          services: [{name: uc, parts: [proxy, nope]}]
        """,
        tmp_path,
    )
    assert problems == [
        (4, "endpoints[0]", "a tcp endpoint needs a port"),
        (5, "endpoints[1]", "path is only for kind https"),
        (6, "endpoints[2].name", "endpoint name 'sbc1' is already a trunk"),
        (7, "endpoints[3]", "count 50 echoes 1s apart do not fit in the timeout (5s)"),
        (8, "endpoints[4].kind", "Input should be 'tls', 'https', 'tcp' or 'icmp'"),
        (9, "endpoints[5].host", "must be an IP address or a host name"),
        (9, "endpoints[5].bogus", problems[6][2]),
        (10, "endpoints[6].path", "must start with '/' and hold no spaces or control characters"),
        (11, "endpoints[7].timeout", "must be less than interval (5s)"),
        (13, "sla.services", problems[9][2]),
    ]
    assert problems[6][2].startswith("unknown field")
    # proxy is invalid above, so it is unknown to the service too; nope is unknown anyway.
    assert "part 'nope' is not a configured trunk or endpoint" in problems[9][2]


def test_certificates_endpoints_stay_tls_and_names_are_listed_once(tmp_path: Path) -> None:
    problems = _problems(
        """
        certificates:
          endpoints:
            - {name: edge, host: edge.example}
        endpoints:
          - {name: edge, kind: https, host: edge.example}
        """,
        tmp_path,
    )
    assert problems == [
        (5, "endpoints[0].name", "endpoint name 'edge' is already in certificates.endpoints "
         "(list it once, here)"),
    ]  # fmt: skip
    problems = _problems(
        """
        certificates:
          endpoints:
            - {name: proxy, kind: https, host: uc.example}
        """,
        tmp_path,
    )
    assert len(problems) == 1 and problems[0][1] == "certificates.endpoints"
    assert problems[0][2].startswith("lists tls endpoints only; put https, tcp and icmp")


def test_service_parts_may_be_endpoints() -> None:
    cfg = config_from_text(
        """
trunks: [{name: sbc1, uri: "sip:sbc1.example"}]
endpoints: [{name: proxy, kind: https, host: uc.example}]
sla:
  services: [{name: uc, parts: [sbc1, proxy], rule: any}]
"""
    )
    assert cfg.target_names() == ["sbc1", "proxy"]


# --- the pipeline and /metrics ------------------------------------------------------------


def result(name: str, outcome: Outcome, at: datetime, **kw: object) -> ProbeResult:
    return ProbeResult(name, "https", outcome, int(at.timestamp() * 1e9), **kw)  # type: ignore[arg-type]


def watch_of(text: str) -> tuple[EndpointWatch, Pipeline]:
    watch = EndpointWatch(config_from_text(text))
    trunks = {"sbc1": TrunkHealth("sbc1"), "sbc2": TrunkHealth("sbc2")}
    guard = VantageGuard("a", {"sbc1": "c1", "sbc2": "c2"})
    pipeline = Pipeline("a", trunks, {}, vantage=guard)
    watch.attach(pipeline, {})
    return watch, pipeline


ENDPOINTS = """
agent: site-a
endpoints:
  - {name: proxy, kind: https, host: uc.example, role: reverse_proxy, down_after: 2, up_after: 1}
  - {name: vpn, kind: icmp, host: 10.0.0.1}
"""


def test_endpoint_outage_opens_and_closes_like_a_trunks() -> None:
    watch, pipeline = watch_of(ENDPOINTS)
    out = [
        pipeline.on_result(result("proxy", Outcome.OK, NOW, status_code=200), NOW),
        pipeline.on_result(result("proxy", Outcome.HTTP_ERROR, NOW, status_code=503), NOW),
        pipeline.on_result(result("proxy", Outcome.HTTP_ERROR, NOW, status_code=503), NOW),
        pipeline.on_result(result("proxy", Outcome.OK, NOW + timedelta(minutes=1)), NOW),
    ]
    assert out[0] is not None and out[1] is None
    assert out[2] is not None
    opened = [e for e in out[2].events if isinstance(e, OutageOpened)]
    assert len(opened) == 1 and opened[0].outage.trunk == "proxy"
    assert opened[0].outage.first_outcome == "http_error"
    assert [line.event for line in out[2].logs] == ["trunk_down", "outage_opened"]
    assert out[3] is not None and [line.event for line in out[3].logs] == [
        "trunk_up",
        "outage_closed",
    ]
    assert watch.health["proxy"].state is TrunkState.UP
    # The trunks' OPTIONS statistics and the vantage rule never see an endpoint.
    assert "proxy" not in pipeline.stats and "proxy" not in pipeline.health
    assert pipeline.vantage is not None and "proxy" not in pipeline.vantage.failing


def test_endpoint_failures_while_the_agent_is_suspect_open_nothing() -> None:
    _, pipeline = watch_of(ENDPOINTS)
    guard = pipeline.vantage
    assert guard is not None
    for trunk in ("sbc1", "sbc2"):
        guard.failed(trunk, NOW, NOW)
    assert guard.suspect
    for _ in range(5):
        assert pipeline.on_result(result("proxy", Outcome.TIMEOUT, NOW), NOW) is None
    assert pipeline.endpoint_health["proxy"].fail_streak == 0


def test_not_permitted_counts_against_nobody_and_is_logged_once() -> None:
    from structlog.testing import capture_logs

    watch, pipeline = watch_of(ENDPOINTS)
    detail = "net.ipv4.ping_group_range is '1 0'"
    with capture_logs() as logs:
        for _ in range(5):
            r = ProbeResult(
                "vpn", "icmp", Outcome.NOT_PERMITTED, int(NOW.timestamp() * 1e9), detail=detail
            )
            assert pipeline.on_result(r, NOW) is None
    assert watch.health["vpn"].state is TrunkState.UNKNOWN
    (line,) = logs
    assert line["event"] == "endpoint_probe_not_permitted" and line["detail"] == detail


def test_metrics() -> None:
    watch, pipeline = watch_of(ENDPOINTS)
    m = EndpointMeasurements(connect_s=0.001, tls_s=0.002, ttfb_s=0.05, total_s=0.06)
    pipeline.on_result(result("proxy", Outcome.OK, NOW, status_code=200, endpoint=m), NOW)
    echo = EndpointMeasurements(total_s=1.0, echo_sent=4, echo_received=3, loss_ratio=0.25,
                                rtt_min_s=0.01, rtt_avg_s=0.02, rtt_max_s=0.03)  # fmt: skip
    vpn = ProbeResult("vpn", "icmp", Outcome.OK, int(NOW.timestamp() * 1e9), endpoint=echo)
    pipeline.on_result(vpn, NOW)
    text = pipeline.render(ExpositionFormat.TEXT)
    for line in (
        'trunkwatch_endpoint_up{agent="site-a",endpoint="proxy",kind="https",'
        'role="reverse_proxy"} 1.0',
        'trunkwatch_endpoint_probe_success{agent="site-a",endpoint="vpn",kind="icmp",'
        'role="endpoint"} 1.0',
        'trunkwatch_endpoint_probes_total{agent="site-a",endpoint="proxy",outcome="ok"} 1.0',
        'trunkwatch_http_status_code{agent="site-a",endpoint="proxy"} 200.0',
        'trunkwatch_http_ttfb_seconds{agent="site-a",endpoint="proxy"} 0.05',
        'trunkwatch_tcp_connect_seconds{agent="site-a",endpoint="proxy"} 0.001',
        'trunkwatch_tls_handshake_seconds{agent="site-a",endpoint="proxy"} 0.002',
        'trunkwatch_icmp_rtt_seconds{agent="site-a",endpoint="vpn"} 0.02',
        'trunkwatch_icmp_loss_ratio{agent="site-a",endpoint="vpn"} 0.25',
        'trunkwatch_endpoint_info{agent="site-a",endpoint="proxy",kind="https",owner="customer",'
        'role="reverse_proxy",service=""} 1.0',
    ):
        assert line + "\n" in text, line
    assert text.count("# TYPE trunkwatch_endpoint_up gauge") == 1
    # A failed https probe keeps its status code but not the timings of a timeout.
    pipeline.on_result(result("proxy", Outcome.TIMEOUT, NOW), NOW)
    text = watch.render(ExpositionFormat.TEXT)
    assert "trunkwatch_http_ttfb_seconds" not in text
    assert (
        'trunkwatch_endpoint_probe_success{agent="site-a",endpoint="proxy",kind="https",'
        'role="reverse_proxy"} 0.0' in text
    )
    assert (
        'trunkwatch_endpoint_probes_total{agent="site-a",endpoint="proxy",outcome="timeout"} 1.0'
        in text
    )


# --- the running monitor ------------------------------------------------------------------

INTERVAL = 0.2


async def test_https_endpoint_of_a_service_goes_down_and_back(
    tmp_path: Path, promtool: Promtool
) -> None:
    pki: Pki = make_pki(tmp_path / "pki")
    db = tmp_path / "tw.db"
    first = https_server(tmp_path / "srv", pki.leaf, [pki.inter])
    srv = await first.__aenter__()
    running: object | None = first
    cfg = config_from_text(
        f"""
agent: e2e
store: {{url: "sqlite:///{db}"}}
http: {{listen: 127.0.0.1, port: 0}}
endpoints:
  - {{name: proxy, kind: https, host: 127.0.0.1, port: {srv.port}, sni: localhost, path: /ok,
      ca_file: "{pki.ca_file}", role: reverse_proxy, service: uc,
      interval: {INTERVAL}, timeout: 0.15, down_after: 2, up_after: 2}}
sla:
  signing_key_file: {tmp_path / "evidence.key"}
  services: [{{name: uc, parts: [proxy]}}]
  contracts:
    - {{name: c1, carrier: customer, services: [uc], target_pct: 99.5, clock: detection,
        tz: America/Mexico_City, acceptance: 2026-01-01, monthly_fee: 1000}}
"""
    )
    monitor = Monitor(cfg)
    await monitor.start()
    try:
        proxy = monitor.endpoints.health["proxy"]
        await wait_for(lambda: proxy.state is TrunkState.UP, 5, "proxy up")
        metrics = await scrape(monitor)
        labels = 'agent="e2e",endpoint="proxy",kind="https",role="reverse_proxy"'
        assert f"trunkwatch_endpoint_up{{{labels}}} 1.0" in metrics
        assert 'trunkwatch_http_status_code{agent="e2e",endpoint="proxy"} 200.0' in metrics
        assert 'trunk="proxy"' not in metrics  # an endpoint is no trunk on /metrics
        rc, out = promtool.check_metrics(metrics)
        assert rc == 0, out

        await first.__aexit__(None, None, None)  # the reverse proxy goes away
        running = None
        await wait_for(lambda: proxy.state is TrunkState.DOWN, 5, "proxy down")
        assert monitor.endpoints.live_states(monitor.health) == {"proxy": "down"}
        assert f"trunkwatch_endpoint_up{{{labels}}} 0.0" in await scrape(monitor)
        await asyncio.sleep(0.5)
        async with https_server(tmp_path / "srv2", pki.leaf, [pki.inter], port=srv.port):
            await wait_for(lambda: proxy.state is TrunkState.UP, 5, "proxy up again")
        assert monitor.sla is not None and monitor.store is not None
        for _ in range(100):  # the journal writer is asynchronous: wait for the closing
            if all(o.closed_at for o in await monitor.store.outages()):
                break
            await asyncio.sleep(0.05)
        sla = await monitor.sla.rolling("uc", datetime.now(UTC))
    finally:
        await monitor.stop()
        if running is not None:
            await first.__aexit__(None, None, None)
    assert srv.paths and set(srv.paths) == {"/ok"}

    store = await Store.open(f"sqlite:///{db}", agent="e2e")
    try:
        outages = await store.outages()
    finally:
        await store.close()
    (outage,) = outages
    assert outage.trunk == "proxy" and outage.first_outcome == "refused"
    assert outage.restored_at is not None and outage.closed_at is not None
    down_for = outage.restored_at - outage.first_failure_at
    assert timedelta(seconds=0.4) < down_for < timedelta(seconds=5)
    # The service's only part was down: the SLA counts exactly that outage as unavailability.
    assert len(sla.result.lines) == 1
    assert sla.result.tnodisp == down_for
    assert sla.result.availability_exact < 100


def test_several_agents_decide_an_endpoints_outage_by_majority() -> None:
    cfg = config_from_text(
        """
cluster: {enabled: true}
store: {url: "postgresql://tw@db.example/tw"}
trunks: [{name: sbc1, uri: "sip:sbc1.example", quorum: 2}]
endpoints: [{name: proxy, kind: tcp, host: uc.example, port: 443}]
"""
    )
    assert cfg.cluster.quorums(cfg.trunks, cfg.endpoints) == {"sbc1": 2, "proxy": None}


# --- probable cause: the customer's certificate (stretch of issue 14) ---------------------


def test_a_tls_failure_of_a_certified_endpoint_is_the_customers_certificate() -> None:
    watch, pipeline = watch_of(ENDPOINTS)
    assert watch.certified() == frozenset({"proxy"})  # https; the icmp endpoint has none
    pipeline.on_result(result("proxy", Outcome.TLS, NOW, detail="certificate has expired"), NOW)
    out = pipeline.on_result(result("proxy", Outcome.TLS, NOW), NOW)
    assert out is not None
    (line,) = [line for line in out.logs if line.event == "outage_probable_cause"]
    assert line.fields["cause"] == "customer_certificate" and line.fields["trunk"] == "proxy"
    (opened,) = [e for e in out.events if isinstance(e, OutageOpened)]
    # The cause is in the stored detail: tickets and reports read it from the store.
    assert opened.outage.detail == "customer_certificate: certificate has expired"
    assert probable_cause(opened.outage.first_outcome, opened.outage.detail) == (
        "customer_certificate"
    )
    # Any other failure (here a refused connection) names no cause.
    _, other = watch_of(ENDPOINTS)
    other.on_result(result("proxy", Outcome.REFUSED, NOW), NOW)
    out = other.on_result(result("proxy", Outcome.REFUSED, NOW), NOW)
    assert out is not None and "outage_probable_cause" not in [x.event for x in out.logs]
    # A SIP trunk's TLS failure is the carrier's: its detail is never marked.
    assert probable_cause("tls", "sbc1.example:5061: certificate has expired") is None


def test_tickets_route_by_probable_cause() -> None:
    hook = {"type": "webhook", "url": "https://noc.example/h", "secret_env": "HOOK_SECRET"}
    env = {"env": {"HOOK_SECRET": "whsec_" + "QUJD" * 8}}
    settings = TicketsSettings.model_validate(
        {
            "sinks": [{"name": "customer-queue", **hook}, {"name": "noc", **hook}],
            "routes": [
                {"sinks": ["customer-queue"], "probable_causes": ["customer_certificate"]},
                {"sinks": ["noc"], "carriers": ["carrier-a", "customer"]},
            ],
        },
        context=env,
    )
    routing = TicketRouting.build(settings, [("proxy", "customer"), ("sbc1", "carrier-a")])
    outage = OutageKind.OUTAGE
    assert routing.sinks_for("proxy", outage, "customer_certificate") == ("customer-queue", "noc")
    assert routing.sinks_for("proxy", outage) == ("noc",)
    assert routing.sinks_for("sbc1", outage) == ("noc",)
    with pytest.raises(ValidationError):
        TicketsSettings.model_validate(
            {
                "sinks": [{"name": "n", **hook}],
                "routes": [{"sinks": ["n"], "probable_causes": ["x"]}],
            },
            context=env,
        )


async def test_expired_certificate_outage_is_proposed_for_exclusion(tmp_path: Path) -> None:
    """A running monitor: the proxy serves an expired certificate → its outage's probable
    cause is the customer's certificate, and the month's report proposes (does not apply)
    the customer_equipment exclusion."""
    from zoneinfo import ZoneInfo

    from structlog.testing import capture_logs
    from tls_pki import DAY
    from tls_pki import NOW as PKI_NOW

    from monitor.sla.reports import make_report
    from monitor.sla.reports.html import render_html
    from monitor.sla.reports.tabular import report_dict

    pki = make_pki(tmp_path / "pki")
    expired = issue("localhost", pki.inter, not_before=PKI_NOW - 9 * DAY,
                    not_after=PKI_NOW - DAY, dns=["localhost"], ips=["127.0.0.1"])  # fmt: skip
    async with https_server(tmp_path / "srv", expired, [pki.inter]) as srv:
        cfg = config_from_text(
            f"""
agent: e2e
store: {{url: "sqlite:///{tmp_path / "tw.db"}"}}
http: {{listen: 127.0.0.1, port: 0}}
endpoints:
  - {{name: proxy, kind: https, host: 127.0.0.1, port: {srv.port}, sni: localhost, path: /ok,
      ca_file: "{pki.ca_file}", interval: {INTERVAL}, timeout: 0.15, down_after: 2}}
sla:
  signing_key_file: {tmp_path / "evidence.key"}
  services: [{{name: uc, parts: [proxy]}}]
  contracts:
    - {{name: c1, carrier: customer, services: [uc], target_pct: 99.5, clock: detection,
        tz: America/Mexico_City, acceptance: 2026-01-01, monthly_fee: 1000}}
"""
        )
        monitor = Monitor(cfg)
        with capture_logs() as logs:
            await monitor.start()
            try:
                proxy = monitor.endpoints.health["proxy"]
                await wait_for(lambda: proxy.state is TrunkState.DOWN, 5, "proxy down")
                assert monitor.sla is not None and monitor.store is not None
                for _ in range(100):  # the journal writer is asynchronous
                    if await monitor.store.outages():
                        break
                    await asyncio.sleep(0.05)
                now = datetime.now(UTC)
                month = now.astimezone(ZoneInfo("America/Mexico_City")).strftime("%Y-%m")
                report = await make_report(monitor.sla, "uc", month, now, lang="en")
            finally:
                await monitor.stop()
    (cause,) = [e for e in logs if e["event"] == "outage_probable_cause"]
    assert cause["cause"] == "customer_certificate" and cause["trunk"] == "proxy"
    (proposal,) = report.proposals
    assert (proposal.trunk, proposal.cause, proposal.kind) == (
        "proxy",
        "customer_certificate",
        "customer_equipment",
    )
    assert "expired" in (proposal.detail or "")
    (row,) = report.outages
    assert row.exclusion is None and row.counted_us > 0  # proposed, never applied
    assert report_dict(report)["proposed_exclusions"][0]["probable_cause"] == (
        "customer_certificate"
    )
    html = render_html(report).decode()  # the PDF is rendered from it
    assert "<h2>Proposed exclusions</h2>" in html
    assert "<td>proxy</td><td>customer_certificate</td><td>customer_equipment</td>" in html
