"""Prometheus rules and configs through promtool (Debian `prometheus`): syntax, the alert
unit tests in rules_test.yml, and the Prometheus configs shipped in deploy/."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
RULES_DIR = ROOT / "dashboards" / "prometheus"
RULES = RULES_DIR / "rules.yml"
RULES_TEST = RULES_DIR / "rules_test.yml"
PROMETHEUS_CONFIGS = (
    ROOT / "deploy" / "prometheus" / "prometheus.yml",
    ROOT / "deploy" / "compose" / "prometheus.yml",
)
PROMETHEUS_RULE_CRD = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
DEPLOY_DOC = ROOT / "docs" / "deploy.md"
SEVERITIES = frozenset({"critical", "warning"})
PROMTOOL_TIMEOUT_S = 60


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def alerts() -> list[dict[str, Any]]:
    return [r for g in load_yaml(RULES)["groups"] for r in g["rules"] if "alert" in r]


def promtool(path: str, *args: str, cwd: Path | None = None) -> tuple[int, str]:
    proc = subprocess.run(
        [path, *args], cwd=cwd, capture_output=True, text=True, timeout=PROMTOOL_TIMEOUT_S
    )
    return proc.returncode, proc.stdout + proc.stderr


def test_check_rules(promtool_path: str) -> None:
    rc, out = promtool(promtool_path, "check", "rules", str(RULES))
    assert rc == 0, out
    count = sum(len(g["rules"]) for g in load_yaml(RULES)["groups"])
    assert f"SUCCESS: {count} rules found" in out, out


def test_rule_unit_tests_pass(promtool_path: str) -> None:
    rc, out = promtool(promtool_path, "test", "rules", RULES_TEST.name, cwd=RULES_DIR)
    assert rc == 0, out
    assert "SUCCESS" in out, out


def test_rule_unit_tests_catch_a_broken_rule(promtool_path: str, tmp_path: Path) -> None:
    """Negative control: TrunkDown waiting 10 minutes instead of 30 s fails the unit tests."""
    shutil.copy(RULES_TEST, tmp_path / RULES_TEST.name)
    text = RULES.read_text()
    trunk_down = text.index("- alert: TrunkDown\n")
    broken = text[:trunk_down] + text[trunk_down:].replace("for: 30s", "for: 10m", 1)
    assert broken != text
    (tmp_path / RULES.name).write_text(broken)
    rc, out = promtool(promtool_path, "test", "rules", RULES_TEST.name, cwd=tmp_path)
    assert rc != 0, out
    assert "alertname: TrunkDown" in out, out


def test_every_alert_is_unit_tested_firing() -> None:
    firing: set[str] = set()
    for case in load_yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            if check["exp_alerts"]:
                firing.add(check["alertname"])
    names = {a["alert"] for a in alerts()}
    assert names == firing, f"alerts without a firing test: {sorted(names - firing)}"


@pytest.mark.parametrize("alert", alerts(), ids=lambda a: str(a["alert"]))
def test_alert_labels_and_annotations(alert: dict[str, Any]) -> None:
    assert alert["labels"]["severity"] in SEVERITIES
    assert alert["annotations"]["summary"].strip()
    assert alert["annotations"]["description"].strip()
    assert alert["alert"] in DEPLOY_DOC.read_text(), "docs/deploy.md must say what to do"


@pytest.mark.parametrize("config", PROMETHEUS_CONFIGS, ids=lambda p: str(p.relative_to(ROOT)))
def test_deploy_prometheus_configs(promtool_path: str, config: Path, tmp_path: Path) -> None:
    """The shipped configs load rules.yml from beside them, as their deployments mount it."""
    shutil.copy(config, tmp_path / "prometheus.yml")
    shutil.copy(RULES, tmp_path / "rules.yml")
    rc, out = promtool(promtool_path, "check", "config", "prometheus.yml", cwd=tmp_path)
    assert rc == 0, out
    assert "SUCCESS: 1 rule files found" in out, out
    jobs = [job["job_name"] for job in load_yaml(config)["scrape_configs"]]
    assert "trunkwatch" in jobs  # the monitor-down alerts select up{job="trunkwatch"}


def test_prometheus_rule_resource_has_the_same_rules() -> None:
    resource = load_yaml(PROMETHEUS_RULE_CRD)
    assert (resource["apiVersion"], resource["kind"]) == (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    )
    assert resource["spec"]["groups"] == load_yaml(RULES)["groups"]
