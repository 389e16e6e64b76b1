"""The auto-review loop end to end: a player followed on Lichess and on chess.com (fakes of
both) has new games arrive on each site; they are analysed without any request (real
Stockfish) and their mistakes become cards due the next day; reviewed in Chromium, one right
and one wrong, their due dates move as the FSRS library computes. The server's clock is moved
forward through its clock file."""

from __future__ import annotations

import random
import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import fsrs
import pytest
from playwright.sync_api import Page, expect

from tests import net
from tests.e2e.conftest import Server, click_move, logged, snap, start_server, stop_server
from tests.fakes.chesscom import FakeChessCom
from tests.fakes.lichess import BASE_TIME_MS, FakeLichess, random_game

pytestmark = [pytest.mark.browser, pytest.mark.slow(60)]


@pytest.fixture(scope="module")
def lichess() -> Iterator[FakeLichess]:
    fake = FakeLichess()
    fake.add_user("Trainee", 2, seed=11)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def chesscom() -> Iterator[FakeChessCom]:
    fake = FakeChessCom()
    fake.add_user("Trainee", 2, seed=4, days_apart=1)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def clock_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clock") / "offset"
    path.write_text("0")
    return path


@pytest.fixture(scope="module")
def trainer_server(
    tmp_path_factory: pytest.TempPathFactory,
    lichess: FakeLichess,
    chesscom: FakeChessCom,
    clock_file: Path,
) -> Iterator[Server]:
    running = start_server(
        tmp_path_factory.mktemp("train"),
        {
            "KIBITZ_LICHESS_URL": lichess.url,
            "KIBITZ_CHESSCOM_URL": chesscom.url,
            "KIBITZ_DEMO": "false",
            "KIBITZ_SCHEDULER_TICK": "1",
            "KIBITZ_CLOCK_FILE": str(clock_file),
            "KIBITZ_QUICK_NODES": "3000",
            "KIBITZ_DEEP_NODES": "20000",
            "KIBITZ_INTERACTIVE_DEEP_NODES": "20000",
            "KIBITZ_PROBLEM_NODES": "50000",
        },
    )
    try:
        yield running
    finally:
        stop_server(running)


def wait_for(check: Any, timeout: float = 120.0, every: float = 0.3) -> Any:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"not within {timeout}s")


def cards(server: Server) -> list[sqlite3.Row]:
    with sqlite3.connect(server.home / "kibitz.db") as db:
        db.row_factory = sqlite3.Row
        return db.execute("SELECT * FROM training_cards ORDER BY due, id").fetchall()


def analysed(server: Server, player: str) -> set[str]:
    with sqlite3.connect(server.home / "kibitz.db") as db:
        rows = db.execute(
            "SELECT g.id FROM games g JOIN analyses a ON a.game_id = g.id "
            "WHERE a.status = 'done' AND (g.white_id = ? OR g.black_id = ?)",
            (player, player),
        )
        return {r[0] for r in rows}


def settled(server: Server, player: str, games: set[str]) -> bool:
    """Whether every one of `games` is analysed and searched for puzzles, both told on the log
    (`analysis.completed`, `problems.generated`: the events the training service makes cards
    from), and the training service has read every event (its cards are made). A scan or a
    "done" stored is not enough: its event follows a moment later."""
    completed = {game for game, _ in logged(server.home, "analysis.completed")}
    searched = {game for game, _ in logged(server.home, "problems.generated")}
    if not (games <= analysed(server, player) and games <= completed and games <= searched):
        return False
    groups = net.get(f"{server.url}/api/ops", timeout=30).json()["groups"]
    return all(g["lag"] == 0 for g in groups if g["group"] == "kibitz.training")


def test_a_followed_players_new_games_become_cards_reviewed_right_and_wrong_in_the_browser(
    trainer_server: Server, lichess: FakeLichess, clock_file: Path, page: Page, tmp_path: Path
) -> None:
    url = trainer_server.url
    assert net.post(f"{url}/api/players/Trainee/follow").status_code == 200
    first = wait_for(
        lambda: (
            len(analysed(trainer_server, "trainee")) >= 2 and analysed(trainer_server, "trainee")
        )
    )
    # A new game arrives on Lichess: the next sync stores it and it is analysed too.
    new = random_game(random.Random(5), "new00001", "Trainee", "opp1", BASE_TIME_MS + 10**8)
    lichess.users["trainee"].append(new)
    wait_for(lambda: "new00001" in analysed(trainer_server, "trainee"))
    assert first < analysed(trainer_server, "trainee")
    # Every game analysed, its mistakes made cards, its puzzles searched and made cards too:
    # only then is the set of cards final (a later card would be due a day later).
    games = {g["id"] for g in lichess.users["trainee"]}
    wait_for(lambda: settled(trainer_server, "trainee", games))
    made = cards(trainer_server)
    assert "new00001" in {c["game_id"] for c in made if c["kind"] == "mistake"}
    assert all(c["player_id"] == "trainee" for c in made)
    assert {c["kind"] for c in made} <= {"mistake", "puzzle"}

    # Due the next day (its start, UTC), not before.
    now = time.time()
    tomorrow = datetime.fromtimestamp(now, UTC).date() + timedelta(days=1)
    start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, tzinfo=UTC).timestamp()
    assert {c["due"] for c in cards(trainer_server)} == {start}
    assert net.get(f"{url}/api/training/trainee/due").json()["due"] == 0
    clock_file.write_text(str(start - now + 3600))  # tomorrow, 01:00
    due = wait_for(lambda: net.get(f"{url}/api/training/trainee/due").json()["due"])
    assert due == len(made)

    page.goto(f"{url}/players/trainee")
    expect(page.locator("#t-due")).to_have_text(str(len(made)))
    page.get_by_role("link", name="Review my mistakes").click()
    expect(page).to_have_url(re.compile(r"/players/trainee/review$"))
    review = page.locator("#review")
    expect(review).to_have_attribute("data-state", "ask")
    snap(page, "review", tmp_path)

    right_id = review.get_attribute("data-card")
    right = next(c for c in made if c["id"] == right_id)
    click_move(page, right["best_uci"], "#review-board")
    expect(review).to_have_attribute("data-state", "right", timeout=60_000)
    expect(page.locator("#review-feedback")).to_contain_text("✓")
    snap(page, "review-right", tmp_path)
    page.click("#review-next")
    expect(review).to_have_attribute("data-state", "ask")
    wrong_id = review.get_attribute("data-card")
    wrong = next(c for c in made if c["id"] == wrong_id)
    click_move(page, wrong["played_uci"], "#review-board")
    expect(review).to_have_attribute("data-state", "wrong", timeout=60_000)
    expect(page.locator("#review-feedback")).to_contain_text("was the move")

    # The due dates FSRS gives for the same history (a new card, Good / Again at that time).
    after = {c["id"]: c for c in cards(trainer_server)}
    with sqlite3.connect(trainer_server.home / "kibitz.db") as db:
        at = dict(db.execute("SELECT card_id, at FROM card_reviews").fetchall())
    scheduler = fsrs.Scheduler(enable_fuzzing=False)
    for card_id, rating in ((right_id, fsrs.Rating.Good), (wrong_id, fsrs.Rating.Again)):
        expected, _ = scheduler.review_card(
            fsrs.Card(card_id=0, due=datetime.fromtimestamp(start, UTC)),
            rating,
            datetime.fromtimestamp(at[card_id], UTC),
        )
        assert after[card_id]["due"] == pytest.approx(expected.due.timestamp())
        assert after[card_id]["reviews"] == 1
    assert after[right_id]["due"] > after[wrong_id]["due"] > at[wrong_id]

    page.goto(f"{url}/players/trainee/dashboard?days=7")
    expect(page.locator("#d-due")).to_have_text(str(len(made) - 2))
    expect(page.locator("#d-review-streak")).to_contain_text("1 day")
    snap(page, "dashboard", tmp_path)

    # Insights across the analysed games; a number opens the games behind it.
    found = net.get(f"{url}/api/players/trainee/insights").json()
    assert found["games"] == len(analysed(trainer_server, "trainee"))
    page.goto(f"{url}/players/trainee/insights")
    white = page.locator('#i-colour tr[data-key="white"]')
    expect(white).to_contain_text(f"{found['colour']['white']['accuracy']}%")
    white.locator("summary").click()
    links = white.locator("details a")
    expect(links).to_have_count(found["colour"]["white"]["games"])
    links.first.click()
    expect(page).to_have_url(re.compile(r"/games/\w+(#ply=\d+)?$"))
    page.go_back()
    snap(page, "insights", tmp_path)
