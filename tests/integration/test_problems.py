"""Puzzles end to end: real games analysed by Debian's Stockfish, searched for puzzles by the
problems service, served and attempted; on SQLite and on PostgreSQL.

The games are the public-domain scores in `kibitz/demo/classics.pgn`, each with a famous
tactical finish: Morphy v Duke Karl and Count Isouard (Paris 1858, "the Opera game", ending
16.Qb8+ Nxb8 17.Rd8#) and Anderssen v Dufresne (Berlin 1852, "the Evergreen game", ending
20.Rxe7+ Nxe7 21.Qxd7+ Kxd7 22.Bf5+ Ke8 23.Bd7+ Kf8 24.Bxe7#).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import chess
import pytest
from sqlalchemy import select

from kibitz import topics
from kibitz.adapters.engine_uci import EnginePool
from kibitz.adapters.store_models import Problem, ProblemScan
from kibitz.domain import puzzles
from kibitz.domain.puzzles import Search
from kibitz.errors import InvalidInput, NotFound
from kibitz.events import ProblemsGenerated, ProblemsGenerationRequested
from kibitz.read.problems import problem_by_id
from kibitz.runtime.bootstrap import Container
from kibitz.services import problems
from kibitz.services.analysis import request_player_analysis
from kibitz.services.ingest import import_pgn
from kibitz.settings import load_settings
from tests.support import (
    lichess_puzzle_rows,
    puzzle_replay_pgn,
    read_topic,
    running,
    settings_for,
    until,
    wait_for_sync,
)

CLASSICS = Path(problems.__file__).parent.parent / "demo" / "classics.pgn"
BUDGET = {"quick_nodes": 5000, "deep_nodes": 100_000, "problem_nodes": 300_000, "engines": 2}


def _replay(problem: Problem) -> chess.Board:
    board = chess.Board(problem.fen)
    board.push_uci(problem.blunder_uci)
    for uci in problem.solution:
        move = chess.Move.from_uci(uci)
        assert move in board.legal_moves, f"{problem.id}: {uci} is illegal"
        board.push(move)
    return board


async def _searched(container: Container, count: int) -> list[Problem]:
    async def all_searched() -> list[Problem] | None:
        def read(session: Any) -> list[Problem] | None:
            scans = session.scalars(select(ProblemScan)).all()
            if len(scans) < count:
                return None
            return list(session.scalars(select(Problem).order_by(Problem.id)))

        return await container.sql.read(read)

    return await until(all_searched, timeout=240)


async def test_puzzles_are_found_in_real_games_with_their_solution_once(tmp_path: Path) -> None:
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'kibitz.db'}", **BUDGET)
    async with running(settings, ["ingest", "store", "analysis", "problems"]) as container:
        sync_id = await import_pgn(container.ctx, CLASSICS.read_text(), "classics.pgn")
        view = await wait_for_sync(container, sync_id)
        assert view["games_stored"] == 3
        queued = await request_player_analysis(container.ctx, "Adolf Anderssen")
        queued += await request_player_analysis(container.ctx, "Paul Morphy")
        assert queued == 3
        found = await _searched(container, 3)

        by_game: dict[str, list[Problem]] = {}
        for problem in found:
            by_game.setdefault(problem.black_id or "", []).append(problem)
            board = _replay(problem)
            if problem.kind == "mate":
                assert board.is_checkmate(), f"{problem.id} does not end in mate"
            assert problem.generator_version == puzzles.GENERATOR_VERSION
            assert 600 <= problem.rating <= 2800

        # The Opera game: after 16...Nxb8, 17.Rd8# is the only mate (a back-rank mate).
        opera = by_game["duke karl / count isouard"]
        # The puzzle ends with 17.Rd8#: a mate in one from ply 32, or the mate in two from
        # ply 30 when the search at this budget sees 16.Qb8+!! as the only good move (its
        # second best is near the only-move margin, so small searches decide either way).
        mates = [p for p in opera if p.solution[-1:] == ["d1d8"]]
        assert mates, [(p.ply, p.solution) for p in opera]
        shape = (mates[0].ply, len(mates[0].solution))
        assert shape in ((32, 1), (30, 3)), shape
        in_n = "mateIn1" if shape == (32, 1) else "mateIn2"
        assert {"mate", in_n, "backRankMate"} <= set(mates[0].themes)

        # The Evergreen: 19...Rg8? allowed the forced mate 20.Rxe7+ Nxe7 21.Qxd7+!! Kxd7
        # 22.Bf5+ Ke8 23.Bd7+ Kf8 24.Bxe7#. The engine may start the puzzle at 19...Rg8 or at
        # 20...Nxe7 and may find another mating route (the pool's two engines hold different
        # hash tables, so small searches differ), seen as a mate or as a decisive advantage.
        evergreen = by_game["jean dufresne"]
        combination = [p for p in evergreen if p.ply in (38, 40)]
        assert combination, [(p.ply, p.solution) for p in evergreen]
        assert combination[0].solution[0] in ("e1e7", "a4d7")  # 20.Rxe7+ or 21.Qxd7+
        # One line covers its plies: no second puzzle starts inside it.
        lines = sorted((p.ply, p.ply + len(p.solution)) for p in evergreen)
        assert all(end < start for (_, end), (start, _) in itertools.pairwise(lines))

        events = [p for _, p in await read_topic(container, topics.PROBLEMS_GENERATED)]
        assert sorted(e.game_id for e in events if isinstance(e, ProblemsGenerated)) == sorted(
            {p.game_id for p in found} | {e.game_id for e in events}
        )
        assert sum(len(e.problem_ids) for e in events) == len(found)

        # Asking again searches nothing twice and stores nothing twice.
        accepted = await problems.request_generation(container.ctx, "Adolf Anderssen")
        assert accepted["games_to_search"] == 0
        ids = await problems.ProblemsWorker(container.ctx).generate_game(found[0].game_id)
        assert ids == []
        again = await container.sql.read(
            lambda s: s.scalars(select(Problem.id).order_by(Problem.id)).all()
        )
        assert list(again) == [p.id for p in found]


@asynccontextmanager
async def _engine_search(tmp_path: Path, nodes: int | None = None) -> AsyncIterator[Search]:
    """One Stockfish of Debian's, as the problems service searches: MultiPV lines at `nodes`
    (the default puzzle budget unless given)."""
    settings = load_settings(home=tmp_path, demo=False)
    path = settings.stockfish_path()
    assert path is not None
    pool = EnginePool(path, 1)
    await pool.start()

    async def search(board: chess.Board, lines: int) -> list[puzzles.Line]:
        found = await pool.analyse_lines(board, nodes or settings.problem_nodes, lines)
        return [puzzles.Line(e.best_uci, e.score) for e in found if e.best_uci and e.score]

    try:
        yield search
    finally:
        await pool.close()


async def test_a_game_from_a_position_gets_its_first_move_judged_and_lichess_s_line(
    tmp_path: Path,
) -> None:
    """Two real Lichess puzzles replayed as games (a FEN setup, the opponent's mistake, the
    solution): the starting position is searched, so the mistake, the game's first move, is a
    candidate; the puzzle found is Lichess's, reply for reply."""
    wanted = {"00EXM": "mate", "00I8g": "advantage"}  # a back-rank mate in 2; a win of a rook
    rows = [r for r in lichess_puzzle_rows() if r["PuzzleId"] in wanted]
    pgn = "\n\n".join(puzzle_replay_pgn(r["PuzzleId"], r["FEN"], r["Moves"].split()) for r in rows)
    settings = settings_for(tmp_path, f"sqlite:///{tmp_path / 'kibitz.db'}", **BUDGET)
    async with running(settings, ["ingest", "store", "analysis", "problems"]) as container:
        view = await wait_for_sync(container, await import_pgn(container.ctx, pgn, "p.pgn"))
        assert view["games_stored"] == 2
        await request_player_analysis(container.ctx, "lichess-white")
        found = {p.fen: p for p in await _searched(container, 2)}

        def starts(session: Any) -> list[tuple[int | None, int | None]]:
            from kibitz.adapters.store_models import Analysis

            return [(a.start_cp, a.start_mate) for a in session.scalars(select(Analysis))]

        assert all(
            cp is not None or mate is not None for cp, mate in await container.sql.read(starts)
        )

        def scans(session: Any) -> list[tuple[str, int, list[Any] | None]]:
            return [
                (s.game_id, s.candidates, s.rejected) for s in session.scalars(select(ProblemScan))
            ]

        for row in rows:
            moves = row["Moves"].split()
            puzzle = found.get(row["FEN"])
            assert puzzle is not None, (  # with the candidates each scan rejected, and why
                f"{row['PuzzleId']}: no puzzle at the game's first move; found "
                f"{[(p.ply, p.blunder_uci) for p in found.values()]}; scans "
                f"{await container.sql.read(scans)}"
            )
            assert (puzzle.ply, puzzle.blunder_uci, puzzle.kind) == (
                1,
                moves[0],
                wanted[row["PuzzleId"]],
            )
            solver = moves[1::2]
            for step in range(len(solver)):
                answer = await problems.record_attempt(container.ctx, puzzle.id, solver[: step + 1])
                assert answer["correct"], (row["PuzzleId"], step, answer)
                if step < len(solver) - 1:
                    assert answer["reply"]["uci"] == moves[2 + 2 * step]
            assert answer["complete"]


async def test_a_position_with_two_equally_good_winning_moves_is_rejected(
    tmp_path: Path,
) -> None:
    async with _engine_search(tmp_path, 300_000) as search:
        # Black's queen hangs to the pawn and to the knight alike: two winning moves.
        two = chess.Board("k7/8/8/3q4/4P3/2N5/8/6K1 w - - 0 1")
        lines = await search(two, 2)
        assert {line.uci for line in lines} == {"e4d5", "c3d5"}
        assert all(puzzles.win_chances(line.score) > 0.9 for line in lines)
        verdict = await puzzles.solve(two, "advantage", search)
        assert not verdict.ok and verdict.rejected == "no solver move is the only good one"
        assert verdict.searches == 1

        # The same with the knight gone: only the pawn wins the queen, the only move.
        one = chess.Board("k7/8/8/3q4/4P3/8/8/6K1 w - - 0 1")
        lines = await search(one, 2)
        assert lines[0].uci == "e4d5"
        gap = puzzles.win_chances(lines[0].score) - puzzles.win_chances(lines[1].score)
        assert gap > puzzles.ATTACK_GAP


# lichess-puzzler's own "not a puzzle" positions (`generator/test.py`: the position, the move
# that seems to hand the other side a win), each rejected there; the first was a puzzle of an
# early version (its `test_puzzle_2`, a mate in 4) until a deeper look found a second good move
# six plies in.
NOT_PUZZLES = [
    ("3R4/1Q2nk2/4p2p/4n3/BP3ppP/P7/5PP1/2r3K1 w - - 2 39", "g1h2", "mate"),
    ("2kr3r/ppp2pp1/1b6/1P2p3/4P3/P2B2P1/2P2PP1/R4RK1 w - - 0 18", "f1d1", "mate"),
    ("8/5p1k/4p1p1/4Q3/3Pp1Kp/4P2P/5qP1/8 w - - 2 44", "e5e4", "mate"),
    (
        "rnb1k1nr/ppp2p1p/3p1qp1/2b1p3/2B1P3/2NP1Q2/PPP2PPP/R1B1K1NR b KQkq - 1 6",
        "c8g4",
        "advantage",
    ),
    ("5k2/5ppp/2r1p3/1p6/1b1R4/p1n1P1P1/B4PKP/1N6 w - - 2 34", "b1c3", "advantage"),
]


async def test_lichess_puzzler_s_own_non_puzzles_are_rejected(tmp_path: Path) -> None:
    async with _engine_search(tmp_path) as search:
        for fen, move, kind in NOT_PUZZLES:
            board = chess.Board(fen)
            board.push_uci(move)
            verdict = await puzzles.solve(board, kind, search)
            assert not verdict.ok, (fen, move, verdict)
            assert verdict.rejected
        # The mate in 4 of the first: the line goes on until a second good move appears.
        board = chess.Board(NOT_PUZZLES[0][0])
        board.push_uci(NOT_PUZZLES[0][1])
        verdict = await puzzles.solve(board, "mate", search)
        assert verdict.rejected is not None and verdict.rejected.startswith("more than one")
        assert verdict.searches >= 2


def _row(index: int, served_at: datetime | None) -> dict[str, Any]:
    # One trivial position under many ids: serving looks only at ids, themes and times.
    return {
        "id": f"t{index:03d}-32",
        "game_id": f"t{index:03d}",
        "ply": 32,
        "fen": chess.STARTING_FEN,
        "blunder_uci": "e2e4",
        "solution": ["e7e5"],
        "kind": "advantage",
        "themes": ["advantage", "fork" if index % 2 else "pin"],
        "rating": 1000,
        "solver_color": "black",
        "white_id": "ana" if index % 3 else "bo",
        "black_id": "cy",
        "generator_version": puzzles.GENERATOR_VERSION,
        "created_at": datetime(2026, 1, 1, tzinfo=UTC),
        "last_served_at": served_at,
        "served_count": 0 if served_at is None else 1,
        "attempts": 0,
        "successes": 0,
    }


async def _seed(container: Container, rows: list[dict[str, Any]]) -> None:
    from kibitz.adapters.store_models import ProblemTheme

    def write(session: Any) -> None:
        session.execute(container.sql.insert(Problem), rows)
        session.execute(
            container.sql.insert(ProblemTheme),
            [{"problem_id": r["id"], "theme": t} for r in rows for t in r["themes"]],
        )

    await container.sql.run(write)


async def test_attempts_are_checked_and_counted_and_bad_ones_refused(
    tmp_path: Path, database_url: str
) -> None:
    settings = settings_for(tmp_path, database_url)
    async with running(settings, []) as container:
        board = chess.Board("r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4")
        row = _row(1, None) | {
            "id": "scholar-7",
            "fen": "r1bqkbnr/pppp1ppp/2n5/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR b KQkq - 3 3",
            "blunder_uci": "g8f6",
            "solution": ["h5f7"],
            "kind": "mate",
            "solver_color": "white",
        }
        assert board.fen() == _after(row["fen"], "g8f6")
        await _seed(container, [row])
        store = container.sql

        async def attempt(moves: list[str]) -> dict[str, Any]:
            return await problems.record_attempt(container.ctx, "scholar-7", moves)

        wrong = await attempt(["h5f5"])
        assert wrong["correct"] is False and wrong["wrong_at"] == 0
        assert wrong["expected"] == {"uci": "h5f7", "san": "Qxf7#"}
        assert (wrong["attempts"], wrong["successes"]) == (1, 0)
        for bad, why in (
            (["h5h8"], "not legal"),
            (["zz99"], "not a UCI move"),
            (["h5f7", "e8f7"], "solution has 1 moves"),
            ([], "at least one move"),
        ):
            with pytest.raises(InvalidInput, match=why):
                await attempt(bad)
        with pytest.raises(NotFound):
            await problems.record_attempt(container.ctx, "nope-1", ["e2e4"])
        solved = await attempt(["h5f7"])
        assert solved["correct"] and solved["complete"] and solved["played"]["san"] == "Qxf7#"
        assert (solved["attempts"], solved["successes"]) == (2, 1)
        stored = await store.read(lambda s: s.get(Problem, "scholar-7"))
        assert (stored.attempts, stored.successes) == (2, 1)
        # The puzzle's page reads the same whichever way the store takes (PostgreSQL: one
        # statement on its asyncio pool), and an unknown id is not found either way.
        assert (await store.hot() is None) == store.is_sqlite
        shown = await container.reader.problem("scholar-7")
        assert shown == await store.read(lambda s: problem_by_id(s, "scholar-7"))
        assert shown["attempts"] == 2 and "_solution_san" not in shown
        with pytest.raises(NotFound):
            await container.reader.problem("nope-1")


def _after(fen: str, uci: str) -> str:
    board = chess.Board(fen)
    board.push_uci(uci)
    return board.fen()


async def test_serving_is_least_recently_served_first_and_asks_for_more_when_low(
    tmp_path: Path,
) -> None:
    settings = settings_for(
        tmp_path, f"sqlite:///{tmp_path / 'kibitz.db'}", problems_min_unserved=3
    )
    async with running(settings, []) as container:
        old = datetime(2026, 6, 1, tzinfo=UTC)
        # Six served long ago (in a known order), four never served.
        rows = [_row(i, old + timedelta(minutes=10 - i)) for i in range(6)]
        rows += [_row(i, None) for i in range(6, 10)]
        await _seed(container, rows)
        served = [(await problems.serve(container.ctx))["id"] for _ in range(10)]
        assert set(served[:4]) == {f"t{i:03d}-32" for i in range(6, 10)}  # never served first
        assert served[4:] == [f"t{i:03d}-32" for i in range(5, -1, -1)]  # then oldest first
        # The four never-served ones ran below 3: one request for more (debounced).
        requests = [p for _, p in await read_topic(container, topics.PROBLEMS_REQUESTED)]
        assert [(r.player, r.reason) for r in requests] == [(None, "pool_low")]
        assert isinstance(requests[0], ProblemsGenerationRequested)

        fork = await problems.serve(container.ctx, theme="fork")
        assert "fork" in fork["themes"]
        assert (await problems.serve(container.ctx, player="bo"))["id"].startswith("t")
        with pytest.raises(InvalidInput, match="unknown theme"):
            await problems.serve(container.ctx, theme="nonsense")
        with pytest.raises(NotFound):
            await problems.serve(container.ctx, player="nobody")
        pool = await container.reader.problem_pool(None)
        assert pool["total"] == 10 and pool["never_served"] == 0
        assert pool["by_theme"]["advantage"]["total"] == 10
        assert pool["by_theme"]["fork"]["total"] == 5


async def test_concurrent_clients_on_postgresql_never_get_one_puzzle_twice(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    import httpx

    from tests.e2e.conftest import start_server, stop_server

    settings = settings_for(tmp_path, fresh_pg_url)
    old = datetime(2026, 6, 1, tzinfo=UTC)
    rows = [_row(i, None) for i in range(200)]
    rows += [_row(i, old + timedelta(seconds=i)) for i in range(200, 300)]
    async with running(settings, []) as container:
        await _seed(container, rows)
    server = start_server(
        tmp_path / "serve",
        {"KIBITZ_DATABASE_URL": fresh_pg_url, "KIBITZ_DEMO": "false"},
        timeout=30,
        args=("--api-only",),
    )
    try:
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60) as client:
            answers = await asyncio.gather(
                *(client.get("/api/problems/random") for _ in range(200))
            )
            assert [a.status_code for a in answers] == [200] * 200
            ids = [a.json()["id"] for a in answers]
            assert len(set(ids)) == 200, "a puzzle was served twice while others remained"
            assert set(ids) == {f"t{i:03d}-32" for i in range(200)}  # the never-served ones
            assert all("_solution_san" not in a.json() for a in answers)
            assert {a.json()["rating_kind"] for a in answers} == {"estimate"}  # item 12
            later = [(await client.get("/api/problems/random")).json()["id"] for _ in range(5)]
            assert later == [f"t{i:03d}-32" for i in range(200, 205)]  # then oldest first
    finally:
        stop_server(server)


async def test_the_circuit_breaker_opens_on_engine_failures_probes_and_closes(
    tmp_path: Path,
) -> None:
    """The evaluator's breaker, around a real Stockfish that dies and cannot come back."""
    import os
    import signal

    from kibitz.errors import EngineUnavailable
    from kibitz.runtime.breaker import CircuitBreaker
    from kibitz.services.evaluator import Evaluator

    path = load_settings(home=tmp_path, demo=False).stockfish_path()
    assert path is not None
    now = [0.0]
    pool = EnginePool(path, 1)
    await pool.start()
    breaker = CircuitBreaker("test", failures_to_open=2, reset_after=30, clock=lambda: now[0])
    evaluator = Evaluator(None, engine=pool, breaker=breaker)
    try:
        board = chess.Board()
        assert len(await evaluator.lines(board, 20_000, 2, "problems")) == 2
        pool.path = "/nonexistent/stockfish"  # the engine can't come back
        for pid in pool.pids():
            os.kill(pid, signal.SIGKILL)
        for _ in range(2):
            with pytest.raises(EngineUnavailable):
                await evaluator.lines(board, 20_000, 2, "problems")
        assert breaker.state == "open"
        searches = pool.searches
        with pytest.raises(EngineUnavailable, match="searches are paused"):
            await evaluator.evaluate(board, 20_000, "live")
        assert pool.searches == searches  # not even tried while open
        pool.path = path  # the engine is back; after reset_after one probe goes through
        now[0] += 31
        assert breaker.state == "half-open"
        assert len(await evaluator.lines(board, 20_000, 2, "problems")) == 2
        assert breaker.state == "closed"
    finally:
        await pool.close()


async def test_the_pool_of_a_player_counts_only_their_searched_games(tmp_path: Path) -> None:
    """`games_searched` once counted every game whatever the player (issue 17, item 10)."""
    fixtures = Path(__file__).parent.parent / "fixtures"
    text = (
        (fixtures / "lichess_study_chapter.pgn").read_text()
        + "\n"
        + (fixtures / "lichess_broadcast_round.pgn").read_text()
    )
    async with running(settings_for(tmp_path, f"sqlite:///{tmp_path / 'k.db'}"), ["store"]) as c:
        assert (await wait_for_sync(c, await import_pgn(c.ctx, text)))["games_stored"] == 4

        def scan_all(session: Any) -> None:
            for game_id in ("hO2QSrD3", "pjFW7Z3B", "vLMnoCct", "b0eP7FAA"):
                session.add(ProblemScan(game_id=game_id, version=puzzles.GENERATOR_VERSION))

        await c.sql.run(scan_all)
        carlsen = await c.reader.problem_pool("Magnus Carlsen")
        everyone = await c.reader.problem_pool(None)
    assert (carlsen["games_searched"], everyone["games_searched"]) == (1, 4)


async def test_serving_on_postgresql_outlives_ended_connections_and_says_503_without_a_store(
    fresh_pg_url: str,
) -> None:
    """PostgreSQL serves puzzles over a pool of asyncio connections of its own. When the
    server ends them (a restart, an administrator), the next serve takes a new connection
    instead of failing; with the store gone, a serve is refused as unavailable (503), not an
    internal error."""
    import psycopg

    from kibitz.adapters.repositories_sql import SqlRepositories
    from kibitz.adapters.store_sql import SqlStore
    from kibitz.errors import UpstreamUnavailable
    from kibitz.ports.store import ProblemScanResult
    from tests.conftest import PG_ADMIN_URL, drop_database
    from tests.support import stored_puzzle

    sql = SqlStore(fresh_pg_url)
    await asyncio.to_thread(sql.upgrade)
    repos = SqlRepositories(sql)
    name = fresh_pg_url.rsplit("/", 1)[1]
    scan = ProblemScanResult("g0", 1, 10, 20, [], 0.5)
    try:
        await repos.problems.save_scan(scan, [stored_puzzle(f"g{i}-1") for i in range(3)], 1.0)
        first, _ = await repos.problems.serve(None, None, 1.0, 5)
        assert await sql.hot() is not None  # the asyncio pool served it
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchone()
        assert ended is not None and ended[0] >= 1
        second, _ = await repos.problems.serve(None, None, 2.0, 5)
        assert second["id"] != first["id"] and second["served_count"] == 1
        drop_database(name)
        with pytest.raises(UpstreamUnavailable):
            await repos.problems.serve(None, None, 3.0, 5)
    finally:
        await sql.aclose()
