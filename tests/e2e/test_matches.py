"""Matches through a real `kibitz serve`: a whole match over the HTTP API, its replay from the
log, and the match page in headless Chromium."""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import chess
import pytest
from playwright.sync_api import Page, expect

from kibitz.adapters.store_sql import SqlStore
from tests import net
from tests.e2e.conftest import KIBITZ, Server, click_move, snap, start_server, stop_server
from tests.support import write_match_positions

MATCH_ENV = {
    "KIBITZ_DEMO": "false",
    "KIBITZ_MATCH_NODES": "20000",
    "KIBITZ_MATCH_RESPONSE_SECONDS": "60",
    "KIBITZ_MATCH_VOTE_SECONDS": "30",
    "KIBITZ_ROBOTS_TICK": "0.5",
}


@pytest.fixture(scope="module")
def match_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """An embedded kibitz whose puzzle pool holds the five match positions."""
    tmp = tmp_path_factory.mktemp("matches")
    store = SqlStore(f"sqlite:///{tmp / 'home' / 'kibitz.db'}")
    store.upgrade()
    store.unit_of_work(lambda s: write_match_positions(s, store))
    store.dispose()
    server = start_server(tmp, MATCH_ENV)
    try:
        yield server
    finally:
        stop_server(server)


def _until(server: Server, match_id: str, check: Any, timeout: float = 90) -> dict[str, Any]:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        answer = net.get(f"{server.url}/api/matches/{match_id}")
        if answer.status_code == 200 and check(answer.json()):
            return dict(answer.json())
        time.sleep(0.1)
    raise AssertionError(f"match {match_id} did not get there in {timeout}s")


def _phase(number: int, status: str) -> Any:
    def check(m: dict[str, Any]) -> bool:
        return len(m["rounds"]) >= number and m["rounds"][number - 1]["status"] == status

    return check


def test_a_five_round_match_with_three_robots_over_http_then_replay(
    match_server: Server,
) -> None:
    api = f"{match_server.url}/api"
    assert net.post(f"{api}/matches", json={"rounds": 0}).status_code == 422
    too_many = net.post(f"{api}/matches", json={"rounds": 9, "robots_per_round": 3})
    assert too_many.status_code == 422 and "5 usable positions" in too_many.text
    made = net.post(f"{api}/matches", json={"rounds": 5, "robots_per_round": 3})
    assert made.status_code == 201, made.text
    match_id = made.json()["id"]
    assert net.get(f"{api}/matches/nope").status_code == 404

    previous: set[str] = set()
    votes_cast = 0
    for number in range(1, 6):
        state = _until(match_server, match_id, _phase(number, "responding"))
        current = state["rounds"][number - 1]
        robots = set(current["robots"])
        assert len(robots) == 3 and len(current["letters"]) == 4
        assert not robots & previous, "a robot excluded for this round plays in it"
        url = f"{api}/matches/{match_id}/rounds/{number}"
        move = min(chess.Board(current["fen"]).legal_moves, key=lambda m: m.uci()).uci()
        if number == 1:
            illegal = net.post(f"{url}/response", json={"move": "e9e4", "reason": "why"})
            assert illegal.status_code == 422 and "not a legal move" in illegal.text
            early = net.post(f"{url}/vote", json={"identity": "A"})
            assert early.status_code == 409 and "not voting" in early.text
            ahead = net.post(
                f"{api}/matches/{match_id}/rounds/2/response", json={"move": move, "reason": "x"}
            )
            assert ahead.status_code == 409
        sent = net.post(f"{url}/response", json={"move": move, "reason": "it is legal"})
        assert sent.status_code == 202, sent.text
        state = _until(match_server, match_id, _phase(number, "voting"))
        current = state["rounds"][number - 1]
        mine = current["my_letter"]
        others = [a["letter"] for a in current["answers"] if a["letter"] != mine]
        assert len(others) == 3  # every robot answered in time
        if number == 1:
            again = net.post(f"{url}/response", json={"move": move, "reason": "again"})
            assert again.status_code == 409
            selfish = net.post(f"{url}/vote", json={"identity": mine})
            assert selfish.status_code == 422 and "your own answer" in selfish.text
        voted = net.post(f"{url}/vote", json={"identity": others[0]})
        assert voted.status_code == 202, voted.text
        if number == 1:
            twice = net.post(f"{url}/vote", json={"identity": others[1]})
            assert twice.status_code == 409
        state = _until(match_server, match_id, _phase(number, "completed"))
        votes_cast += state["rounds"][number - 1]["voted"]
        late = net.post(f"{url}/response", json={"move": move, "reason": "late"})
        assert late.status_code == 409
        previous = robots

    final = _until(match_server, match_id, lambda m: m["status"] == "completed")
    assert final["ranking"][0] == final["standings"][0]["who"]
    # The scores add up: engine points and votes of every round, per contender (a robot
    # personality's instances together).
    totals: dict[str, int] = {}
    for rnd in final["rounds"]:
        for answer in rnd["answers"]:
            who = answer["who"].split(" (")[0]
            totals[who] = totals.get(who, 0) + answer["engine_points"] + answer["votes"]
    assert {s["who"]: s["score"] for s in final["standings"] if s["score"]} == {
        who: points for who, points in totals.items() if points
    }
    assert sum(a["votes"] for r in final["rounds"] for a in r["answers"]) == votes_cast

    pool = net.get(f"{api}/robots/pool").json()
    assert pool["total"] >= 6 and all(r["state"] == "idle" for r in pool["robots"])

    env = {**os.environ, "KIBITZ_HOME": str(match_server.home)}
    replayed = subprocess.run(
        [KIBITZ, "replay", "match", match_id], env=env, capture_output=True, text=True, timeout=60
    )
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "equal to the stored state" in " ".join(replayed.stdout.split())
    # A fresh process rebuilds the match and the pool from the state topics alone.
    for args in (["match", match_id, "--from-state"], ["robots"]):
        rebuilt = subprocess.run(
            [KIBITZ, "replay", *args], env=env, capture_output=True, text=True, timeout=60
        )
        assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
        assert "equal to the stored state" in " ".join(rebuilt.stdout.split())
    unknown = subprocess.run(
        [KIBITZ, "replay", "match", "nope"], env=env, capture_output=True, text=True, timeout=60
    )
    assert unknown.returncode == 2 and "no records of match 'nope'" in unknown.stderr


@pytest.mark.browser
def test_the_match_page_plays_a_whole_match(
    match_server: Server, page: Page, tmp_path: Path
) -> None:
    page.goto(f"{match_server.url}/matches")
    page.fill("#m-rounds", "2")
    page.fill("#m-robots", "2")
    page.click("#m-start")
    expect(page).to_have_url(re.compile(r"/matches/[0-9a-f-]{36}$"))
    root = page.locator("#match")
    for number in (1, 2):
        expect(root).to_have_attribute("data-round", str(number), timeout=30_000)
        expect(root).to_have_attribute("data-phase", "responding", timeout=30_000)
        expect(page.locator("#m-phase")).to_contain_text("your move, and why?")
        page.fill("#m-reason", "no move yet")
        page.click("#m-send")
        expect(page.locator("#m-error")).to_contain_text("play your move on the board first")
        board = chess.Board(page.locator("#match").get_attribute("data-fen") or "")
        first = min(board.legal_moves, key=lambda m: m.uci())
        move = board.san(first)
        click_move(page, first.uci(), board="#m-board", drag=True)  # dragged on the board
        expect(page.locator("#m-chosen")).to_have_text(f"Your move: {move}")
        page.fill("#m-reason", "the first move I saw")
        page.click("#m-send")
        expect(root).to_have_attribute("data-phase", "voting", timeout=60_000)
        expect(page.locator("#m-answers li")).to_have_count(3)
        expect(page.locator("#m-answers li.mine")).to_contain_text(move)
        page.locator("#m-answers button").first.click()
        results = page.locator("#m-results")
        expect(results).to_have_attribute("data-round", str(number), timeout=60_000)
        expect(page.locator("#m-results-title")).to_contain_text(f"Round {number} results")
        expect(page.locator("#m-results-list li")).to_have_count(3)
        expect(page.locator("#m-results-list li.mine")).to_contain_text("you:")
    expect(page.locator("#m-final")).to_contain_text("Match over. Ranking: 1.", timeout=30_000)
    match_id = page.url.rsplit("/", 1)[1]
    standings = net.get(f"{match_server.url}/api/matches/{match_id}").json()["standings"]
    assert [s["who"] for s in standings].count("you") == 1 and len(standings) <= 1 + 4
    expect(page.locator("#m-standings tr")).to_have_count(1 + len(standings))  # and a header
    snap(page, "match", tmp_path)
    page.goto(f"{match_server.url}/robots")
    expect(page.locator("#robots")).to_contain_text("idle")
