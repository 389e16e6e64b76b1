"""The in-memory twin of `kibitz.ports.store.Store`: every repository on plain dicts, for fast
service tests. It keeps the SQL adapters' promises (the repository contract suite runs on both):
each method is atomic (no await inside), leases hold until they expire, a puzzle is served to
one caller, an index is counted into its sync once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from itertools import count
from typing import Any

import chess

from kibitz.domain.analysis import GameInput, PlyEval
from kibitz.domain.engine import EngineEval
from kibitz.domain.games import GameRecord, content_id
from kibitz.domain.judgment import Judgment, judge_move, stored_score
from kibitz.domain.robots import PERSONALITIES
from kibitz.domain.training import START_RATING, START_RD, START_VOL, Rating
from kibitz.errors import Conflict, GameNotFound, NotFound
from kibitz.ports.store import (
    AnalysisJob,
    Card,
    CardSource,
    Claim,
    LiveGame,
    NewCard,
    PhaseResult,
    PoolChange,
    ProblemScanResult,
    PuzzleSource,
    RobotInstance,
    ScalePolicy,
    StoredPuzzle,
)


@dataclass
class _State:
    players: dict[str, dict[str, Any]] = field(default_factory=dict)
    games: dict[str, GameRecord] = field(default_factory=dict)
    syncs: dict[str, dict[str, Any]] = field(default_factory=dict)
    sync_entries: set[tuple[str, int]] = field(default_factory=set)
    sync_games: dict[tuple[str, str], bool] = field(default_factory=dict)
    analyses: dict[str, dict[str, Any]] = field(default_factory=dict)
    evals: dict[tuple[str, str], list[PlyEval]] = field(default_factory=dict)
    results: dict[str, dict[tuple[str, int], tuple[str, dict[str, Any]]]] = field(
        default_factory=dict
    )
    problems: dict[str, dict[str, Any]] = field(default_factory=dict)
    scans: dict[str, dict[str, Any]] = field(default_factory=dict)
    matches: dict[str, dict[str, Any]] = field(default_factory=dict)
    robots: dict[str, dict[str, Any]] = field(default_factory=dict)
    assignments: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    tracked: dict[str, dict[str, Any]] = field(default_factory=dict)
    sessions: dict[str, LiveGame] = field(default_factory=dict)
    ended: dict[str, tuple[str, str, float]] = field(default_factory=dict)  # game → its end
    commentary: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    submissions: set[tuple[str, int, str, str]] = field(default_factory=set)
    evals_cache: dict[str, dict[int, EngineEval]] = field(default_factory=dict)
    cards: dict[str, dict[str, Any]] = field(default_factory=dict)
    card_answers: dict[tuple[str, str], tuple[bool, float | None]] = field(default_factory=dict)
    card_reviews: list[dict[str, Any]] = field(default_factory=list)
    training_scans: set[tuple[str, str]] = field(default_factory=set)
    solvers: dict[str, dict[str, Any]] = field(default_factory=dict)
    puzzle_attempts: list[dict[str, Any]] = field(default_factory=list)
    rated_firsts: set[tuple[str, str]] = field(default_factory=set)
    seq: count[int] = field(default_factory=count)


def _mine(game: GameRecord, player: str | None) -> bool:
    return player is None or player in (game.white_id, game.black_id)


class MemoryPlayers:
    def __init__(self, state: _State) -> None:
        self.s = state

    async def follow(self, player_id: str, name: str, followed: bool) -> None:
        self.s.players.setdefault(player_id, {"name": name, "last_synced_at": None})
        self.s.players[player_id]["followed"] = followed

    async def followed(self) -> list[str]:
        return [pid for pid, p in self.s.players.items() if p.get("followed")]

    async def due_for_sync(self, due_before: float) -> list[tuple[str, int | None]]:
        busy = {
            s["username"] for s in self.s.syncs.values() if s["status"] in ("queued", "running")
        }
        out = []
        for pid, player in self.s.players.items():
            last = player.get("last_synced_at")
            if (
                not player.get("followed")
                or pid in busy
                or (last is not None and last > due_before)
            ):
                continue
            out.append((player["name"], _latest(self.s, pid)))
        return out


def _latest(state: _State, player_id: str) -> int | None:
    times = [
        g.played_at_ms
        for g in state.games.values()
        if g.played_at_ms is not None and _mine(g, player_id)
    ]
    return max(times) if times else None


class MemoryGames:
    def __init__(self, state: _State) -> None:
        self.s = state

    async def store_games(
        self, items: Sequence[tuple[GameRecord, str | None, int | None]], now: float
    ) -> list[tuple[GameRecord, bool]]:
        players = {gid: (g.white_name, g.black_name) for gid, g in self.s.games.items()}
        out: list[tuple[GameRecord, bool]] = []
        created_here: set[str] = set()
        for record, batch, index in items:
            mine = (record.white_name, record.black_name)
            taken = players.get(record.id)
            if record.source == "pgn" and taken is not None and taken != mine:
                record = replace(record, id=content_id(record.headers, record.moves_uci))
            players.setdefault(record.id, mine)
            new = record.id not in self.s.games or record.id in created_here
            if record.id not in self.s.games:
                created_here.add(record.id)
            self.s.games[record.id] = record
            out.append((record, new))
            if batch:
                self._count(batch, record.id, new, index, now)
        return out

    def _count(self, batch: str, game_id: str, new: bool, index: int | None, now: float) -> None:
        """As the SQL adapter: an index counts once, a game without one once per sync."""
        first_game = (batch, game_id) not in self.s.sync_games
        if first_game:
            self.s.sync_games[(batch, game_id)] = new
        new_entry = index is not None and (batch, index) not in self.s.sync_entries
        if new_entry:
            self.s.sync_entries.add((batch, index))  # type: ignore[arg-type]
        stored = 1 if new_entry or (index is None and first_game) else 0
        sync = self.s.syncs.get(batch)
        if sync is None or (not stored and not first_game):
            return
        sync["games_stored"] += stored
        sync["games_created"] += 1 if (first_game and new) else 0
        accounted = sync["games_stored"] + sync["games_rejected"]
        if stored and accounted >= sync["games_received"] > accounted - stored:
            sync["finished_at"] = now


def _new_sync(sync_id: str, kind: str, **values: Any) -> dict[str, Any]:
    return {
        "id": sync_id,
        "kind": kind,
        "username": None,
        "filename": None,
        "status": "queued",
        "games_received": 0,
        "games_stored": 0,
        "games_created": 0,
        "games_rejected": 0,
        "rejected": [],
        "error": None,
        "notice": None,
        "created_at": None,
        "finished_at": None,
        **values,
    }


class MemorySyncs:
    def __init__(self, state: _State) -> None:
        self.s = state

    def view(self, sync_id: str) -> dict[str, Any]:
        """The sync as `kibitz.read.games.sync_view` shows it (for the tests)."""
        sync = self.s.syncs[sync_id]
        accounted = sync["games_stored"] + sync["games_rejected"]
        status = sync["status"]
        if status == "streamed":
            status = "done" if accounted >= sync["games_received"] else "storing"
        return {**sync, "status": status, "accounted": accounted}

    async def create_sync(
        self, sync_id: str, player_id: str, name: str, kind: str = "lichess"
    ) -> None:
        self.s.players.setdefault(player_id, {"name": name, "followed": False})
        self.s.syncs[sync_id] = _new_sync(sync_id, kind, username=player_id)

    async def create_import(
        self,
        sync_id: str,
        filename: str | None,
        received: int,
        rejected: list[dict[str, Any]],
        now: float,
    ) -> None:
        self.s.syncs[sync_id] = _new_sync(
            sync_id,
            "pgn",
            filename=filename[:255] if filename else None,
            status="running",
            created_at=now,
            games_received=received,
            games_rejected=len(rejected),
            rejected=list(rejected),
        )

    async def import_queued(self, sync_id: str, *, finished: bool, now: float) -> None:
        sync = self.s.syncs.get(sync_id)
        if sync is not None and sync["status"] == "running":
            sync["status"] = "streamed"
            if finished:
                sync["finished_at"] = now

    async def fail_interrupted(self, started_before: float, reason: str, now: float) -> int:
        stuck = [
            s
            for s in self.s.syncs.values()
            if s["kind"] == "pgn" and s["status"] == "running" and s["created_at"] <= started_before
        ]
        for sync in stuck:
            sync.update(status="failed", error=reason, finished_at=now)
        return len(stuck)

    async def start(self, sync_id: str, player_id: str) -> tuple[int, int | None]:
        sync = self.s.syncs.setdefault(sync_id, _new_sync(sync_id, "lichess", username=player_id))
        sync["status"] = "running"
        received = sync["games_received"]
        return received, _latest(self.s, player_id) if received else None

    async def report(
        self,
        sync_id: str,
        player_id: str,
        received: int,
        status: str,
        error: str | None,
        now: float,
        notice: str | None = None,
    ) -> None:
        sync = self.s.syncs.get(sync_id)
        if sync is None:
            return
        sync.update(games_received=received, status=status, error=error, notice=notice)
        if status in ("streamed", "failed"):
            sync["finished_at"] = now
            if status == "streamed" and player_id in self.s.players:
                self.s.players[player_id]["last_synced_at"] = now

    async def fail(self, sync_id: str, reason: str) -> None:
        sync = self.s.syncs.get(sync_id)
        if sync is not None and sync["status"] not in ("streamed", "failed"):
            sync.update(status="failed", error=reason)

    async def reject(self, sync_id: str, index: int | None, reason: str, now: float) -> None:
        if index is not None:
            if (sync_id, index) in self.s.sync_entries:
                return
            self.s.sync_entries.add((sync_id, index))
        sync = self.s.syncs.get(sync_id)
        if sync is not None:
            sync["rejected"] = [*sync["rejected"], {"index": index, "reason": reason}]
            sync["games_rejected"] += 1
            if sync["games_stored"] + sync["games_rejected"] == sync["games_received"]:
                sync["finished_at"] = now


def _game_input(game: GameRecord, evals: Sequence[PlyEval] = ()) -> GameInput:
    return GameInput(
        moves_uci=list(game.moves_uci),
        moves_san=list(game.moves_san),
        evals=list(evals),
        initial_fen=game.initial_fen,
        clocks_cs=list(game.clocks_cs) if game.clocks_cs else None,
        clock_initial=game.clock_initial,
        clock_increment=game.clock_increment,
        result=game.result,
    )


def _new_analysis(game_id: str, **values: Any) -> dict[str, Any]:
    return {
        "game_id": game_id,
        "status": "queued",
        "phase": "quick",
        "priority": "batch",
        "attempts": 0,
        "error": None,
        "lease_owner": None,
        "lease_until": 0.0,
        "source": None,
        "positions_done": 0,
        "positions_total": 0,
        "completion_event_id": None,
        **values,
    }


class MemoryAnalyses:
    def __init__(self, state: _State) -> None:
        self.s = state

    async def request(
        self, game_id: str, priority: str, *, force: bool, now: float
    ) -> dict[str, Any]:
        if game_id not in self.s.games:
            raise GameNotFound(f"no game {game_id!r}")
        row = self.s.analyses.get(game_id)
        if row is None:
            row = self.s.analyses[game_id] = _new_analysis(game_id, priority=priority)
        elif row["status"] in ("done", "failed", "cancelled") and (
            force or row["status"] != "done"
        ):
            row.update(status="queued", phase="quick", error=None, attempts=0, positions_done=0)
            row["priority"] = priority
        elif priority == "interactive":
            row["priority"] = "interactive"
        row["requested_at"] = now
        return {"game_id": game_id, "status": row["status"], "priority": row["priority"]}

    async def queue_player(self, player_id: str | None, priority: str) -> list[str] | None:
        mine = [g for g in self.s.games.values() if _mine(g, player_id)]
        if not mine:
            return None
        busy = {
            gid
            for gid, a in self.s.analyses.items()
            if a["status"] in ("done", "running", "queued")
        }
        ids = [
            g.id
            for g in sorted(mine, key=lambda g: g.played_at_ms or 0, reverse=True)
            if g.id not in busy
        ]
        for gid in ids:
            self.s.analyses[gid] = _new_analysis(gid, priority=priority)
        return ids

    async def job(self, game_id: str) -> AnalysisJob | None:
        game = self.s.games.get(game_id)
        if game is None:
            return None
        row = self.s.analyses.get(game_id)
        return AnalysisJob(
            game=_game_input(game),
            server_analysis=list(game.server_analysis) if game.server_analysis else None,
            pgn_evals=list(game.pgn_evals) if game.pgn_evals else None,
            status=row["status"] if row else "none",
            phase=row["phase"] if row else "quick",
            plugins=frozenset(self.s.results.get(game_id, {})),
            completion_pending=bool(row and row["completion_event_id"]),
        )

    async def claim(
        self,
        game_id: str,
        owner: str,
        priority: str,
        *,
        force: bool,
        now: float,
        lease_seconds: float,
        nodes: tuple[int, int],
        engine: str,
        degraded: bool = False,
    ) -> Claim:
        row = self.s.analyses.setdefault(game_id, _new_analysis(game_id, priority=priority))
        if row["status"] in ("done", "cancelled") and not force:
            return str(row["status"])
        if row["lease_owner"] not in (None, owner) and row["lease_until"] > now:
            return str(row["lease_owner"])
        row.update(lease_owner=owner, lease_until=now + lease_seconds)
        row.update(status="running", phase="quick", error=None, positions_done=0)
        row["priority"] = (
            "interactive" if "interactive" in (priority, row["priority"]) else priority
        )
        row["attempts"] += 1
        row.update(started_at=now, nodes=nodes, engine=engine, degraded=degraded)
        return "taken"

    async def release(
        self, game_id: str, owner: str, reason: str, max_attempts: int
    ) -> tuple[str, str] | None:
        row = self.s.analyses.get(game_id)
        if row is None or row["lease_owner"] != owner:
            return None
        final = row["attempts"] >= max_attempts
        row["status"] = "failed" if final else "queued"
        row["error"] = reason if final else f"retrying after attempt {row['attempts']}: {reason}"
        row.update(lease_owner=None, lease_until=0.0)
        return row["status"], row["source"] or "engine"

    async def renew(self, game_id: str, owner: str, until: float) -> bool:
        row = self.s.analyses.get(game_id)
        if row is None or row["lease_owner"] != owner:
            return False
        row["lease_until"] = until
        return True

    async def cancel(self, game_id: str) -> str:
        if game_id not in self.s.games:
            raise GameNotFound(f"no game {game_id!r}")
        row = self.s.analyses.get(game_id)
        if row is None or row["status"] not in ("queued", "running"):
            status = row["status"] if row is not None else "none"
            raise Conflict(f"nothing to cancel: the analysis of {game_id} is {status}")
        was = row["status"]
        row.update(status="cancelled", error="cancelled by request", lease_owner=None)
        row["lease_until"] = 0.0
        return str(was)

    async def progress(self, game_id: str, owner: str, phase: str, done: int, total: int) -> None:
        row = self.s.analyses.get(game_id)
        if row is not None and row["lease_owner"] == owner:
            row.update(phase=phase, positions_done=done, positions_total=total)

    async def store_phase(self, game_id: str, owner: str, result: PhaseResult, now: float) -> bool:
        if self.s.analyses.get(game_id, {}).get("lease_owner") != owner:
            return False
        self.s.evals[(game_id, result.phase)] = list(result.evals)
        self.s.results[game_id] = {
            (name, version): (result.phase, value)
            for name, (version, value) in result.results.items()
        }
        row = self.s.analyses[game_id]
        total = len(result.evals) + 1
        row.update(source=result.source, positions_total=total, positions_done=total)
        row["start_score"] = result.start_score
        if result.final:
            row.update(status="done", phase=result.phase, finished_at=now, error=None)
            row.update(lease_owner=None, lease_until=0.0)
            row["completion_event_id"] = result.completion_event_id
        else:
            row.update(phase="deep", positions_done=0)
        return True

    async def pending_completion(self, game_id: str) -> tuple[str, str] | None:
        row = self.s.analyses.get(game_id)
        if row is None or row["completion_event_id"] is None:
            return None
        return row["completion_event_id"], row["source"] or "engine"

    async def completion_published(self, game_id: str, event_id: str) -> None:
        row = self.s.analyses.get(game_id)
        if row is not None and row["completion_event_id"] == event_id:
            row["completion_event_id"] = None

    async def unpublished_completions(self, finished_before: float, limit: int) -> list[str]:
        rows = sorted(
            (row["finished_at"], game_id)
            for game_id, row in self.s.analyses.items()
            if row.get("completion_event_id") is not None and row["finished_at"] < finished_before
        )
        return [game_id for _, game_id in rows[:limit]]

    async def stored(self, game_id: str) -> tuple[GameInput, str] | None:
        game, row = self.s.games.get(game_id), self.s.analyses.get(game_id)
        if game is None or row is None:
            return None
        evals = [
            replace(e, better_line=True if row["source"] == "pgn" else None)
            for e in self.s.evals.get((game_id, row["phase"]), [])
        ]
        return _game_input(game, evals), row["phase"]

    async def add_results(
        self, game_id: str, phase: str, results: Sequence[tuple[str, int, dict[str, Any]]]
    ) -> None:
        for plugin, version, value in results:
            self.s.results.setdefault(game_id, {})[(plugin, version)] = (phase, value)

    async def missing_results(self, plugins: Sequence[tuple[str, int]], limit: int) -> list[str]:
        found = [
            gid
            for gid, row in self.s.analyses.items()
            if row["status"] == "done"
            and any(p not in self.s.results.get(gid, {}) for p in plugins)
        ]
        return found[:limit]


class MemoryProblems:
    def __init__(self, state: _State) -> None:
        self.s = state

    def _unsearched(self, player: str | None, version: int) -> list[str]:
        return sorted(
            gid
            for gid, row in self.s.analyses.items()
            if row["status"] == "done"
            and gid in self.s.games
            and _mine(self.s.games[gid], player)
            and self.s.scans.get(gid, {}).get("version", -1) < version
        )

    async def source(self, game_id: str, version: int) -> PuzzleSource | None:
        if self.s.scans.get(game_id, {}).get("version", -1) >= version:
            return None
        game, row = self.s.games.get(game_id), self.s.analyses.get(game_id)
        if game is None or row is None or row["status"] != "done" or not game.moves_uci:
            return None
        if game.variant not in ("standard", "fromPosition"):
            return None
        evals = self.s.evals.get((game_id, "deep")) or self.s.evals.get((game_id, "quick"))
        if not evals:
            return None
        scores = [e.score for e in evals] + [None] * (len(game.moves_uci) - len(evals))
        return PuzzleSource(
            game_id=game.id,
            white_id=game.white_id,
            black_id=game.black_id,
            initial_fen=game.initial_fen,
            moves_uci=list(game.moves_uci),
            scores=scores[: len(game.moves_uci)],
            start_score=row.get("start_score"),
        )

    async def save_scan(
        self, scan: ProblemScanResult, puzzles: Sequence[StoredPuzzle], now: float
    ) -> None:
        for puzzle in puzzles:
            self.s.problems.setdefault(
                puzzle.id,
                {
                    **puzzle.__dict__,
                    "served_count": 0,
                    "last_served_at": None,
                    "attempts": 0,
                    "successes": 0,
                    "seq": next(self.s.seq),
                },
            )
        self.s.scans[scan.game_id] = {"version": scan.version, "problems": len(puzzles)}

    async def unsearched(self, player: str | None) -> list[str]:
        from kibitz.domain.puzzles import GENERATOR_VERSION

        return self._unsearched(player, GENERATOR_VERSION)

    async def games(self, player: str | None) -> tuple[int, int]:
        total = sum(1 for g in self.s.games.values() if _mine(g, player))
        return total, len(await self.unsearched(player))

    def _matching(
        self,
        player: str | None,
        theme: str | None,
        rating_between: tuple[float, float] | None = None,
    ) -> list[dict[str, Any]]:
        low, high = rating_between or (float("-inf"), float("inf"))
        return [
            p
            for p in self.s.problems.values()
            if (player is None or player in (p["white_id"], p["black_id"]))
            and (theme is None or theme in p["themes"])
            and (rating_between is None or low <= _puzzle_rating(p).rating <= high)
        ]

    async def low_pool(self, player: str | None, threshold: int) -> bool:
        unserved = sum(1 for p in self._matching(player, None) if p["served_count"] == 0)
        return unserved < threshold and bool(await self.unsearched(player))

    async def serve(
        self,
        player: str | None,
        theme: str | None,
        now: float,
        count_up_to: int,
        rating_between: tuple[float, float] | None = None,
    ) -> tuple[dict[str, Any], int]:
        candidates = self._matching(player, theme, rating_between)
        if not candidates:
            what = " ".join(x for x in (f"of {player!r}" if player else "", theme or "") if x)
            raise NotFound(f"no puzzle {what} yet".replace("  ", " "))
        problem = min(
            candidates,
            key=lambda p: (
                p["served_count"],
                p["last_served_at"] is not None,
                p["last_served_at"] or 0,
                p["id"],
            ),
        )
        problem["last_served_at"] = now + next(self.s.seq) * 1e-6  # strictly later each time
        problem["served_count"] += 1
        unserved = sum(1 for p in self._matching(player, None) if p["served_count"] == 0)
        view = {
            "id": problem["id"],
            "fen": problem["fen"],
            "themes": list(problem["themes"]),
            "served_count": problem["served_count"],
            "_solution": list(problem["solution"]),
        }
        return view, min(unserved, count_up_to)

    async def solution(self, problem_id: str) -> tuple[str, str, list[str]] | None:
        p = self.s.problems.get(problem_id)
        return (p["fen"], p["blunder_uci"], list(p["solution"])) if p else None

    async def attempted(self, problem_id: str, *, ended: bool, solved: bool) -> tuple[int, int]:
        p = self.s.problems[problem_id]
        if ended:
            p["attempts"] += 1
            p["successes"] += 1 if solved else 0
        return p["attempts"], p["successes"]


class MemoryMatches:
    def __init__(self, state: _State) -> None:
        self.s = state

    async def state(self, match_id: str) -> dict[str, Any] | None:
        row = self.s.matches.get(match_id)
        return dict(row["state"]) if row else None

    async def running(self) -> list[dict[str, Any]]:
        return [dict(r["state"]) for r in self.s.matches.values() if r["status"] == "running"]

    async def save(
        self, match_id: str, person: str, status: str, state: dict[str, Any], now: float
    ) -> None:
        row = self.s.matches.setdefault(match_id, {"person": person, "events_applied": 0})
        row.update(state=state, status=status, updated_at=now)
        row["events_applied"] += 1

    async def claim(self, match_id: str, number: int, participant: str, kind: str) -> bool:
        key = (match_id, number, participant, kind)
        if key in self.s.submissions:
            return False
        self.s.submissions.add(key)
        return True

    async def unclaim(self, match_id: str, number: int, participant: str, kind: str) -> None:
        self.s.submissions.discard((match_id, number, participant, kind))

    async def positions(self, source: str, player: str | None, count: int) -> list[dict[str, Any]]:
        if source == "problems":
            chosen = sorted(
                (
                    p
                    for p in self.s.problems.values()
                    if not player or player.strip().lower() in (p["white_id"], p["black_id"])
                ),
                key=lambda p: (p["last_served_at"] is not None, p["last_served_at"] or 0, p["id"]),
            )[:count]
            out = []
            for p in chosen:
                board = chess.Board(p["fen"])
                board.push_uci(p["blunder_uci"])
                out.append({"fen": board.fen(), "origin": f"puzzle {p['id']}"})
            return out
        name = (player or "").strip().lower()
        out = []
        for game in self.s.games.values():
            if not _mine(game, name) or (game.id, "deep") not in self.s.evals:
                continue
            evals = self.s.evals[(game.id, "deep")]
            board = chess.Board(game.initial_fen) if game.initial_fen else chess.Board()
            previous = stored_score(15, None)
            for ply, uci in enumerate(game.moves_uci, start=1):
                after = evals[ply - 1].score if ply <= len(evals) else None
                if previous is not None and after is not None:
                    verdict = judge_move(previous, after, board.turn == chess.WHITE)
                    if verdict is not None and verdict.judgment in (
                        Judgment.MISTAKE,
                        Judgment.BLUNDER,
                    ):
                        out.append({"fen": board.fen(), "origin": f"game {game.id} ply {ply}"})
                        if len(out) >= count:
                            return out
                board.push_uci(uci)
                previous = after
        return out


class MemoryRobots:
    def __init__(self, state: _State) -> None:
        self.s = state

    def _new(self, personality: str, now: float) -> dict[str, Any]:
        robot = {
            "id": f"{personality.split('_')[1][:3]}-{next(self.s.seq):08d}",
            "personality": personality,
            "state": "idle",
            "state_since": now,
            "match_id": None,
            "round": None,
        }
        self.s.robots[robot["id"]] = robot
        return robot

    def _live(self) -> int:
        return sum(1 for r in self.s.robots.values() if r["state"] != "released")

    async def assign(
        self, match_id: str, number: int, count: int, exclude: set[str], max_live: int, now: float
    ) -> tuple[list[dict[str, str]], list[PoolChange]]:
        done = self.s.assignments.get((match_id, number))
        if done:
            return [
                {"id": r, "identity": self.s.robots[r]["personality"]} for r in sorted(done)
            ], []
        idle: dict[str, list[dict[str, Any]]] = {p: [] for p in PERSONALITIES}
        for robot in sorted(self.s.robots.values(), key=lambda r: (r["state_since"], r["id"])):
            if robot["state"] == "idle" and robot["id"] not in exclude:
                idle.setdefault(robot["personality"], []).append(robot)
        chosen: list[dict[str, Any]] = []
        while len(chosen) < count and any(idle.values()):
            for personality in PERSONALITIES:
                if idle[personality] and len(chosen) < count:
                    chosen.append(idle[personality].pop(0))
        created, live, order = [], self._live(), list(PERSONALITIES)
        while len(chosen) < count and live < max_live:
            robot = self._new(order[len(chosen) % len(order)], now)
            created.append(PoolChange("instantiated", robot["personality"], robot_id=robot["id"]))
            chosen.append(robot)
            live += 1
        for robot in chosen:
            robot.update(state="busy", match_id=match_id, round=number, state_since=now)
        self.s.assignments[(match_id, number)] = [r["id"] for r in chosen]
        return [
            {"id": r["id"], "identity": r["personality"]}
            for r in sorted(chosen, key=lambda r: r["id"])
        ], created

    async def free_round(self, match_id: str, number: int, now: float) -> None:
        for r in self.s.robots.values():
            if r["match_id"] == match_id and r["round"] == number and r["state"] == "busy":
                r.update(state="idle", match_id=None, round=None, state_since=now)

    async def release_match(self, match_id: str, now: float) -> list[PoolChange]:
        held = [
            r for r in self.s.robots.values() if r["match_id"] == match_id and r["state"] == "busy"
        ]
        for r in held:
            r.update(state="idle", match_id=None, round=None, state_since=now)
        return [
            PoolChange("released", r["personality"], robot_id=r["id"], reason="match_completed")
            for r in held
        ]

    async def scale(
        self, policy: ScalePolicy, now: float
    ) -> tuple[dict[str, int], list[PoolChange]]:
        live, counts, changes = self._live(), {}, []
        for personality in PERSONALITIES:
            robots = sorted(
                (
                    r
                    for r in self.s.robots.values()
                    if r["personality"] == personality and r["state"] != "released"
                ),
                key=lambda r: (r["state_since"], r["id"]),
            )
            before = len(robots)
            idle = [r for r in robots if r["state"] == "idle"]
            want = max(0, policy.min_idle - len(idle))
            if before and (before - len(idle)) / before >= policy.scale_up_busy:
                want = max(want, 1)
            reason = "scale_up"
            for _ in range(want):
                if live >= policy.max_live:
                    break
                robot = self._new(personality, now)
                robots.append(robot)
                live += 1
                changes.append(PoolChange("instantiated", personality, robot_id=robot["id"]))
            surplus = len(idle) - policy.min_idle
            for robot in idle:
                if surplus <= 0 or want:
                    break
                if now - robot["state_since"] >= policy.idle_release:
                    robot.update(state="released", state_since=now)
                    surplus, live, reason = surplus - 1, live - 1, "scale_down"
                    changes.append(
                        PoolChange("released", personality, robot_id=robot["id"], reason="idle")
                    )
            after = sum(1 for r in robots if r["state"] != "released")
            counts[personality] = after
            if after != before:
                changes.append(
                    PoolChange("scaled", personality, reason=reason, before=before, after=after)
                )
        return counts, changes

    async def changed_since(self, since: float) -> list[RobotInstance]:
        return [
            RobotInstance(
                r["id"], r["personality"], r["state"], r["match_id"], r["round"], r["state_since"]
            )
            for _, r in sorted(self.s.robots.items())
            if r["state_since"] >= since
        ]

    async def states(self) -> dict[str, int]:
        return dict(Counter(r["state"] for r in self.s.robots.values() if r["state"] != "released"))

    async def by_personality(self) -> dict[str, dict[str, int]]:
        by: dict[str, dict[str, int]] = {p: {"idle": 0, "busy": 0} for p in PERSONALITIES}
        for r in self.s.robots.values():
            if r["state"] != "released":
                by.setdefault(r["personality"], {"idle": 0, "busy": 0})[r["state"]] += 1
        return by


class MemoryTracking:
    def __init__(self, state: _State) -> None:
        self.s = state

    async def claim(
        self,
        key: str,
        name: str,
        profile: dict[str, Any],
        owner: str,
        now: float,
        lease_seconds: float,
    ) -> bool:
        row = self.s.tracked.setdefault(
            key, {"status": "ended", "lease_owner": None, "lease_until": 0.0}
        )
        held = row["lease_owner"] not in (None, owner) and row["lease_until"] > now
        if row["status"] != "ended" and held:
            return False
        row.update(name=name, profile=profile, lease_owner=owner, lease_until=now + lease_seconds)
        row.update(status="waiting", game_id=None, end_reason=None, ended_at=None, started_at=now)
        return True

    async def set_state(
        self,
        key: str,
        owner: str,
        now: float,
        *,
        status: str,
        game_id: str | None = None,
        end_reason: str | None = None,
    ) -> None:
        row = self.s.tracked.get(key)
        if row is None or row["lease_owner"] != owner:
            return
        row.update(status=status, updated_at=now)
        if game_id is not None:
            row["game_id"] = game_id
        if status == "ended":
            row.update(end_reason=end_reason, ended_at=now, lease_until=0.0)

    async def renew(self, keys: Sequence[str], owner: str, until: float) -> None:
        for key in keys:
            row = self.s.tracked.get(key)
            if row is not None and row["lease_owner"] == owner:
                row["lease_until"] = until

    async def profile(self, key: str) -> dict[str, Any] | None:
        row = self.s.tracked.get(key)
        return dict(row.get("profile") or {}) if row is not None else None

    async def open_game(self, game_id: str, username: str) -> LiveGame:
        game = self.s.sessions.setdefault(game_id, LiveGame(game_id, username, 0))
        return replace(game)

    async def game_started(
        self, game_id: str, white: str | None, black: str | None, initial_fen: str | None
    ) -> bool:
        game = self.s.sessions[game_id]
        announce = game.white is None
        game.white, game.black, game.initial_fen = white, black, initial_fen
        return announce

    async def ply_published(self, game_id: str, ply: int) -> None:
        game = self.s.sessions[game_id]
        game.last_ply = max(game.last_ply, ply)

    async def game_ended(self, game_id: str, status: str, result: str, now: float) -> None:
        self.s.ended[game_id] = (status, result, now)


class MemoryCommentaries:
    def __init__(self, state: _State) -> None:
        self.s = state

    async def exists(self, game_id: str, ply: int) -> bool:
        return (game_id, ply) in self.s.commentary

    async def add(self, line: dict[str, Any]) -> bool:
        key = (line["game_id"], line["ply"])
        if key in self.s.commentary:
            return False
        self.s.commentary[key] = dict(line)
        return True


class MemoryEvalCache:
    """The evaluation cache's twin (`kibitz.ports.EvalCache`)."""

    def __init__(self, state: _State | None = None) -> None:
        self.s = state or _State()

    async def lookup(self, epds: Sequence[str], nodes: int) -> dict[str, EngineEval]:
        found = {}
        for epd in epds:
            budgets = sorted(n for n in self.s.evals_cache.get(epd, {}) if n >= nodes)
            if budgets:
                found[epd] = self.s.evals_cache[epd][budgets[0]]
        return found

    async def keep(self, found: Sequence[tuple[str, EngineEval]]) -> None:
        for epd, result in found:
            if result.nodes:
                self.s.evals_cache.setdefault(epd, {}).setdefault(result.nodes, result)


class MemoryProcessedEvents:
    """The ProcessedEvents port's twin."""

    def __init__(self) -> None:
        self.seen_ids: set[tuple[str, str]] = set()

    async def seen(self, group: str, event_id: str) -> bool:
        return (group, event_id) in self.seen_ids

    async def mark(self, group: str, event_id: str) -> None:
        self.seen_ids.add((group, event_id))

    async def seen_many(self, group: str, event_ids: list[str]) -> set[str]:
        return {e for e in event_ids if (group, e) in self.seen_ids}

    async def mark_many(self, group: str, event_ids: list[str]) -> None:
        self.seen_ids.update((group, e) for e in event_ids)


def _puzzle_rating(p: dict[str, Any]) -> Rating:
    if p.get("glicko") is None:
        return Rating(float(p["rating"]), START_RD, START_VOL)
    return p["glicko"]  # type: ignore[no-any-return]


class MemoryTraining:
    def __init__(self, state: _State) -> None:
        self.s = state

    async def card_source(self, game_id: str, player: str | None) -> CardSource | None:
        game, row = self.s.games.get(game_id), self.s.analyses.get(game_id)
        if game is None or row is None or row["status"] != "done" or not game.moves_uci:
            return None
        if game.variant not in ("standard", "fromPosition"):
            return None
        evals = self.s.evals.get((game_id, "deep")) or self.s.evals.get((game_id, "quick")) or []
        n = len(game.moves_uci)
        padded: list[PlyEval | None] = [*evals, *([None] * (n - len(evals)))]
        sides = {game.white_id: True, game.black_id: False}
        trainees = {
            k: v
            for k, v in sides.items()
            if k is not None and (k == player if player is not None else k in self.s.players)
        }
        if not trainees:
            return None
        puzzles = []
        for p in self.s.problems.values():
            if p["game_id"] == game_id:
                board = chess.Board(p["fen"])
                board.push_uci(p["blunder_uci"])
                puzzles.append((p["id"], board.fen(), p["ply"] + 1))
        return CardSource(
            game_id=game_id,
            initial_fen=game.initial_fen,
            moves_uci=list(game.moves_uci),
            scores=[e.score if e else None for e in padded[:n]],
            best_ucis=[e.best_uci if e else None for e in padded[:n]],
            start_score=row.get("start_score"),
            trainees=trainees,
            puzzles=puzzles,
        )

    async def unscanned(self, player: str, limit: int) -> list[str]:
        return sorted(
            gid
            for gid, row in self.s.analyses.items()
            if row["status"] == "done"
            and gid in self.s.games
            and player in (self.s.games[gid].white_id, self.s.games[gid].black_id)
            and (player, gid) not in self.s.training_scans
        )[:limit]

    async def add_cards(
        self, game_id: str, players: Sequence[str], cards: Sequence[NewCard]
    ) -> int:
        added = 0
        for c in cards:
            if c.id not in self.s.cards:
                self.s.cards[c.id] = {
                    **c.__dict__,
                    "schedule": dict(c.schedule),
                    "reviews": 0,
                    "lapses": 0,
                }
                added += 1
        self.s.training_scans.update((p, game_id) for p in players)
        return added

    def _card(self, row: dict[str, Any]) -> Card:
        keys = Card.__dataclass_fields__
        return Card(**{k: row[k] for k in keys})

    async def due(self, player: str, now: float, limit: int) -> tuple[list[Card], int, int]:
        mine = [c for c in self.s.cards.values() if c["player_id"] == player]
        due = sorted((c for c in mine if c["due"] <= now), key=lambda c: (c["due"], c["id"]))
        return [self._card(c) for c in due[:limit]], len(due), len(mine)

    async def card(self, card_id: str) -> Card | None:
        row = self.s.cards.get(card_id)
        return self._card(row) if row is not None else None

    async def known_answer(self, card_id: str, move_uci: str) -> tuple[bool, float | None] | None:
        return self.s.card_answers.get((card_id, move_uci))

    async def remember_answer(
        self, card_id: str, move_uci: str, correct: bool, loss: float | None
    ) -> None:
        self.s.card_answers.setdefault((card_id, move_uci), (correct, loss))

    async def review(
        self,
        card: Card,
        move_uci: str,
        correct: bool,
        schedule: dict[str, Any],
        due: float,
        at: float,
    ) -> bool:
        row = self.s.cards.get(card.id)
        if row is None or row["reviews"] != card.reviews:
            return False
        row.update(
            schedule=dict(schedule),
            due=due,
            reviews=row["reviews"] + 1,
            lapses=row["lapses"] + (0 if correct else 1),
        )
        self.s.card_reviews.append(
            {"card_id": card.id, "player_id": card.player_id, "at": at, "correct": correct}
        )
        return True

    def _solver(self, player: str) -> dict[str, Any]:
        return self.s.solvers.setdefault(
            player,
            {"rating": Rating(START_RATING, START_RD, START_VOL), "rated": 0, "best_streak": 0},
        )

    async def rate_attempt(
        self,
        player: str,
        problem_id: str,
        solved: bool,
        at: float,
        rate: Callable[[Rating, Rating, bool], tuple[Rating, Rating]],
    ) -> tuple[Rating, Rating, bool] | None:
        problem = self.s.problems.get(problem_id)
        if problem is None:
            return None
        first = (player, problem_id) not in self.s.rated_firsts
        self.s.rated_firsts.add((player, problem_id))
        solver = self._solver(player)
        before_puzzle, before_solver = _puzzle_rating(problem), solver["rating"]
        self.s.puzzle_attempts.append(
            {
                "player_id": player,
                "problem_id": problem_id,
                "at": at,
                "solved": solved,
                "first": first,
                "puzzle_rating": before_puzzle.rating,
                "themes": list(problem["themes"]),
            }
        )
        if not first:
            return before_solver, before_puzzle, False
        after_solver, after_puzzle = rate(before_solver, before_puzzle, solved)
        solver["rating"], solver["rated"] = after_solver, solver["rated"] + 1
        problem["glicko"] = after_puzzle
        return after_solver, after_puzzle, True

    async def solver(self, player: str) -> tuple[Rating, int, int]:
        row = self.s.solvers.get(player)
        if row is None:
            return Rating(START_RATING, START_RD, START_VOL), 0, 0
        return row["rating"], row["rated"], row["best_streak"]

    async def streak_ended(self, player: str, score: int) -> int:
        row = self._solver(player)
        row["best_streak"] = max(row["best_streak"], score)
        return int(row["best_streak"])


class MemoryStore:
    """Every repository on one shared in-memory state."""

    def __init__(self) -> None:
        self.state = _State()
        self.players = MemoryPlayers(self.state)
        self.games = MemoryGames(self.state)
        self.syncs = MemorySyncs(self.state)
        self.analyses = MemoryAnalyses(self.state)
        self.problems = MemoryProblems(self.state)
        self.matches = MemoryMatches(self.state)
        self.robots = MemoryRobots(self.state)
        self.tracking = MemoryTracking(self.state)
        self.commentaries = MemoryCommentaries(self.state)
        self.training = MemoryTraining(self.state)
        self.eval_cache = MemoryEvalCache(self.state)
