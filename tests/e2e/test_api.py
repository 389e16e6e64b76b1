"""The HTTP API of a real embedded `kibitz serve`."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import chess
import httpx
import pytest

from tests import net
from tests.e2e.conftest import Server, opera_puzzle, puzzle_solution, start_server, stop_server

FIXTURES = Path(__file__).parent.parent / "fixtures"


def wait_done(server: Server, sync_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        view: dict[str, Any] = net.get(f"{server.url}/api/syncs/{sync_id}").json()
        if view["status"] in ("done", "failed"):
            return view
        time.sleep(0.1)
    raise AssertionError(f"sync {sync_id} not finished: {view}")


def test_health_reports_every_component(server: Server) -> None:
    answer = net.get(f"{server.url}/api/health")
    assert answer.status_code == 200
    assert answer.json() == {
        "status": "ok",
        "components": {"store": "ok", "bus": "ok", "services": "ok", "engine": "ok"},
    }


def test_openapi_and_metrics_are_served(server: Server) -> None:
    # The schema is built on the first request: seconds of CPU on a busy machine.
    spec = net.get(f"{server.url}/openapi.json", timeout=60).json()
    assert "/api/players/{username}/sync" in spec["paths"]
    metrics = net.get(f"{server.url}/metrics", timeout=30).text
    assert "kibitz_messages_processed_total" in metrics
    assert re.search(
        r"kibitz_consumer_lag\{group=\"kibitz.store\",partition=\"0\",topic=\"games.raw\"\} \d",
        metrics,
    )


def test_the_offline_demo_is_imported_on_first_start(server: Server) -> None:
    deadline = time.monotonic() + 20
    games: list[dict[str, Any]] = []
    while time.monotonic() < deadline and len(games) < 1:
        games = net.get(f"{server.url}/api/players/Paul Morphy/games").json()["games"]
        time.sleep(0.1)
    assert [g["result"] for g in games] == ["1-0"]
    assert games[0]["opening"]["eco"] == "C41"


def test_sync_from_lichess_then_list_and_open_games(server: Server) -> None:
    answer = net.post(f"{server.url}/api/players/Alice/sync", json={"max": 25})
    assert answer.status_code == 202
    view = wait_done(server, answer.json()["id"])
    assert (view["games_received"], view["games_stored"]) == (25, 25)
    listing = net.get(f"{server.url}/api/players/alice/games", params={"limit": 10}).json()
    played = [g["played_at"] for g in listing["games"]]
    assert len(played) == 10 and played == sorted(played, reverse=True)
    game = net.get(f"{server.url}/api/games/{listing['games'][0]['id']}").json()
    assert game["moves_uci"] and len(game["clocks_cs"]) == len(game["moves_uci"])
    assert game["clock"] == {"initial": 180, "increment": 2}


def test_pgn_upload_imports_good_games_and_reports_the_broken_one(server: Server) -> None:
    pgn = (FIXTURES / "three_good_one_broken.pgn").read_bytes()
    answer = net.post(
        f"{server.url}/api/imports/pgn",
        files={"file": ("four.pgn", pgn, "application/x-chess-pgn")},
    )
    assert answer.status_code == 202
    view = wait_done(server, answer.json()["id"])
    assert view["status"] == "done"
    assert (view["games_stored"], view["games_rejected"]) == (3, 1)
    assert view["rejected"][0]["index"] == 3
    assert "illegal move" in view["rejected"][0]["reason"]
    game = net.get(f"{server.url}/api/games/q7ZvsdUF").json()
    assert game["pgn_evals"][0] == {"cp": 18}


def test_an_upload_over_the_limit_is_refused_with_413(server: Server) -> None:
    big = b'[Event "x"]\n\n1. e4 e5 *\n\n' * (50 * 1024 * 1024 // 26)
    try:
        answer = net.post(
            f"{server.url}/api/imports/pgn",
            files={"file": ("big.pgn", big, "text/plain")},
            timeout=60,
        )
    except httpx.WriteError:
        pytest.fail("the server should answer 413, not cut the upload")
    assert answer.status_code == 413
    assert answer.json()["error"] == "payload_too_large"


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "error"),
    [
        ("post", "/api/players/a/sync", {}, 422, "invalid_input"),
        ("post", "/api/players/Alice/sync", {"max": 0}, 422, "invalid_input"),
        ("get", "/api/games/nope", None, 404, "game_not_found"),
        ("get", "/api/games/nope/analysis", None, 404, "game_not_found"),  # one error, one code
        ("post", "/api/games/nope/analysis", {}, 404, "game_not_found"),
        ("get", "/api/syncs/nope", None, 404, "not_found"),
        ("get", "/api/players/alice/games?limit=0", None, 422, "invalid_input"),
        ("get", "/api/nothing-here", None, 404, "not_found"),
    ],
)
def test_bad_requests_get_a_clear_json_error(
    server: Server, method: str, path: str, body: Any, status: int, error: str
) -> None:
    answer = net.request(method, f"{server.url}{path}", json=body)
    assert answer.status_code == status
    assert answer.json()["error"] == error
    assert answer.json()["detail"]


def test_an_unknown_lichess_user_fails_its_sync(server: Server) -> None:
    answer = net.post(f"{server.url}/api/players/NobodyHere/sync")
    view = wait_done(server, answer.json()["id"])
    assert view["status"] == "failed" and "no user" in view["error"]


@pytest.mark.kafka
def test_serve_on_kafka_and_postgresql_is_healthy(
    tmp_path: Path, own_broker: str, fresh_pg_url: str
) -> None:
    running = start_server(
        tmp_path,
        {
            "KIBITZ_BUS_URL": f"kafka://{own_broker}",
            "KIBITZ_DATABASE_URL": fresh_pg_url,
            "KIBITZ_DEMO": "false",  # health is under test, not the demo's analysis
        },
    )
    try:
        health = net.get(f"{running.url}/api/health").json()
        assert health["components"] == {
            "store": "ok",
            "bus": "ok",
            "services": "ok",
            "engine": "ok",
        }
    finally:
        stop_server(running)


def test_write_endpoints_need_the_token_when_one_is_set(tmp_path: Path) -> None:
    running = start_server(tmp_path, {"KIBITZ_API_TOKEN": "s3cret", "KIBITZ_DEMO": "false"})
    try:
        refused = net.post(f"{running.url}/api/players/Alice/follow")
        assert refused.status_code == 401 and refused.json()["error"] == "unauthorized"
        allowed = net.post(
            f"{running.url}/api/players/Alice/follow", headers={"Authorization": "Bearer s3cret"}
        )
        assert allowed.status_code == 200 and allowed.json()["followed"] is True
    finally:
        stop_server(running)


def test_the_demo_follows_kibitz_demo_and_api_only_runs_no_services(tmp_path: Path) -> None:
    import asyncio
    import sqlite3

    from kibitz.adapters.eventlog_sqlite import SqliteEventLog

    quiet = start_server(tmp_path / "quiet", {"KIBITZ_DEMO": "false"})
    stop_server(quiet)
    with sqlite3.connect(quiet.home / "kibitz.db") as db:
        assert db.execute("SELECT count(*) FROM syncs").fetchone() == (0,)

    api_only = start_server(tmp_path / "api", {"KIBITZ_DEMO": "true"}, args=("--api-only",))
    stop_server(api_only)
    with sqlite3.connect(api_only.home / "kibitz.db") as db:
        assert db.execute("SELECT count(*) FROM syncs").fetchone() == (1,)  # the demo import

    async def store_lag() -> int:
        log = SqliteEventLog(api_only.home / "eventlog.db")
        await log.start()
        try:
            return sum((await log.lag("kibitz.store", "games.raw")).values())
        finally:
            await log.close()

    assert asyncio.run(store_lag()) == 3  # published, and no store service consumed them


def _demo_game(server: Server, player: str = "Paul Morphy") -> str:
    games = net.get(f"{server.url}/api/players/{player}/games").json()["games"]
    return str(games[0]["id"])


def test_analysis_is_requested_followed_over_sse_and_read(server: Server) -> None:
    game_id = _demo_game(server)
    assert net.post(f"{server.url}/api/games/nosuch/analysis").status_code == 404
    bad = net.post(f"{server.url}/api/games/{game_id}/analysis", json={"priority": "urgent"})
    assert bad.status_code == 422
    accepted = net.post(
        f"{server.url}/api/games/{game_id}/analysis", json={"priority": "interactive"}
    )
    # Queued, or already taken by a worker (a fast one), or done from an earlier request.
    assert accepted.status_code == 202
    assert accepted.json()["status"] in ("queued", "running", "done")
    events = []
    with net.stream(
        "GET", f"{server.url}/api/games/{game_id}/analysis/events", timeout=120
    ) as stream:
        for line in stream.iter_lines():
            if line.startswith("event: "):
                events.append(line.removeprefix("event: "))
                if events[-1] in ("done", "failed"):
                    break
    assert events[0] == "progress" and events[-1] == "done"
    view = net.get(f"{server.url}/api/games/{game_id}/analysis").json()
    assert view["status"] == "done" and view["phase"] == "deep" and view["progress"] == 1
    assert {"judgments", "largest_swing", "phases", "time_use"} <= set(view["results"])
    assert len(view["evals"]) == view["positions_total"] - 1
    report = net.get(f"{server.url}/api/players/Paul Morphy/report").json()
    assert report["analysed"] == 1 and report["accuracy"] is not None
    assert net.get(f"{server.url}/api/players/nobody/report").status_code == 404
    queued = net.post(f"{server.url}/api/players/nobody/analysis")
    assert queued.status_code == 404 and "sync or import" in queued.json()["detail"]


def test_puzzles_from_the_demo_are_served_attempted_and_counted(server: Server) -> None:
    opera = opera_puzzle(server)
    solution = puzzle_solution(server, opera)
    api = f"{server.url}/api/problems"
    puzzle = net.get(f"{api}/{opera}").json()
    assert puzzle["blunder"]["san"] in ("Nxd7", "Nxb8") and puzzle["solver"] == "white"
    assert "solution" not in puzzle and "_solution_san" not in puzzle
    solver_moves = solution[0::2]
    assert solution[-1] == "d1d8" and {"mate", f"mateIn{len(solver_moves)}"} <= set(
        puzzle["themes"]
    )
    board = chess.Board(puzzle["puzzle_fen"])
    first_san = board.san(chess.Move.from_uci(solution[0]))

    served = net.get(f"{api}/random")
    assert served.status_code == 200 and served.json()["served_count"] >= 1

    too_many = [*solution, "a7a6"][: len(solver_moves) + 1]
    bad = [
        ({"moves": solution[0]}, 422, "moves"),
        ({"moves": []}, 422, "moves"),
        ({"moves": ["d1d9"]}, 422, "not a UCI move"),
        ({"moves": ["d1h5"]}, 422, "not legal"),
        ({"moves": too_many}, 422, f"solution has {len(solver_moves)} moves"),
    ]
    for body, status, words in bad:
        answer = net.post(f"{api}/{opera}/attempts", json=body)
        assert answer.status_code == status, (body, answer.text)
        assert words in json.dumps(answer.json()), (body, answer.text)
    assert net.post(f"{api}/nope-1/attempts", json={"moves": ["e2e4"]}).status_code == 404
    assert net.get(f"{api}/{opera}").json()["attempts"] == 0  # refused ones count nothing

    other = next(m.uci() for m in board.legal_moves if m.uci() != solution[0])
    wrong = net.post(f"{api}/{opera}/attempts", json={"moves": [other]}).json()
    assert wrong["correct"] is False and wrong["expected"]["san"] == first_san
    right = net.post(f"{api}/{opera}/attempts", json={"moves": solver_moves}).json()
    assert right["complete"] is True and (right["attempts"], right["successes"]) == (2, 1)

    assert net.get(f"{api}/random", params={"theme": "nonsense"}).status_code == 422
    assert net.get(f"{api}/random", params={"player": "nobody"}).status_code == 404
    pool = net.get(f"{api}/pool").json()
    assert pool["total"] >= 1 and pool["by_theme"]["mate"]["total"] >= 1
    accepted = net.post(f"{api}/generate-bulk", json={"player": "Paul Morphy"})
    assert accepted.status_code == 202 and accepted.json()["games"] == 1
    assert net.post(f"{api}/generate-bulk", json={"player": "nobody"}).status_code == 404
