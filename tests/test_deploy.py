"""deploy/: systemd unit, container image, compose stack and Kubernetes manifests, checked
as far as this machine allows without a Docker engine, a cluster or a Grafana server.

Always: the files agree with each other and with trunkwatch (configs load with the real
config loader, ports/names/paths/uids match across files), and `systemd-analyze` verifies
and scores the unit. When installed: `docker-compose config` (Debian docker-compose)
validates the compose file against the Compose schema, `kubernetes-validate` (PyPI)
validates the manifests against the Kubernetes API schemas, `kubectl kustomize` builds
the kustomization. docs/deploy.md says what is and is not checked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from peers import require_binary
from ruamel.yaml import YAML

from monitor.config import Config, config_from_text, default_agent_name
from monitor.durations import parse_duration
from monitor.store.writer import STOP_SAMPLES_S

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "systemd" / "trunkwatch.service"
SYSUSERS = DEPLOY / "systemd" / "trunkwatch.sysusers"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
COMPOSE_DIR = DEPLOY / "compose"
K8S = DEPLOY / "kubernetes"
STATE_DIR = "/var/lib/trunkwatch"
CONFIG_PATH = "/etc/trunkwatch/trunkwatch.yaml"
VENV_BIN = "/opt/trunkwatch/.venv/bin/trunkwatch"
IMAGE_UID = 10001
# `systemd-analyze security` scores 0 (locked down) to 10 (exposed); ≤ 2 is its "OK" band
# and what this unit reaches with an empty capability set and a syscall filter.
MAX_EXPOSURE = 2.0
# Kubernetes API version the manifests are validated against (an LTS-like minor that the
# StatefulSet's fields, e.g. fsGroupChangePolicy, all exist in).
K8S_VERSION = "1.30.0"
TOOL_TIMEOUT_S = 60


def load_yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def load_config(text: str, tmp_path: Path, env: dict[str, str] | None = None) -> Config:
    """The real loader on a deployment's config; its state dir becomes a temp dir here."""
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    return config_from_text(text.replace(STATE_DIR, str(state)), source="<deploy>", env=env or {})


def password_envs(text: str) -> set[str]:
    return set(re.findall(r"^\s*password_env:\s*(\w+)\s*$", text, re.M))


# ---- systemd ----------------------------------------------------------------------------------


def unit_directives() -> list[tuple[str, str, str]]:
    """(section, key, value) for every line of the unit; keys may repeat."""
    out: list[tuple[str, str, str]] = []
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        out.append((section, key, value))
    return out


# The hardening the deployment promises (docs/deploy.md); each value exactly.
REQUIRED_UNIT = {
    "User": "trunkwatch",
    "Group": "trunkwatch",
    "ExecStart": f"{VENV_BIN} run -c {CONFIG_PATH}",
    "ExecReload": "/bin/kill -HUP $MAINPID",  # systemctl reload: the config without a restart
    "StateDirectory": "trunkwatch",
    "WorkingDirectory": STATE_DIR,
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "RestrictSUIDSGID": "yes",
    "LockPersonality": "yes",
    "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native",
    "RestartPreventExitStatus": "2",  # config errors exit 2: restarting cannot fix them
}


@pytest.mark.parametrize(("key", "value"), REQUIRED_UNIT.items())
def test_unit_hardening(key: str, value: str) -> None:
    service = [(k, v) for s, k, v in unit_directives() if s == "Service"]
    assert (key, value) in service, f"[Service] {key}={value} missing"


def test_unit_checks_the_config_then_migrates_before_the_daemon() -> None:
    """A bad config stops the unit (exit 2); the schema is migrated by its own process, so
    the daemon never loads Alembic (docs/deploy.md)."""
    pre = [v for s, k, v in unit_directives() if (s, k) == ("Service", "ExecStartPre")]
    assert pre == [
        f"{VENV_BIN} check-config -c {CONFIG_PATH}",
        f"{VENV_BIN} migrate -c {CONFIG_PATH}",
    ]


def test_every_stop_timeout_outlasts_the_stops_sample_writing() -> None:
    """A stop writes waiting evidence rows for up to STOP_SAMPLES_S, then the journal's
    heartbeat and the store's close (~3 s at 100,000 trunks): no deployment kills it first."""
    compose = load_yaml(COMPOSE_DIR / "compose.yaml")["services"]["trunkwatch"]
    cluster = load_yaml(COMPOSE_DIR / "cluster" / "compose.yaml")["services"]
    statefulset = load_yaml(K8S / "statefulset.yaml")["spec"]["template"]["spec"]
    timeouts = {
        "systemd TimeoutStopSec": next(
            v for s, k, v in unit_directives() if (s, k) == ("Service", "TimeoutStopSec")
        ),
        "compose stop_grace_period": compose["stop_grace_period"],
        "Kubernetes terminationGracePeriodSeconds": statefulset["terminationGracePeriodSeconds"],
    }
    for name in ("agent-a", "agent-b"):
        timeouts[f"cluster {name} stop_grace_period"] = cluster[name]["stop_grace_period"]
    for where, value in timeouts.items():
        assert parse_duration(value) >= STOP_SAMPLES_S + 10, f"{where} = {value}"


def test_unit_verifies_with_systemd(tmp_path: Path) -> None:
    """`systemd-analyze verify` with the venv's trunkwatch replaced by a stub executable."""
    analyze = require_binary("systemd-analyze")
    stub = tmp_path / "trunkwatch"
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace(VENV_BIN, str(stub)))
    proc = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
    )
    # verify exits 0 on unknown keys too: any message about our unit is a problem. It also
    # loads every installed unit and may complain about those (Debian's request-tracker5
    # names mysql/apache2): lines naming other units are not ours to judge.
    ours = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not line.startswith(("/lib/systemd/", "/usr/lib/systemd/", "/etc/"))
    ]
    assert proc.returncode == 0 and not ours, proc.stderr


def test_unit_exposure_score() -> None:
    analyze = require_binary("systemd-analyze")
    proc = subprocess.run(
        [analyze, "security", "--offline=yes", "--no-pager", str(UNIT)],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", proc.stdout + proc.stderr)
    assert match is not None, proc.stdout + proc.stderr
    assert float(match.group(1)) <= MAX_EXPOSURE, proc.stdout


def test_sysusers_creates_the_service_user() -> None:
    lines = [ln for ln in SYSUSERS.read_text().splitlines() if ln and not ln.startswith("#")]
    fields = re.findall(r'"[^"]*"|\S+', lines[0])
    assert fields[:2] == ["u", "trunkwatch"] and fields[4] == STATE_DIR


# ---- container image ------------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    out: list[tuple[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def last(instruction: str) -> str:
    return [rest for word, rest in dockerfile_instructions() if word == instruction][-1]


def test_image_runs_trunkwatch_as_its_own_user() -> None:
    assert last("USER") == f"{IMAGE_UID}:{IMAGE_UID}"
    assert json.loads(last("ENTRYPOINT")) == ["trunkwatch"]
    assert json.loads(last("CMD")) == ["run", "-c", CONFIG_PATH]
    assert f"--uid {IMAGE_UID}" in DOCKERFILE.read_text()
    # The same venv as the systemd unit's ExecStart.
    assert "python -m venv /opt/trunkwatch/.venv" in DOCKERFILE.read_text()
    assert json.loads(last("VOLUME")) == [STATE_DIR]


def test_image_copies_only_what_exists_and_is_not_ignored() -> None:
    ignore = [ln for ln in DOCKERIGNORE.read_text().splitlines() if ln and ln[0] != "#"]
    assert ignore[0] == "*"
    allowed = {ln[1:].rstrip("/") for ln in ignore if ln.startswith("!")}
    for word, rest in dockerfile_instructions():
        if word == "COPY" and not rest.startswith("--from"):
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert source in allowed, f"{source} is excluded by {DOCKERIGNORE.name}"


# ---- compose ----------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = load_yaml(COMPOSE_DIR / "compose.yaml")
    return data


def bind_mounts(service: dict[str, Any]) -> dict[str, Path]:
    """container path → host path of the service's bind mounts (relative to compose.yaml)."""
    out: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            out[target] = (COMPOSE_DIR / source).resolve()
    return out


def test_compose_services_and_their_files() -> None:
    services = compose()["services"]
    assert set(services) == {"trunkwatch", "responder", "prometheus", "grafana"}
    for name, service in services.items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (for {target}) does not exist"
    assert bind_mounts(services["trunkwatch"])[CONFIG_PATH] == COMPOSE_DIR / "trunkwatch.yaml"
    prom = bind_mounts(services["prometheus"])
    assert prom["/etc/prometheus/rules.yml"] == ROOT / "dashboards" / "prometheus" / "rules.yml"
    # prometheus.yml names rules.yml relative to itself: the two mounts share a directory.
    assert load_yaml(COMPOSE_DIR / "prometheus.yml")["rule_files"] == ["rules.yml"]
    assert prom["/etc/prometheus/prometheus.yml"] == COMPOSE_DIR / "prometheus.yml"


def test_compose_grafana_provisioning_points_at_the_dashboards() -> None:
    grafana = bind_mounts(compose()["services"]["grafana"])
    provider = load_yaml(COMPOSE_DIR / "grafana/provisioning/dashboards/trunkwatch.yaml")
    path = provider["providers"][0]["options"]["path"]
    assert grafana[path] == ROOT / "dashboards" / "grafana"
    assert grafana["/etc/grafana/provisioning"] == COMPOSE_DIR / "grafana" / "provisioning"
    home = compose()["services"]["grafana"]["environment"][
        "GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"
    ]
    assert (ROOT / "dashboards" / "grafana" / Path(home).relative_to(path)).exists()
    (source,) = load_yaml(COMPOSE_DIR / "grafana/provisioning/datasources/prometheus.yaml")[
        "datasources"
    ]
    # No uid: the dashboards find it through their ${datasource} variable.
    assert source["type"] == "prometheus" and source["isDefault"] and "uid" not in source
    assert source["url"] == "http://prometheus:9090"


def test_compose_trunkwatch_config_loads_and_is_scraped(tmp_path: Path) -> None:
    text = (COMPOSE_DIR / "trunkwatch.yaml").read_text()
    cfg = load_config(text, tmp_path)
    assert cfg.store.url.endswith(f"{tmp_path}/state/trunkwatch.db")
    assert cfg.http.listen == "0.0.0.0"
    service = compose()["services"]["trunkwatch"]
    assert f"127.0.0.1:{cfg.http.port}:{cfg.http.port}" in service["ports"]
    (job,) = [
        j
        for j in load_yaml(COMPOSE_DIR / "prometheus.yml")["scrape_configs"]
        if j["job_name"] == "trunkwatch"
    ]
    assert job["static_configs"][0]["targets"] == [f"trunkwatch:{cfg.http.port}"]
    # The demo trunk is the responder service, on the port its command listens on.
    responder = compose()["services"]["responder"]["command"]
    port = responder[responder.index("--port") + 1]
    assert [t.uri for t in cfg.trunks] == [f"sip:responder:{port}"]


def test_compose_secrets_come_from_the_environment() -> None:
    text = (COMPOSE_DIR / "compose.yaml").read_text()
    env_example = (COMPOSE_DIR / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+)", text)):
        assert re.search(rf"^{variable}=", env_example, re.M), f"{variable} not in .env.example"
    environment = compose()["services"]["trunkwatch"]["environment"]
    for name in password_envs((COMPOSE_DIR / "trunkwatch.yaml").read_text()):
        assert name in environment


def test_compose_file_validates_with_docker_compose(tmp_path: Path) -> None:
    binary = require_binary("docker-compose")  # a failure under CI, a skip on a laptop
    env = {**os.environ, "GRAFANA_ADMIN_PASSWORD": "test-only"}
    proc = subprocess.run(
        [binary, "-f", str(COMPOSE_DIR / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    # Without the Grafana password the stack refuses to start rather than use a default.
    env.pop("GRAFANA_ADMIN_PASSWORD")
    proc = subprocess.run(
        [binary, "-f", str(COMPOSE_DIR / "compose.yaml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode != 0 and "GRAFANA_ADMIN_PASSWORD" in proc.stderr


# ---- the two-agent compose stack (issue 12) ---------------------------------------------------

CLUSTER_DIR = COMPOSE_DIR / "cluster"


def test_cluster_agents_share_postgres_and_differ_only_in_name_and_site(tmp_path: Path) -> None:
    stack = load_yaml(CLUSTER_DIR / "compose.yaml")["services"]
    configs = {}
    for agent in ("agent-a", "agent-b"):
        cfg = load_config((CLUSTER_DIR / f"{agent}.yaml").read_text(), tmp_path)
        assert (cfg.agent, cfg.site) == (agent, f"site-{agent[-1]}")
        assert cfg.cluster.enabled and cfg.store.url.startswith("postgresql://")
        assert "PGPASSWORD" in stack[agent]["environment"]  # never in the URL
        configs[agent] = cfg
    a, b = configs.values()
    assert a.store.url == b.store.url and a.trunks == b.trunks
    assert "postgres:5432" in a.store.url and "postgres" in stack
    env_example = (CLUSTER_DIR / ".env.example").read_text()
    for variable in set(re.findall(r"\$\{(\w+)", (CLUSTER_DIR / "compose.yaml").read_text())):
        assert re.search(rf"^{variable}=", env_example, re.M), f"{variable} not in .env.example"


def test_cluster_compose_validates_with_docker_compose(tmp_path: Path) -> None:
    binary = require_binary("docker-compose")
    env = {**os.environ, "POSTGRES_PASSWORD": "test-only"}
    proc = subprocess.run(
        [binary, "-f", str(CLUSTER_DIR / "compose.yaml"), "config", "-q"],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr


# ---- Kubernetes -------------------------------------------------------------------------------


def k8s_resources() -> dict[str, dict[str, Any]]:
    """kind → resource, for the files kustomization.yaml lists."""
    out: dict[str, dict[str, Any]] = {}
    for name in load_yaml(K8S / "kustomization.yaml")["resources"]:
        resource = load_yaml(K8S / name)
        assert resource["kind"] not in out, f"two {resource['kind']} resources"
        out[resource["kind"]] = resource
    return out


def test_kustomization_lists_every_manifest_but_the_secret_example() -> None:
    listed = set(load_yaml(K8S / "kustomization.yaml")["resources"])
    on_disk = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert on_disk - listed == {"secret.example.yaml"}
    assert set(k8s_resources()) == {
        "Namespace",
        "ConfigMap",
        "Service",
        "StatefulSet",
        "ServiceMonitor",
        "PrometheusRule",
    }


def test_statefulset_service_and_servicemonitor_agree() -> None:
    r = k8s_resources()
    sts, svc, mon = r["StatefulSet"], r["Service"], r["ServiceMonitor"]
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert svc["spec"]["selector"].items() <= labels.items()
    assert mon["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sts["spec"]["serviceName"] == svc["metadata"]["name"]
    assert svc["spec"]["clusterIP"] == "None"  # the StatefulSet's governing Service
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    (port,) = container["ports"]
    (svc_port,) = svc["spec"]["ports"]
    assert svc_port["targetPort"] == port["name"] == mon["spec"]["endpoints"][0]["port"]
    assert svc["metadata"]["name"] == "trunkwatch"  # job label the monitor-down alerts select
    namespace = load_yaml(K8S / "kustomization.yaml")["namespace"]
    assert mon["spec"]["namespaceSelector"]["matchNames"] == [namespace]
    assert r["Namespace"]["metadata"]["name"] == namespace


def test_statefulset_keeps_sqlite_on_its_volume_and_is_locked_down() -> None:
    sts = k8s_resources()["StatefulSet"]
    assert sts["spec"]["replicas"] == 1  # SQLite has one writer
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = [c["metadata"]["name"] for c in sts["spec"]["volumeClaimTemplates"]]
    assert mounts[STATE_DIR] in claims
    assert container["args"] == ["run", "-c", CONFIG_PATH]
    security = pod["securityContext"]
    assert security["runAsNonRoot"] and security["runAsUser"] == IMAGE_UID
    assert security["fsGroup"] == IMAGE_UID
    c_security = container["securityContext"]
    assert c_security["readOnlyRootFilesystem"] is True
    assert c_security["allowPrivilegeEscalation"] is False
    assert c_security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False


def test_configmap_config_loads_and_its_secrets_are_wired(tmp_path: Path) -> None:
    r = k8s_resources()
    sts, configmap = r["StatefulSet"], r["ConfigMap"]
    pod = sts["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    config_volume = next(v for v in pod["volumes"] if "configMap" in v)
    assert config_volume["configMap"]["name"] == configmap["metadata"]["name"]
    mount = next(m for m in container["volumeMounts"] if m["name"] == config_volume["name"])
    key = Path(CONFIG_PATH).relative_to(mount["mountPath"]).as_posix()
    text = configmap["data"][key]

    env = {e["name"]: e for e in container["env"]}
    wanted = password_envs(text)
    assert wanted and wanted <= set(env)
    cfg = load_config(text, tmp_path, env=dict.fromkeys(wanted, "test-only"))
    assert cfg.http.listen == "0.0.0.0"
    assert cfg.http.port == container["ports"][0]["containerPort"]

    secret = load_yaml(K8S / "secret.example.yaml")
    for name in wanted:
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref["name"] == secret["metadata"]["name"]
        assert ref["key"] in secret["stringData"]


def test_manifests_validate_against_kubernetes_schemas() -> None:
    import kubernetes_validate  # a dev dependency (pyproject)

    checked = []
    for path in sorted(K8S.glob("*.yaml")):
        resource = load_yaml(path)
        if path.name == "kustomization.yaml" or "monitoring.coreos.com" in resource["apiVersion"]:
            continue  # kustomize's own file and the Prometheus Operator's CRDs: no schema
        kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        checked.append(resource["kind"])
    assert sorted(checked) == ["ConfigMap", "Namespace", "Secret", "Service", "StatefulSet"]


def test_kustomization_builds() -> None:
    kubectl = require_binary("kubectl")
    proc = subprocess.run(
        [kubectl, "kustomize", str(K8S)], capture_output=True, text=True, timeout=TOOL_TIMEOUT_S
    )
    assert proc.returncode == 0, proc.stderr
    kinds = re.findall(r"^kind: (\w+)$", proc.stdout, re.M)
    assert sorted(kinds) == sorted(k8s_resources())
    assert proc.stdout.count("namespace: trunkwatch") == len(kinds) - 1  # all but the Namespace


def test_cluster_overlay_builds_three_agents_on_postgres(tmp_path: Path) -> None:
    kubectl = require_binary("kubectl")
    proc = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "kubernetes-cluster")],
        capture_output=True, text=True, timeout=TOOL_TIMEOUT_S,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    built = {r["kind"]: r for r in YAML(typ="safe").load_all(proc.stdout)}
    stateful = built["StatefulSet"]["spec"]
    assert stateful["replicas"] == 3 and stateful["podManagementPolicy"] == "Parallel"
    (container,) = stateful["template"]["spec"]["containers"]
    env = {e["name"]: e for e in container["env"]}
    assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "trunkwatch-secrets"
    assert "TRUNKWATCH_CARRIER_B_PASSWORD" in env  # the base's variables are kept
    text = built["ConfigMap"]["data"]["trunkwatch.yaml"]
    cfg = load_config(text, tmp_path, env={"TRUNKWATCH_CARRIER_B_PASSWORD": "x"})
    assert cfg.cluster.enabled and cfg.store.url.startswith("postgresql://")
    assert cfg.agent == default_agent_name()  # each pod is named after its host
