"""Grafana dashboards and Prometheus rules: structure, metric names, and every PromQL
expression run against a real Prometheus scraping a real trunkwatch probing Kamailio.

FUTURE_METRICS lists the metrics that panels and rules already use but that later issues
add to the exporter (test calls, tickets, SLA, certificates). Until they exist, the live
test serves them from a stand-in target (FUTURE_EXPOSITION: the label sets those issues
must export) so their expressions are checked against data too, not only parsed; without
the stand-in they would simply show "No data". When one lands in the exporter,
`test_future_metrics_are_not_exported_yet` fails: remove it from both, and from then on
the live test checks its panels against the real exporter.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from peers import Kamailio, require_binary
from prom_peer import (
    PrometheusServer,
    PromqlTextError,
    Selector,
    metric_selectors,
    substitute_grafana,
    variable_query_expr,
)
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML

from monitor import certificates, endpoints
from monitor.app import Monitor
from monitor.config import config_from_text
from monitor.health import TrunkHealth
from monitor.metrics import calls as call_metrics
from monitor.metrics import sla as sla_metrics
from monitor.metrics import targets
from monitor.metrics import tickets as ticket_metrics
from monitor.metrics.exporter import ExportSources, TrunkInfos, TrunkwatchCollector
from monitor.metrics.exposition import Family, Kind
from monitor.metrics.stats import StatsTable
from monitor.scheduler import Scheduler
from probes.options import MalformedCounter
from probes.result import Outcome, ProbeResult

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "dashboards" / "grafana"
RULES = ROOT / "dashboards" / "prometheus" / "rules.yml"
DASHBOARDS = ("noc-overview.json", "trunk-detail.json", "sla.json")

# Metrics used by dashboards and rules that the exporter does not have yet (see top).
FUTURE_METRICS: frozenset[str] = frozenset()
# Real metrics (written by the call, ticket, SLA and certificate sections) that the live run
# below cannot produce: it places no test calls and has no ticket sink, no contract and no
# endpoint (tls, https, tcp, icmp). The stand-in target serves them so the panels that use
# them have data.
STAND_IN_METRICS = frozenset(
    {
        "trunkwatch_call_mos",
        "trunkwatch_rtp_jitter_seconds",
        "trunkwatch_rtp_loss_ratio",
        "trunkwatch_threshold_violation",
        "trunkwatch_ticket_outbox_pending",
        "trunkwatch_ticket_requests_total",
        "trunkwatch_availability_ratio",
        "trunkwatch_sla_budget_remaining_seconds",
        "trunkwatch_sla_target_ratio",
        "trunkwatch_sla_credit_ratio",
        "trunkwatch_monitoring_coverage_ratio",
        "trunkwatch_ticket_response_overdue",
        "trunkwatch_ticket_repair_overdue",
        "trunkwatch_tls_cert_expiry_timestamp_seconds",
        "trunkwatch_endpoint_up",
        "trunkwatch_http_status_code",
        "trunkwatch_http_ttfb_seconds",
        "trunkwatch_tcp_connect_seconds",
        "trunkwatch_icmp_rtt_seconds",
        "trunkwatch_icmp_loss_ratio",
        "trunkwatch_target_up",
    }
)
# Label values of existing metrics that come later: the DEGRADED state (issue 3).
FUTURE_LABEL_VALUES = frozenset({("trunkwatch_trunk_state", "state", "degraded")})
# The stand-in exposition of FUTURE_METRICS, STAND_IN_METRICS (and FUTURE_LABEL_VALUES),
# with the label sets their issues specify, the agent's among them (issue 12; a second
# agent's view of one certificate and one endpoint: the panels must show each once). The
# stand-in adds the real trunkwatch target's `instance` label to every sample (Prometheus
# keeps it: honor_labels), so joins on instance with the real metrics work; the trunk
# "lab-degraded" exists only here, so the degradation panels have something to show
# without touching the real trunks.
# A backslash at a line's end joins it to the next: one sample, under 100 columns.
FUTURE_EXPOSITION = """\
# TYPE trunkwatch_trunk_info gauge
trunkwatch_trunk_info{agent="live-test",trunk="lab-degraded",carrier="lab",transport="udp"} 1
# TYPE trunkwatch_trunk_state gauge
trunkwatch_trunk_state{agent="live-test",trunk="lab-degraded",state="degraded"} 1
# TYPE trunkwatch_call_mos gauge
trunkwatch_call_mos{agent="live-test",trunk="lab-degraded"} 3.4
# TYPE trunkwatch_rtp_jitter_seconds gauge
trunkwatch_rtp_jitter_seconds{agent="live-test",trunk="lab-degraded",direction="rx"} 0.035
trunkwatch_rtp_jitter_seconds{agent="live-test",trunk="lab-degraded",direction="tx"} 0.004
# TYPE trunkwatch_rtp_loss_ratio gauge
trunkwatch_rtp_loss_ratio{agent="live-test",trunk="lab-degraded",direction="rx"} 0.002
trunkwatch_rtp_loss_ratio{agent="live-test",trunk="lab-degraded",direction="tx"} 0
# TYPE trunkwatch_threshold_violation gauge
trunkwatch_threshold_violation{agent="live-test",trunk="lab-degraded",profile="client_to_edge",\
metric="jitter"} 1
# TYPE trunkwatch_ticket_outbox_pending gauge
trunkwatch_ticket_outbox_pending{} 1
# TYPE trunkwatch_ticket_requests counter
trunkwatch_ticket_requests_total{sink="rt",result="ok"} 3
# TYPE trunkwatch_availability_ratio gauge
trunkwatch_availability_ratio{service="voice",window="month"} 0.9965
trunkwatch_availability_ratio{service="voice",window="rolling"} 0.998
# TYPE trunkwatch_sla_budget_remaining_seconds gauge
trunkwatch_sla_budget_remaining_seconds{service="voice"} 4500
# TYPE trunkwatch_sla_target_ratio gauge
trunkwatch_sla_target_ratio{service="voice"} 0.995
# TYPE trunkwatch_sla_credit_ratio gauge
trunkwatch_sla_credit_ratio{service="voice"} 0
# TYPE trunkwatch_monitoring_coverage_ratio gauge
trunkwatch_monitoring_coverage_ratio{service="voice"} 0.9999
# TYPE trunkwatch_ticket_response_overdue gauge
trunkwatch_ticket_response_overdue{service="voice"} 0
# TYPE trunkwatch_ticket_repair_overdue gauge
trunkwatch_ticket_repair_overdue{service="voice"} 0
# TYPE trunkwatch_tls_cert_expiry_timestamp_seconds gauge
trunkwatch_tls_cert_expiry_timestamp_seconds{agent="live-test",endpoint="kam-tls",\
role="sip_trunk"} 1900000000
trunkwatch_tls_cert_expiry_timestamp_seconds{agent="live-test-2",endpoint="kam-tls",\
role="sip_trunk"} 1900000000
# TYPE trunkwatch_endpoint_up gauge
trunkwatch_endpoint_up{agent="live-test",endpoint="uc-proxy",kind="https",role="reverse_proxy"} 1
trunkwatch_endpoint_up{agent="live-test",endpoint="vpn-mx",kind="icmp",role="vpn"} 0
trunkwatch_endpoint_up{agent="live-test-2",endpoint="vpn-mx",kind="icmp",role="vpn"} 1
# TYPE trunkwatch_http_status_code gauge
trunkwatch_http_status_code{agent="live-test",endpoint="uc-proxy"} 200
# TYPE trunkwatch_http_ttfb_seconds gauge
trunkwatch_http_ttfb_seconds{agent="live-test",endpoint="uc-proxy"} 0.042
# TYPE trunkwatch_tcp_connect_seconds gauge
trunkwatch_tcp_connect_seconds{agent="live-test",endpoint="uc-proxy"} 0.004
# TYPE trunkwatch_icmp_rtt_seconds gauge
trunkwatch_icmp_rtt_seconds{agent="live-test",endpoint="vpn-mx"} 0.018
# TYPE trunkwatch_icmp_loss_ratio gauge
trunkwatch_icmp_loss_ratio{agent="live-test",endpoint="vpn-mx"} 0.2
# TYPE trunkwatch_target_up gauge
trunkwatch_target_up{agent="live-test",trunk="lab-degraded",target="sbc1.lab.example:5060/udp"} 1
trunkwatch_target_up{agent="live-test",trunk="lab-degraded",target="sbc2.lab.example:5060/udp"} 0
"""

DATASOURCE_REF = {"type": "prometheus", "uid": "${datasource}"}
REQUIRED_VARIABLES = ("datasource", "agent", "carrier", "service", "trunk")
GRID_WIDTH = 24
# Unit ids of Grafana's standard unit picker that these dashboards may use; a typo
# ("seconds", "percent_unit") would silently show raw numbers.
GRAFANA_UNITS = frozenset(
    {
        "none",
        "short",
        "percent",
        "percentunit",
        "s",
        "ms",
        "µs",
        "ns",
        "dtdurations",
        "dtdurationms",
        "ops",
        "reqps",
        "bool",
        "bool_yes_no",
        "bool_on_off",
        "bytes",
        "decbytes",
        "hertz",
        "dB",
    }
)
# DESIGN.md §3: the profile limits drawn as threshold lines (edge_to_edge, client_to_edge).
PROFILE_LINES = {
    "SIP OPTIONS round trip, p95": (0.06, 0.1),
    "RTP jitter (test calls)": (0.015, 0.03),
    "RTP packet loss (test calls)": (0.001, 0.01),
}


# ---- loading --------------------------------------------------------------------------------


def load_dashboard(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DASHBOARD_DIR / name).read_text())
    return data


def load_rules() -> dict[str, Any]:
    data: dict[str, Any] = YAML(typ="safe").load(RULES.read_text())
    return data


def iter_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels inside collapsed rows."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def variable_names(dashboard: dict[str, Any]) -> list[str]:
    return [v["name"] for v in dashboard["templating"]["list"]]


@dataclass(frozen=True, slots=True)
class Expression:
    """One PromQL expression from a dashboard or the rules, ready to send to Prometheus."""

    where: str
    kind: str  # panel, variable, annotation, record, alert
    raw: str
    promql: str

    @property
    def selectors(self) -> list[Selector]:
        return metric_selectors(self.promql)


def dashboard_expressions(name: str) -> list[Expression]:
    dashboard = load_dashboard(name)
    names = variable_names(dashboard)
    out: list[Expression] = []

    def add(where: str, kind: str, raw: str) -> None:
        out.append(Expression(f"{name}: {where}", kind, raw, substitute_grafana(raw, names)))

    for var in dashboard["templating"]["list"]:
        if var["type"] != "query":
            continue
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        inner = variable_query_expr(query)
        if inner is not None:
            add(f"variable ${var['name']}", "variable", inner)
    for panel in iter_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            add(f"panel {panel['title']!r} {target['refId']}", "panel", target["expr"])
    for annotation in dashboard["annotations"]["list"]:
        add(f"annotation {annotation['name']!r}", "annotation", annotation["expr"])
    return out


def rule_expressions() -> list[Expression]:
    out: list[Expression] = []
    for group in load_rules()["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                out.append(
                    Expression(
                        f"rules.yml: record {rule['record']}", "record", rule["expr"], rule["expr"]
                    )
                )
            else:
                out.append(
                    Expression(
                        f"rules.yml: alert {rule['alert']}", "alert", rule["expr"], rule["expr"]
                    )
                )
    return out


def all_expressions() -> list[Expression]:
    return [e for name in DASHBOARDS for e in dashboard_expressions(name)] + rule_expressions()


def recorded_names() -> set[str]:
    return {r["record"] for g in load_rules()["groups"] for r in g["rules"] if "record" in r}


def exported_names() -> set[str]:
    """Sample names the real collector produces, with every family populated."""
    stats = StatsTable(["t1"])
    stats.record(
        ProbeResult(
            "t1", "options", Outcome.OK, 0, rtt_ns=10**6, duration_ns=10**6, status_code=200
        )
    )
    sources = ExportSources(
        agent="a",
        loop_name="asyncio",
        trunks=TrunkInfos.of([("t1", "c1", "udp")]),
        stats=stats,
        health={"t1": TrunkHealth("t1")},
        scheduler=Scheduler([], lambda result: None),
        malformed=MalformedCounter(),
        outages_opened={"t1": 0},
        store_pending=lambda: 0,
        store_errors=lambda: 0,
        gaps_recorded=lambda: 0,
        samples_dropped=lambda: 0,
    )
    core = {s.name for family in TrunkwatchCollector(sources).collect() for s in family.samples}
    return core | section_names()


def section_names() -> set[str]:
    """Sample names of every family the call, ticket and SLA sections can write."""
    names: set[str] = set()
    for module in (call_metrics, ticket_metrics, sla_metrics, certificates, endpoints, targets):
        for fam in vars(module).values():
            if not isinstance(fam, Family):
                continue
            if fam.kind is Kind.HISTOGRAM:
                names |= {f"{fam.name}_bucket", f"{fam.name}_count", f"{fam.name}_sum"}
            else:
                names.add(fam.sample)
    return names | {f.sample for f in sla_metrics.METRICS.values()}


# ---- structure ----------------------------------------------------------------------------


def test_exactly_the_three_dashboards() -> None:
    assert sorted(p.name for p in DASHBOARD_DIR.glob("*.json")) == sorted(DASHBOARDS)
    uids = [load_dashboard(name)["uid"] for name in DASHBOARDS]
    assert len(set(uids)) == len(uids)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_template_variables(name: str) -> None:
    variables = {v["name"]: v for v in load_dashboard(name)["templating"]["list"]}
    for required in REQUIRED_VARIABLES:
        assert required in variables, f"{name}: no ${required} variable"
    ds = variables["datasource"]
    assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
    for var in variables.values():
        if var["type"] == "query":
            assert var["datasource"] == DATASOURCE_REF, var["name"]
            # Variables refer only to variables defined before them (Grafana's order).
            earlier = list(variables)[: list(variables).index(var["name"])]
            for used in re.findall(r"\$(\w+)", json.dumps(var["query"])):
                assert used in earlier, f"{name}: ${var['name']} uses ${used} before it exists"


@pytest.mark.parametrize("name", DASHBOARDS)
def test_every_datasource_reference_is_the_variable(name: str) -> None:
    dashboard = load_dashboard(name)
    assert "__inputs" not in dashboard  # exported-for-sharing form with a fixed datasource
    refs: list[Any] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "datasource":
                    refs.append(value)
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    assert refs, "no datasource reference at all"
    assert all(ref == DATASOURCE_REF for ref in refs), [r for r in refs if r != DATASOURCE_REF]
    assert "DS_" not in json.dumps(dashboard)


@pytest.mark.parametrize("name", DASHBOARDS)
def test_panels_have_units_ids_and_grid(name: str) -> None:
    panels = list(iter_panels(load_dashboard(name)["panels"]))
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), f"duplicate panel ids in {name}"
    boxes: list[tuple[int, int, int, int, str]] = []
    for panel in panels:
        grid = panel["gridPos"]
        x, y, w, h = grid["x"], grid["y"], grid["w"], grid["h"]
        assert all(isinstance(v, int) for v in (x, y, w, h)), panel["title"]
        assert 0 <= x and 1 <= w and x + w <= GRID_WIDTH and y >= 0 and h >= 1, panel["title"]
        for bx, by, bw, bh, other in boxes:
            overlap = x < bx + bw and bx < x + w and y < by + bh and by < y + h
            assert not overlap, f"{name}: {panel['title']!r} overlaps {other!r}"
        boxes.append((x, y, w, h, panel["title"]))
        if panel["type"] == "row":
            continue
        unit = panel["fieldConfig"]["defaults"].get("unit")
        assert unit in GRAFANA_UNITS, f"{name}: {panel['title']!r} has unit {unit!r}"
        assert panel.get("description"), f"{name}: {panel['title']!r} has no description"
        targets = panel["targets"]
        assert targets and all(t["expr"].strip() for t in targets), panel["title"]
        ref_ids = [t["refId"] for t in targets]
        assert len(ref_ids) == len(set(ref_ids)), panel["title"]


@pytest.mark.parametrize("name", DASHBOARDS)
def test_template_variables_only_in_regex_matchers(name: str) -> None:
    """`trunk="$trunk"` breaks with All or several values; `=~` works for both."""
    for expr in dashboard_expressions(name):
        for label, op in re.findall(r'(\w+)\s*(=|!=)\s*"[^"]*\$[^"]*"', expr.raw):
            pytest.fail(f'{expr.where}: {label}{op}"$…" must be =~ or !~')


def test_profile_limits_are_threshold_lines() -> None:
    panels = {p["title"]: p for p in iter_panels(load_dashboard("noc-overview.json")["panels"])}
    for title, limits in PROFILE_LINES.items():
        defaults = panels[title]["fieldConfig"]["defaults"]
        assert defaults["custom"]["thresholdsStyle"]["mode"] == "line", title
        steps = [s["value"] for s in defaults["thresholds"]["steps"] if s["value"] is not None]
        assert tuple(steps) == limits, title


def test_links_point_to_existing_dashboards() -> None:
    uids = {load_dashboard(name)["uid"] for name in DASHBOARDS}
    for name in DASHBOARDS:
        for uid in re.findall(r"/d/([\w-]+)", json.dumps(load_dashboard(name))):
            assert uid in uids, f"{name} links to unknown dashboard {uid}"


# ---- expressions, statically ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("up", ["up"]),
        ('rate(a_total{x=~"y", z!="{"}[5m]) > 0', ['a_total{x=~"y",z!="{"}']),
        (
            "sum by (le, trunk) (rate(h_bucket[1m])) and on (trunk) group by (trunk) (info)",
            ["h_bucket", "info"],
        ),
        ("histogram_quantile(0.99, sum without (le) (b)) * 1e3 offset 5m", ["b"]),
        ("x * on (a) group_left (b, c) y or vector(0)", ["x", "y"]),
        ("avg_over_time(rec:name:ratio[1h:1m]) > bool 3 * scalar(k)", ["rec:name:ratio", "k"]),
        ("absent(up{job='t'}) # a comment naming fake_metric", ["up{job='t'}"]),
        ("time() - ts_seconds < 14 * 86400", ["ts_seconds"]),
    ],
)
def test_selector_extraction(expr: str, expected: list[str]) -> None:
    assert [s.text for s in metric_selectors(expr)] == expected


def test_grafana_substitution() -> None:
    got = substitute_grafana(
        'rate(x{t=~"$trunk",a=~"${agent:regex}"}[$__rate_interval]) * $__range_s + y[$__range]',
        ["trunk", "agent"],
    )
    assert got == 'rate(x{t=~".*",a=~".*"}[1m]) * 3600 + y[1h]'
    with pytest.raises(PromqlTextError):
        substitute_grafana('x{t=~"$nope"}', ["trunk"])


def test_every_metric_name_exists_or_is_declared_future() -> None:
    known = exported_names() | recorded_names() | {"up"} | FUTURE_METRICS
    unknown = {
        f"{e.where}: {s.name}"
        for e in all_expressions()
        for s in e.selectors
        if s.name not in known
    }
    assert not unknown, "misspelled or undeclared metrics:\n" + "\n".join(sorted(unknown))


def test_future_metrics_are_not_exported_yet_and_stand_ins_are() -> None:
    landed = FUTURE_METRICS & exported_names()
    assert not landed, f"{sorted(landed)} now exist: remove them from FUTURE_METRICS"
    assert STAND_IN_METRICS <= section_names()
    used = {s.name for e in all_expressions() for s in e.selectors}
    unused = (FUTURE_METRICS | STAND_IN_METRICS) - used
    assert not unused, f"unused FUTURE_METRICS or STAND_IN_METRICS: {sorted(unused)}"


def test_every_dashboard_has_expressions_of_each_kind() -> None:
    kinds = {e.kind for e in all_expressions()}
    assert kinds == {"panel", "variable", "annotation", "record", "alert"}


def test_stand_in_exposition_covers_exactly_the_future_metrics() -> None:
    families = list(text_string_to_metric_families(FUTURE_EXPOSITION))
    samples = [sample for family in families for sample in family.samples]
    future = [s for s in samples if (s.name, "state", "degraded") not in FUTURE_LABEL_VALUES]
    served = {s.name for s in future} - {"trunkwatch_trunk_info"}
    assert served == FUTURE_METRICS | STAND_IN_METRICS
    for name, label, value in FUTURE_LABEL_VALUES:
        assert any(s.name == name and s.labels.get(label) == value for s in samples)
    # The stand-in speaks for the real target: every sample gets its instance label.
    labelled = text_string_to_metric_families(with_instance(FUTURE_EXPOSITION, "10.0.0.1:9465"))
    assert [s.labels["instance"] for f in labelled for s in f.samples] == ["10.0.0.1:9465"] * len(
        samples
    )


# ---- live: a real Prometheus scraping a real trunkwatch probing Kamailio ------------------------

LIVE_INTERVAL = 0.2
LIVE_TIMEOUT = 0.15
# Prometheus needs a few 1 s scrapes before rate() and the rules have something to work on.
MIN_SCRAPES = 4
WAIT_S = 20.0
POLL_S = 0.2


def live_config(kam: Kamailio, db: Path, agent: str = "live-test") -> str:
    return f"""
agent: {agent}
store: {{url: "sqlite:///{db}"}}
# Both carriers' trunks are on the one Kamailio this test stops: on a real network that
# would be this agent cut off (monitor/vantage.py); here it must be the carriers' outage.
vantage: {{min_carriers: 0}}
http: {{listen: 127.0.0.1, port: 0}}
defaults: {{interval: {LIVE_INTERVAL}, timeout: {LIVE_TIMEOUT}, down_after: 3, up_after: 2}}
trunks:
  - name: kam-udp
    carrier: kam-a
    uri: "{kam.uri("udp")}"
  - name: kam-tcp
    carrier: kam-b
    uri: "{kam.uri("tcp")}"
"""


def with_instance(exposition: str, instance: str) -> str:
    """The exposition with `instance="…"` added to every sample's label set."""
    return re.sub(
        r"\{(\}?)",
        lambda m: f'{{instance="{instance}"' + ("}" if m.group(1) else ","),
        exposition,
    )


@contextlib.asynccontextmanager
async def stand_in_target(instance: str) -> AsyncIterator[str]:
    """An HTTP target serving FUTURE_EXPOSITION on behalf of `instance`; yields its address."""
    body = with_instance(FUTURE_EXPOSITION, instance)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"127.0.0.1:{runner.addresses[0][1]}"
    finally:
        await runner.cleanup()


async def wait_for_value(
    prom: PrometheusServer, expr: str, accept: Callable[[float], bool], what: str
) -> None:
    deadline = time.monotonic() + WAIT_S
    last: float | None = None
    while time.monotonic() < deadline:
        last = await asyncio.to_thread(prom.value, expr)
        if last is not None and accept(last):
            return
        await asyncio.sleep(POLL_S)
    raise AssertionError(
        f"timed out waiting for {what}: {expr} = {last}\n{prom.log_text()[-2000:]}"
    )


def expression_problems(prom: PrometheusServer, expr: Expression) -> list[str]:
    """Why `expr` is broken against live data: does not run, empty, or names no series."""
    result = prom.query(expr.promql)
    if not result.ok:
        return [f"{expr.where}: does not run: {result.error}\n    {expr.promql}"]
    problems: list[str] = []
    # An alert expression is a condition, empty while nothing is wrong; its selectors
    # below still have to name real series.
    if result.empty and expr.kind != "alert":
        problems.append(f"{expr.where}: returned no data\n    {expr.promql}")
    for selector in expr.selectors:
        count = prom.query(f"count({selector.text})")
        if not count.ok or count.empty:
            problems.append(f"{expr.where}: {selector.text} matches no series")
    return problems


async def test_every_expression_runs_against_live_trunkwatch(
    kamailio: Kamailio, tmp_path: Path
) -> None:
    expressions = all_expressions()
    binary = require_binary("prometheus")
    monitor = Monitor(config_from_text(live_config(kamailio, tmp_path / "tw.db"), source="<live>"))
    # A second agent (vantage point) watching the same trunks, scraped by the same
    # Prometheus: the alerts and panels must count each trunk once, not once per agent.
    second = Monitor(
        config_from_text(live_config(kamailio, tmp_path / "tw2.db", "live-test-2"), source="<2>")
    )
    await monitor.start()
    await second.start()
    instance = f"127.0.0.1:{monitor.bound_port}"
    try:
        async with stand_in_target(instance) as stand_in:
            prom = PrometheusServer(
                tmp_path / "prometheus",
                binary,
                scrape_targets=[instance, f"127.0.0.1:{second.bound_port}", stand_in],
                rule_files=[RULES],
                honor_labels=True,
            )
            try:
                await asyncio.to_thread(prom.start)
                await live_checks(prom, kamailio, expressions)
            finally:
                await asyncio.to_thread(prom.stop)
    finally:
        await second.stop()
        await monitor.stop()


async def live_checks(
    prom: PrometheusServer, kamailio: Kamailio, expressions: list[Expression]
) -> None:
    await wait_for_value(
        prom, 'min(trunkwatch_probe_success{probe="options"})', lambda v: v == 1, "trunks up"
    )
    await wait_for_value(
        prom,
        'min(count_over_time(up{job="trunkwatch"}[1m]))',
        lambda v: v >= MIN_SCRAPES,
        "a few scrapes of both targets",
    )

    # Induce the outage: Kamailio dies, both trunks go DOWN, their outages open.
    await asyncio.to_thread(kamailio.stop)
    # Each agent's view: two trunks down in each of two agents.
    await wait_for_value(prom, "sum(trunkwatch_outage_open)", lambda v: v == 4, "outages open")
    await wait_for_value(
        prom,
        'count(count by (agent) (trunkwatch_trunk_state{trunk="kam-udp"}))',
        lambda v: v == 2,
        "both agents' series of one trunk, apart by their agent label",
    )
    await wait_for_value(
        prom,
        'min(trunkwatch:trunk_state:code{trunk=~"kam-.*"})',
        lambda v: v == 3,
        "state code DOWN from the recording rule",
    )
    # One alert per trunk (not per agent), as both agents agree.
    await wait_for_value(
        prom,
        'min(trunkwatch:trunk_down:ratio_agents{trunk=~"kam-.*"})',
        lambda v: v == 1,
        "every agent has both trunks down",
    )
    await wait_for_value(
        prom,
        'count(ALERTS{alertname="TrunkDown", trunk=~"kam-.*"})',
        lambda v: v == 2,
        "TrunkDown pending or firing for both trunks",
    )
    assert await asyncio.to_thread(
        prom.value, 'count(ALERTS{alertname="TrunkDown", trunk=~"kam-.*"})'
    ) == 2  # fmt: skip
    # A failure outcome's counter appears with the first failure; rate() needs two scrapes
    # of it (under load the alert above can be quicker than that).
    await wait_for_value(
        prom,
        'sum(rate(trunkwatch_probe_outcome_total{outcome!="ok", trunk=~"kam-.*"}[1m]))',
        lambda v: v > 0,
        "failure outcomes rated",
    )

    problems: list[str] = []
    for expr in expressions:
        problems += await asyncio.to_thread(expression_problems, prom, expr)

    # Two agents check the certificate kam-tls and the endpoint vpn-mx (the stand-in):
    # their panels aggregate across agents, one series per certificate or endpoint.
    for title, want in (("TLS certificates: days left", 1), ("Endpoint status", 2)):
        (panel_expr,) = [e for e in expressions if f"panel {title!r}" in e.where]
        shown = await asyncio.to_thread(prom.query, panel_expr.promql)
        assert shown.ok and len(shown.result) == want, (title, shown.result)
        assert all("agent" not in r["metric"] for r in shown.result), shown.result

    # Negative controls: the check catches a misspelled metric and a broken expression.
    panel = next(e for e in expressions if "trunkwatch_probe_success{" in e.promql)
    misspelled = panel.promql.replace("trunkwatch_probe_success", "trunkwatch_probe_sucess")
    typo = Expression(panel.where, panel.kind, panel.raw, misspelled)
    typo_problems = await asyncio.to_thread(expression_problems, prom, typo)
    assert any("trunkwatch_probe_sucess" in p and "matches no series" in p for p in typo_problems)
    assert any("returned no data" in p for p in typo_problems), typo_problems
    broken = Expression("broken", "panel", "", "sum(rate(trunkwatch_probe_outcome_total[1m])")
    assert "does not run" in (await asyncio.to_thread(expression_problems, prom, broken))[0]

    # Restoration: Kamailio is back, the outages close, the rule's state code says UP.
    await asyncio.to_thread(kamailio.start)
    await wait_for_value(prom, "sum(trunkwatch_outage_open)", lambda v: v == 0, "outages closed")
    await wait_for_value(
        prom, 'max(trunkwatch:trunk_state:code{trunk=~"kam-.*"})', lambda v: v == 1, "state UP"
    )
    await wait_for_value(
        prom,
        'sum(increase(trunkwatch_outages_opened_total{trunk=~"kam-.*"}[1h]))',
        lambda v: v > 0,
        "outages counted",
    )

    rules = await asyncio.to_thread(prom.rules)
    assert len(rules) == len(rule_expressions())
    unhealthy = [(r["name"], r["health"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not unhealthy, unhealthy
    assert not problems, "\n".join(problems)
