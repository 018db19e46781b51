"""A real Prometheus on loopback for tests, and the PromQL text handling its tests need.

`running_prometheus()` starts Debian's `prometheus` on 127.0.0.1 (1 s scrape and rule
evaluation), stops it by PID whatever happens, and answers instant queries. The PromQL
helpers substitute Grafana's template variables and list the series selectors of an
expression, so a test can ask Prometheus whether each metric named in a dashboard or a
rule exists (see notes/test-peers.md, "Prometheus on loopback").
"""

from __future__ import annotations

import atexit
import contextlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from peers import LOOPBACK, free_port, require_binary

# Prometheus 2.42 replays an empty WAL and opens its web port in well under a second
# here; a cold start on a loaded CI machine gets 30 s.
PROMETHEUS_START_TIMEOUT_S = 30.0
# SIGTERM makes Prometheus close its TSDB cleanly; a throwaway test TSDB needs no more.
PROMETHEUS_STOP_TIMEOUT_S = 10.0
# The tightest intervals Prometheus accepts in practice; tests wait seconds, not minutes.
SCRAPE_INTERVAL = "1s"
EVALUATION_INTERVAL = "1s"
HTTP_TIMEOUT_S = 10.0
READY_POLL_S = 0.1


class PrometheusError(RuntimeError):
    """Prometheus did not start, or answered an API call with something unexpected."""


@dataclass(slots=True, frozen=True)
class QueryResult:
    """One /api/v1/query answer: ok with a result, or the error Prometheus gave."""

    ok: bool
    result_type: str
    result: list[Any]
    error: str

    @property
    def empty(self) -> bool:
        return self.result_type in ("vector", "matrix") and not self.result


# Every Prometheus this process started, so an interrupted run still stops them by PID.
_live: set[PrometheusServer] = set()


@dataclass(eq=False)
class PrometheusServer:
    """One `prometheus` process with its own config and TSDB in `workdir`."""

    workdir: Path
    binary: str
    scrape_targets: Sequence[str]
    rule_files: Sequence[Path] = ()
    job: str = "trunkwatch"
    # Keep the instance/job labels a target exposes (a stand-in target speaking for another).
    honor_labels: bool = False
    port: int = 0
    # More scrape jobs, as Prometheus's own config dicts (scheme, tls_config, basic_auth...).
    extra_jobs: Sequence[dict[str, Any]] = ()
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port("tcp")
        self.config_path = self.workdir / "prometheus.yml"
        self.log_path = self.workdir / "prometheus.log"
        # JSON is YAML: no YAML writer needed, and nothing to quote by hand.
        config = {
            "global": {
                "scrape_interval": SCRAPE_INTERVAL,
                "scrape_timeout": SCRAPE_INTERVAL,
                "evaluation_interval": EVALUATION_INTERVAL,
            },
            "rule_files": [str(Path(p).absolute()) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job,
                    "honor_labels": self.honor_labels,
                    "static_configs": [{"targets": list(self.scrape_targets)}],
                },
                *self.extra_jobs,
            ],
        }
        self.config_path.write_text(json.dumps(config, indent=2))

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self, timeout: float = PROMETHEUS_START_TIMEOUT_S) -> None:
        if self.pid is not None:
            return
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [self.binary, f"--config.file={self.config_path}",
                 f"--storage.tsdb.path={self.workdir / 'data'}",
                 f"--web.listen-address={LOOPBACK}:{self.port}",
                 "--log.level=warn"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )  # fmt: skip
        _live.add(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise PrometheusError(
                    f"prometheus exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}"
                )
            with contextlib.suppress(OSError):
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as r:
                    if r.status == 200:
                        return
            time.sleep(READY_POLL_S)
        self.stop()
        raise PrometheusError(f"prometheus not ready within {timeout}s:\n{self.log_text()[-4000:]}")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        _live.discard(self)
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(PROMETHEUS_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(PROMETHEUS_STOP_TIMEOUT_S)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ---- HTTP API ---------------------------------------------------------------------------

    def _get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        try:
            with urllib.request.urlopen(f"{self.url}{path}{query}", timeout=HTTP_TIMEOUT_S) as r:
                body = r.read()
        except urllib.error.HTTPError as exc:  # 400/422 carry the PromQL error as JSON
            body = exc.read()
        try:
            answer: dict[str, Any] = json.loads(body)
        except ValueError as exc:
            raise PrometheusError(f"{path}: not JSON: {body[:200]!r}") from exc
        return answer

    def query(self, expr: str) -> QueryResult:
        """An instant query at the server's now."""
        answer = self._get("/api/v1/query", {"query": expr})
        if answer.get("status") != "success":
            return QueryResult(False, "", [], f"{answer.get('errorType')}: {answer.get('error')}")
        data = answer["data"]
        result = data["result"]
        return QueryResult(
            True, data["resultType"], result if isinstance(result, list) else [result], ""
        )

    def value(self, expr: str) -> float | None:
        """The value of a query returning one sample, or None if it returned none."""
        res = self.query(expr)
        if not res.ok:
            raise PrometheusError(f"{expr}: {res.error}")
        if res.result_type == "scalar":
            return float(res.result[1])
        if not res.result:
            return None
        if len(res.result) != 1:
            raise PrometheusError(f"{expr}: {len(res.result)} samples, expected one")
        return float(res.result[0]["value"][1])

    def rules(self) -> list[dict[str, Any]]:
        answer = self._get("/api/v1/rules")
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    def targets(self) -> list[dict[str, Any]]:
        return list(self._get("/api/v1/targets")["data"]["activeTargets"])


@contextlib.contextmanager
def running_prometheus(
    workdir: Path,
    scrape_targets: Sequence[str],
    rule_files: Sequence[Path] = (),
    *,
    honor_labels: bool = False,
    extra_jobs: Sequence[dict[str, Any]] = (),
) -> Iterator[PrometheusServer]:
    """A started Prometheus scraping `scrape_targets` as job "trunkwatch"; stopped by PID."""
    server = PrometheusServer(
        workdir,
        require_binary("prometheus"),
        scrape_targets,
        rule_files,
        honor_labels=honor_labels,
        extra_jobs=extra_jobs,
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()


@atexit.register
def _stop_leftovers() -> None:
    for server in list(_live):
        server.stop()


# ---------------------------------------------------------------------------------------------
# PromQL text: Grafana variables and series selectors.

# Grafana's built-in interval/range variables, longest name first so `$__range_s` is not
# read as `$__range` followed by "_s". Values are what a dashboard shows over the last hour.
GRAFANA_BUILTINS: tuple[tuple[str, str], ...] = (
    ("$__rate_interval", "1m"),
    ("$__interval_ms", "15000"),
    ("$__interval", "15s"),
    ("$__range_ms", "3600000"),
    ("$__range_s", "3600"),
    ("$__range", "1h"),
)
# Every template variable becomes a regex matching everything: dashboards use them only
# in =~ / !~ matchers (test_dashboards checks that).
TEMPLATE_VALUE = ".*"
_TEMPLATE_VAR = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


class PromqlTextError(ValueError):
    """An expression uses something the helpers here do not handle."""


def substitute_grafana(expr: str, variables: Iterable[str]) -> str:
    """`expr` with Grafana's built-ins and the dashboard's `variables` replaced by values."""
    for name, value in GRAFANA_BUILTINS:
        expr = expr.replace(name, value)
    known = set(variables)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name not in known:
            raise PromqlTextError(f"unknown template variable {match.group(0)!r} in {expr!r}")
        return TEMPLATE_VALUE

    return _TEMPLATE_VAR.sub(replace, expr)


_TOKEN = re.compile(
    r"""
      (?P<ws>\s+)
    | (?P<comment>\#[^\n]*)
    | (?P<string>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*'|`[^`]*`)
    | (?P<number>0[xX][0-9a-fA-F]+
        |(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)?)
    | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
    | (?P<punct>==|!=|>=|<=|=~|!~|[-+*/%^<>=,@:{}()\[\]])
    """,
    re.VERBOSE,
)
# PromQL keywords that take a parenthesised label list (grouping and vector matching).
_LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
     "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})
_CLOSER = {"(": ")", "[": "]", "{": "}"}


@dataclass(slots=True, frozen=True)
class Selector:
    """One instant/range vector selector: the metric name and its matcher text."""

    name: str
    matchers: str  # "{...}" as written, or "" for none

    @property
    def text(self) -> str:
        return f"{self.name}{self.matchers}"


def _tokens(expr: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None:
            raise PromqlTextError(f"cannot read {expr[pos : pos + 20]!r} in {expr!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind not in ("ws", "comment"):
            out.append((kind, match.group()))
        pos = match.end()
    return out


def _skip_group(tokens: list[tuple[str, str]], i: int) -> int:
    """Index just past the bracket group opening at tokens[i]."""
    opener = tokens[i][1]
    closer, depth = _CLOSER[opener], 0
    for j in range(i, len(tokens)):
        if tokens[j][1] == opener:
            depth += 1
        elif tokens[j][1] == closer:
            depth -= 1
            if depth == 0:
                return j + 1
    raise PromqlTextError(f"unbalanced {opener!r}")


def metric_selectors(expr: str) -> list[Selector]:
    """Every series selector in `expr`, in order (functions, keywords and labels skipped)."""
    tokens = _tokens(expr)
    found: list[Selector] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text in ("[",):  # range or subquery: durations only
            i = _skip_group(tokens, i)
            continue
        if text == "{":  # a selector without a metric name
            end = _skip_group(tokens, i)
            raise PromqlTextError(
                f"selector without a metric name: {''.join(t for _, t in tokens[i:end])!r}"
            )
        if kind != "ident":
            i += 1
            continue
        if text in _LABEL_LIST_KEYWORDS:
            i = _skip_group(tokens, i + 1) if nxt == "(" else i + 1
            continue
        if text in _KEYWORDS or text in _AGGREGATIONS or nxt == "(":
            i += 1
            continue
        if nxt == "{":
            end = _skip_group(tokens, i + 1)
            found.append(Selector(text, "".join(t for _, t in tokens[i + 1 : end])))
            i = end
        else:
            found.append(Selector(text, ""))
            i += 1
    return found


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>.+?)\s*,\s*\w+\s*\)\s*$", re.S)
_QUERY_RESULT = re.compile(r"^\s*query_result\(\s*(?P<expr>.+)\)\s*$", re.S)


def variable_query_expr(query: str) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query, or None if it has none."""
    if (m := _LABEL_VALUES.match(query)) is not None:
        return m.group("selector")
    if (m := _QUERY_RESULT.match(query)) is not None:
        return m.group("expr")
    if re.match(r"^\s*(label_names|label_values)\(\s*\w*\s*\)\s*$", query):
        return None  # asks for label names/values of all series: no selector
    raise PromqlTextError(f"unsupported variable query {query!r}")
