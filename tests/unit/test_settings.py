"""Settings: defaults in KIBITZ_HOME, one-line errors naming the variable."""

from __future__ import annotations

from pathlib import Path

import pytest

from kibitz.errors import ConfigurationError
from kibitz.settings import load_settings


def test_defaults_live_in_kibitz_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("KIBITZ_HOME", str(tmp_path))
    settings = load_settings()
    assert settings.database_url == f"sqlite:///{tmp_path / 'kibitz.db'}"
    assert settings.bus_url == f"sqlite:///{tmp_path / 'eventlog.db'}"
    assert settings.lichess_url == "https://lichess.org"
    assert not settings.bus_is_kafka


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KIBITZ_BUS_URL", "amqp://nope"),
        ("KIBITZ_DATABASE_URL", "mysql://x"),
        ("KIBITZ_LICHESS_URL", "lichess.org"),
        ("KIBITZ_PORT", "99999"),
        ("KIBITZ_BUS_URL", "kafka://"),
    ],
)
def test_a_bad_value_names_its_variable_in_one_line(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    message = caught.value.detail
    assert message.startswith(variable + ":")
    assert "\n" not in message


def test_kafka_url_lists_every_broker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KIBITZ_BUS_URL", "kafka://a:9092, b:9093")
    settings = load_settings()
    assert settings.bus_is_kafka
    assert settings.kafka_bootstrap == ["a:9092", "b:9093"]


def test_a_request_for_one_game_gets_a_lighter_quick_pass_and_the_full_deep_pass(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Issue 21: the user waiting for one game gets the quick pass at half the batch budget
    unless told otherwise, then Lichess's user-request deep budget; batch work keeps its own."""
    from types import SimpleNamespace

    from kibitz.services.analysis import AnalysisWorker

    monkeypatch.setenv("KIBITZ_HOME", str(tmp_path))

    def budgets(**values: object) -> tuple[dict[str, int], dict[str, int]]:
        worker = AnalysisWorker(SimpleNamespace(settings=load_settings(**values)))  # type: ignore[arg-type]
        return worker._budgets("interactive", 0.0)[0], worker._budgets("batch", 0.0)[0]

    assert budgets() == ({"quick": 10_000, "deep": 1_000_000}, {"quick": 20_000, "deep": 300_000})
    assert budgets(quick_nodes=6_000)[0]["quick"] == 3_000
    assert budgets(interactive_quick_nodes=25_000)[0]["quick"] == 25_000
    monkeypatch.setenv("KIBITZ_INTERACTIVE_QUICK_NODES", "0")
    with pytest.raises(ConfigurationError, match="KIBITZ_INTERACTIVE_QUICK_NODES"):
        load_settings()
