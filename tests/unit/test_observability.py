"""The dashboard and the alert rules chart and watch metrics kibitz exports, and every metric
the seeds name has a panel (`promtool` checks and tests the rules in `./dev.sh test`)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import REGISTRY

DEPLOY = Path(__file__).parents[2] / "deploy"
NAME = re.compile(r"\bkibitz_[a-z_]+\b")

# What seed 003 and seed 004 ask to see (issue 20), by the name kibitz exports.
REQUIRED = {
    "kibitz_messages_processed_total",
    "kibitz_active_tasks",
    "kibitz_consumer_lag",
    "kibitz_messages_failed_total",
    "kibitz_handler_seconds_bucket",
    "kibitz_analysis_wait_seconds_bucket",
    "kibitz_analysis_phase_seconds_bucket",
    "kibitz_analysis_first_result_seconds_bucket",
    "kibitz_analysis_seconds_by_length_bucket",
    "kibitz_analyses_finished_total",
    "kibitz_matches_active",
    "kibitz_match_round_seconds_bucket",
    "kibitz_matches_total",
    "kibitz_robot_assignment_seconds_bucket",
    "kibitz_robot_pool_scaling_events_total",
    "kibitz_robot_response_seconds_bucket",
    "kibitz_robot_answers_total",
    "kibitz_dlq_parked",
    "kibitz_group_workers_alive",
    "kibitz_process_restarts_total",
}


def exported() -> set[str]:
    """Every sample name the processes of kibitz can export."""
    import kibitz.runtime.bootstrap  # noqa: F401 - registers every service's and adapter's

    names: set[str] = set()
    for family in REGISTRY.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names |= {family.name + s for s in ("_bucket", "_sum", "_count")}
        else:
            names.add(family.name)
    return names


def dashboard_exprs() -> list[str]:
    panels = json.loads((DEPLOY / "grafana" / "kibitz.json").read_text())["panels"]
    return [t["expr"] for p in panels for t in p.get("targets", [])]


def test_every_metric_the_seeds_name_is_exported_and_charted() -> None:
    charted = {name for expr in dashboard_exprs() for name in NAME.findall(expr)}
    assert REQUIRED <= exported(), sorted(REQUIRED - exported())
    assert REQUIRED <= charted, sorted(REQUIRED - charted)


def test_the_dashboard_and_the_alerts_use_only_exported_metrics() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exprs = dashboard_exprs() + [r["expr"] for g in rules["groups"] for r in g["rules"]]
    used = {name for expr in exprs for name in NAME.findall(expr)}
    assert used <= exported(), sorted(used - exported())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {"KibitzBacklogGrowing", "KibitzDeadLettersParked", "KibitzNoLiveWorkers"} <= alerts
    assert "KibitzHighErrorRate" in alerts


def test_the_dashboard_has_the_seeds_stat_panels_with_thresholds() -> None:
    panels = json.loads((DEPLOY / "grafana" / "kibitz.json").read_text())["panels"]
    stats = {p["title"]: p for p in panels if p["type"] == "stat"}
    assert {"Messages processed / s", "Active tasks"} <= set(stats)
    for title in ("Queue length (lag, all groups)", "Error rate %"):
        steps = stats[title]["fieldConfig"]["defaults"]["thresholds"]["steps"]
        assert [s["color"] for s in steps] == ["green", "yellow", "red"]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids))
