"""The production deployment files stay true to the code (Docker cannot run here): the compose
file's structure, that each service it runs is one `kibitz services` lists (and none is left
out), and that the dashboard only charts metrics kibitz exports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import REGISTRY

from kibitz.runtime.bootstrap import SERVICES

DEPLOY = Path(__file__).parents[2] / "deploy"


def _compose() -> dict[str, Any]:
    return dict(yaml.safe_load((DEPLOY / "docker-compose.yml").read_text()))


def test_every_kibitz_service_runs_in_its_own_container_and_only_those() -> None:
    services = _compose()["services"]
    ran = {}
    for name, spec in services.items():
        command = spec.get("command") or []
        if command[:2] == ["kibitz", "run"]:
            ran[name] = command[2]
            assert spec["deploy"]["replicas"] >= 1
            assert spec["environment"]["KIBITZ_METRICS_PORT"] == "9100"
    assert set(ran.values()) == set(SERVICES), "compose and `kibitz services` disagree"
    assert services["analysis"]["deploy"]["replicas"] > 1
    assert services["api"]["command"][:3] == ["kibitz", "serve", "--api-only"]
    assert services["migrate"]["command"] == ["kibitz", "db", "upgrade"]


def test_kafka_is_kraft_postgres_17_behind_pgbouncer_in_transaction_mode() -> None:
    services = _compose()["services"]
    kafka = services["kafka"]["environment"]
    assert "controller" in kafka["KAFKA_PROCESS_ROLES"] and "zookeeper" not in services
    assert services["postgres"]["image"].startswith("postgres:17")
    assert services["pgbouncer"]["environment"]["PGBOUNCER_POOL_MODE"] == "transaction"
    url = services["api"]["environment"]["KIBITZ_DATABASE_URL"]
    assert "@pgbouncer:6432/" in url and url.startswith("postgresql+psycopg://")
    assert services["api"]["environment"]["KIBITZ_BUS_URL"] == "kafka://kafka:9092"
    assert "KIBITZ_API_TOKEN" in services["api"]["environment"]


def test_prometheus_scrapes_every_service_and_grafana_gets_the_dashboard() -> None:
    services = _compose()["services"]
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    scraped = {
        name
        for job in config["scrape_configs"]
        for sd in job.get("dns_sd_configs", [])
        for name in sd["names"]
    }
    runs_kibitz = {n for n, s in services.items() if (s.get("command") or [])[:1] == ["kibitz"]}
    assert runs_kibitz - {"migrate"} == scraped
    mounts = " ".join(services["grafana"]["volumes"])
    assert "kibitz.json" in mounts and "provisioning" in mounts


def test_the_dashboard_charts_only_metrics_kibitz_exports() -> None:
    import kibitz.adapters.commentator_llm
    import kibitz.adapters.lichess_http
    import kibitz.services.commentary
    import kibitz.services.problems
    import kibitz.services.tracker  # noqa: F401  (their metrics register on import)

    exported = set()
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            exported.add(sample.name)
        exported.add(metric.name)
    dashboard = json.loads((DEPLOY / "grafana" / "kibitz.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= set(re.findall(r"\bkibitz_[a-z_]+", target["expr"]))
    assert used, "the dashboard charts nothing"
    for name in used:
        family = name.removesuffix("_bucket").removesuffix("_total")
        assert name in exported or family in exported, name
    titles = " ".join(p["title"] for p in dashboard["panels"]).lower()
    for topic in ("lag", "p99", "positions", "cache", "429", "pool", "tracked", "robot"):
        assert topic in titles, topic
