"""The `kibitz` command line, run as a user runs it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from kibitz.runtime.cluster import free_port
from tests import net
from tests.e2e.conftest import KIBITZ
from tests.fakes.lichess import FakeLichess

FIXTURES = Path(__file__).parent.parent / "fixtures"


# Commands that serve, run services or start processes run as a user runs them, in a process
# of their own (signals, ports, children). The others run in this process, through the same
# entry point as the installed script: a `kibitz` interpreter costs more than the command.
OWN_PROCESS = {"serve", "run", "up", "down", "watchdog"}


def kibitz(
    tmp_path: Path, *args: str, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "KIBITZ_HOME": str(tmp_path / "home"), "COLUMNS": "200", **env}
    if args and args[0] in OWN_PROCESS:
        return subprocess.run(
            [KIBITZ, *args],
            env=full_env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            input=input,
        )
    return in_process(list(args), full_env, input)


def in_process(
    args: list[str], env: dict[str, str], input: str | None
) -> subprocess.CompletedProcess[str]:
    """`kibitz ARGS` through `kibitz.__main__.main` in this process, with `env` as its
    environment and its standard streams captured; an uncaught exception ends it as the
    interpreter would (a traceback on stderr, status 1)."""
    import io
    import sys
    import traceback
    from unittest import mock

    from kibitz.__main__ import main

    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with (
        mock.patch.dict(os.environ, env, clear=True),
        mock.patch.object(sys, "argv", [KIBITZ, *args]),
        mock.patch.object(sys, "stdin", io.StringIO(input or "")),
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
    ):
        try:
            main()
        except SystemExit as exit_:
            code = exit_.code
        except Exception:
            traceback.print_exc()
            code = 1
    status = code if isinstance(code, int) else (0 if code is None else 1)
    if isinstance(code, str):
        err.write(code)
    return subprocess.CompletedProcess([KIBITZ, *args], status, out.getvalue(), err.getvalue())


def test_import_lichess_stores_the_games_and_prints_a_summary(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Alice", 40)
    done = kibitz(
        tmp_path, "import", "lichess", "Alice", "--max", "30", KIBITZ_LICHESS_URL=fake_lichess.url
    )
    assert done.returncode == 0, done.stderr
    assert "30 games stored (30 new, 0 rejected) for Alice" in done.stdout
    again = kibitz(tmp_path, "import", "lichess", "Alice", KIBITZ_LICHESS_URL=fake_lichess.url)
    assert "40 games stored (10 new, 0 rejected)" in again.stdout
    assert fake_lichess.requests[0]["params"]["max"] == "30"


def test_import_lichess_since_a_date_passes_it_on(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    fake_lichess.add_user("Alice", 5)
    done = kibitz(
        tmp_path,
        "import",
        "lichess",
        "Alice",
        "--since",
        "2023-11-14",
        KIBITZ_LICHESS_URL=fake_lichess.url,
    )
    assert done.returncode == 0, done.stderr
    assert fake_lichess.requests[0]["params"]["since"] == "1699920000000"


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["import", "lichess", "NobodyHere"], {}, "Lichess has no user 'NobodyHere'"),
        (["import", "lichess", "x"], {}, "not a valid Lichess username"),
        (["import", "lichess", "Alice", "--since", "yesterday"], {}, "is not a date"),
        (["import", "lichess", "Alice", "--max", "0"], {}, "--max must be at least 1"),
        (["import", "pgn", "/no/such.pgn"], {}, "no such file"),
        (["run", "nosuchservice"], {}, "no service 'nosuchservice'"),
        (["problems", "generate", "--player", "nobody"], {}, "no games of 'nobody' here"),
        (["services"], {"KIBITZ_BUS_URL": "amqp://x"}, "KIBITZ_BUS_URL:"),
        (["serve", "--host", "0.0.0.0"], {"KIBITZ_API_TOKEN": ""}, "without KIBITZ_API_TOKEN"),
        (  # told not to wait for its log (by default it waits, reporting itself degraded)
            ["serve"],
            {"KIBITZ_BUS_URL": "kafka://127.0.0.1:1", "KIBITZ_UPSTREAM_WAIT": "0"},
            "cannot reach the event log",
        ),
        (
            ["run", "store"],
            {
                "KIBITZ_DATABASE_URL": "postgresql+psycopg://u:secret@127.0.0.1:1/x",
                "KIBITZ_UPSTREAM_WAIT": "0",
            },
            "cannot reach the store at postgresql+psycopg://u:***@127.0.0.1:1/x",
        ),
    ],
)
def test_bad_input_exits_2_with_a_message_and_no_traceback(
    tmp_path: Path, fake_lichess: FakeLichess, args: list[str], env: dict[str, str], message: str
) -> None:
    done = kibitz(tmp_path, *args, KIBITZ_LICHESS_URL=fake_lichess.url, **env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in " ".join(done.stderr.split())
    assert "Traceback" not in done.stderr


def test_an_unreachable_lichess_exits_2(tmp_path: Path) -> None:
    done = kibitz(tmp_path, "import", "lichess", "Alice", KIBITZ_LICHESS_URL="http://127.0.0.1:9")
    assert done.returncode == 2
    assert "Lichess stream for Alice broke" in " ".join(done.stderr.split())


def test_import_pgn_reports_the_broken_game(tmp_path: Path) -> None:
    done = kibitz(tmp_path, "import", "pgn", str(FIXTURES / "three_good_one_broken.pgn"))
    assert done.returncode == 0, done.stderr
    assert "three_good_one_broken.pgn: 3 stored (3 new), 1 rejected" in done.stdout
    assert "game 3: illegal move" in done.stdout


def test_db_upgrade_services_and_bus_tail(tmp_path: Path) -> None:
    assert kibitz(tmp_path, "db", "upgrade").returncode == 0
    listing = kibitz(tmp_path, "services")
    assert listing.returncode == 0
    for name in ("ingest", "store", "scheduler"):
        assert name in listing.stdout
    kibitz(tmp_path, "import", "pgn", str(FIXTURES / "three_good_one_broken.pgn"))
    tail = kibitz(tmp_path, "bus", "tail", "games.stored", "--from-beginning", "--count", "3")
    assert tail.returncode == 0
    assert tail.stdout.count('"type": "games.stored"') == 3


def test_a_malformed_message_is_parked_listed_and_replayed(tmp_path: Path) -> None:
    import asyncio

    from kibitz.adapters.eventlog_sqlite import SqliteEventLog

    kibitz(tmp_path, "db", "upgrade")

    async def poison() -> None:
        log = SqliteEventLog(tmp_path / "home" / "eventlog.db")
        await log.start()
        await log.append("games.raw", "bad-key", b"{this is not an event")
        await log.close()

    asyncio.run(poison())
    # Running the store service once consumes it: the malformed message goes to the DLQ.
    kibitz(tmp_path, "import", "pgn", str(FIXTURES / "three_good_one_broken.pgn"))
    listed = kibitz(tmp_path, "dlq", "list", "games.raw")
    assert listed.returncode == 0
    assert "bad-key" in listed.stdout and "not an event envelope" in listed.stdout
    assert "1 parked on games.raw.dlq" in listed.stdout
    replayed = kibitz(tmp_path, "dlq", "replay", "games.raw")
    assert "replayed 1 message(s)" in replayed.stdout
    assert "0 parked" in kibitz(tmp_path, "dlq", "list", "games.raw").stdout
    tail = kibitz(tmp_path, "bus", "tail", "games.raw", "--from-beginning", "--count", "5")
    assert tail.stdout.count("this is not an event") == 2  # the original and its replay


@pytest.mark.slow(20)
def test_analyze_waits_with_progress_then_report_summarises(tmp_path: Path) -> None:
    assert (
        kibitz(tmp_path, "import", "pgn", str(FIXTURES / "three_good_one_broken.pgn")).returncode
        == 0
    )
    small = {
        "KIBITZ_QUICK_NODES": "3000",
        "KIBITZ_DEEP_NODES": "10000",
        "KIBITZ_INTERACTIVE_DEEP_NODES": "10000",
        "KIBITZ_PROBLEM_NODES": "2000",  # puzzles are not under test here
    }
    usage = kibitz(tmp_path, "analyze", **small)
    assert usage.returncode == 2 and "give game ids or --player" in usage.stderr
    unknown = kibitz(tmp_path, "analyze", "nosuchgame", "--wait", **small)
    assert unknown.returncode == 2 and "no game 'nosuchgame'" in unknown.stderr
    done = kibitz(tmp_path, "analyze", "--player", "Alice", "--wait", **small)
    assert done.returncode == 0, done.stderr
    assert "analysed, 0 failed" in done.stdout
    report = kibitz(tmp_path, "report", "Alice")
    assert report.returncode == 0, report.stderr
    assert "games analysed" in report.stdout and "accuracy" in report.stdout
    assert "insights across analysed games" in report.stdout and "puzzle rating" in report.stdout
    assert kibitz(tmp_path, "report", "nobody").returncode == 2


BLUNDERS = """[White "Ann"]
[Black "Bea"]
[Result "1-0"]

1. e4 e5 2. Qh5 Nc6 3. Bc4 Nf6 4. Qxf7# 1-0

[White "Cid"]
[Black "Bea"]
[Result "1-0"]

1. e4 e5 2. Nf3 d6 3. Bc4 Bg4 4. Nc3 g6 5. Nxe5 Bxd1 6. Bxf7+ Ke7 7. Nd5# 1-0
"""


def test_train_reviews_the_due_cards_of_a_players_blunders_in_the_terminal(
    tmp_path: Path,
) -> None:
    games = tmp_path / "bea.pgn"
    games.write_text(BLUNDERS)
    assert kibitz(tmp_path, "import", "pgn", str(games)).returncode == 0
    small = {
        "KIBITZ_QUICK_NODES": "3000",
        "KIBITZ_DEEP_NODES": "20000",
        "KIBITZ_INTERACTIVE_DEEP_NODES": "20000",
    }
    done = kibitz(tmp_path, "analyze", "--player", "Bea", "--wait", **small)
    assert done.returncode == 0, done.stderr
    # Her blunders (3...Nf6?? and 5...Bxd1??) are cards, due tomorrow; the day after, one is
    # answered right and one wrong.
    today = kibitz(tmp_path, "train", "Bea", **small)
    assert today.returncode == 0, today.stderr
    found = re.search(r"0 cards due for bea \((\d+) in all\)", today.stdout)
    assert found is not None, today.stdout
    total = int(found[1])
    with sqlite3.connect(tmp_path / "home" / "kibitz.db") as db:
        cards = db.execute(
            "SELECT ply, best_uci, played_uci FROM training_cards ORDER BY due, id"
        ).fetchall()
    assert total == len(cards) and {6, 10} <= {ply for ply, _, _ in cards}
    first, second = cards[0], cards[1]
    clock = tmp_path / "clock"
    clock.write_text(str(2 * 86400))
    answers = f"zz\n{first[1]}\n{second[2]}\n"
    review = kibitz(
        tmp_path,
        "train",
        "Bea",
        "--limit",
        "2",
        input=answers,
        KIBITZ_CLOCK_FILE=str(clock),
        **small,
    )
    assert review.returncode == 0, review.stderr
    assert f"{total} cards due for bea" in review.stdout
    assert "'zz' is not a legal move here" in review.stdout
    assert ": right. Next review" in review.stdout and "wrong: " in review.stdout
    assert f"reviewed 2: 1 right, 1 wrong; {total - 2} still due" in review.stdout
    refused = kibitz(tmp_path, "train", "x" * 70)
    assert refused.returncode == 2 and "is not a player's name" in refused.stderr


def test_problems_generate_waits_for_the_search_then_pool_lists_the_themes(
    tmp_path: Path,
) -> None:
    classics = Path(__file__).parents[2] / "src" / "kibitz" / "demo" / "classics.pgn"
    assert kibitz(tmp_path, "import", "pgn", str(classics)).returncode == 0
    small = {
        "KIBITZ_QUICK_NODES": "5000",
        "KIBITZ_DEEP_NODES": "60000",
        "KIBITZ_INTERACTIVE_DEEP_NODES": "60000",
        "KIBITZ_PROBLEM_NODES": "200000",
    }
    done = kibitz(tmp_path, "problems", "generate", "--player", "Paul Morphy", "--wait", **small)
    assert done.returncode == 0, done.stderr
    assert "1 puzzles for Paul Morphy, 1 never served" in done.stdout
    assert "puzzle search" in done.stderr  # the progress bar
    pool = kibitz(tmp_path, "problems", "pool")
    assert pool.returncode == 0, pool.stderr
    assert "1 puzzles, 1 never served (1 games searched, 0 waiting)" in pool.stdout
    # The Opera game ends 16.Qb8+ Nxb8 17.Rd8#: which mistake starts the puzzle (and so mate
    # in one or in two) depends on the small analysis budget here; either is listed.
    assert re.search(r"│ mate +│ +1 │ +1 │", pool.stdout), pool.stdout
    assert re.search(r"│ mateIn[12] +│ +1 │ +1 │", pool.stdout), pool.stdout


def test_track_prints_a_line_per_move_and_bus_tail_shows_the_raw_moves(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    sans = "e4 e5 Nf3 Nc6 Bb5 a6 Ba4 Nf6 O-O Be7".split()
    fake_lichess.add_live_game("Carol", sans, opponent="Dan", pace=0.1)
    env = {
        "KIBITZ_LICHESS_URL": fake_lichess.url,
        "KIBITZ_TRACK_WAIT": "1",
        "KIBITZ_TRACK_POLL": "0.2",
        "KIBITZ_COMMENTARY_NODES": "20000",
    }
    done = kibitz(tmp_path, "track", "Carol", **env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(sans), done.stdout
    for line, san in zip(lines, sans, strict=True):
        assert san in line
    assert "Ruy Lopez" in done.stdout
    assert "tracking Carol ended: no game for 1 s" in done.stderr

    tail = kibitz(tmp_path, "bus", "tail", "live.moves", "--from-beginning", "--count", "10")
    assert tail.returncode == 0, tail.stderr
    moves = [json.loads(line)["event"]["payload"] for line in tail.stdout.splitlines()]
    assert [m["san"] for m in moves] == sans and [m["ply"] for m in moves] == list(range(1, 11))

    bad = kibitz(tmp_path, "track", "no such name", **env)
    assert bad.returncode == 2 and "not a valid Lichess username" in bad.stderr


def test_run_tracker_serves_its_own_http_interface_and_stops_on_sigterm(
    tmp_path: Path, fake_lichess: FakeLichess
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KIBITZ_HOME": str(tmp_path / "home"),
        "KIBITZ_LICHESS_URL": fake_lichess.url,
        "KIBITZ_TRACKER_PORT": str(port),
        "KIBITZ_TRACK_WAIT": "30",
    }
    process = subprocess.Popen([KIBITZ, "run", "tracker"], env=env, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                health = net.get(f"{url}/health", timeout=1)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and process.poll() is None
                time.sleep(0.1)
        assert health.json() == {"status": "ok", "active_trackers": 0}
        started = net.post(f"{url}/start-tracking", json={"username": "Erin"})
        assert started.json() == {"status": "tracking_started", "username": "Erin"}
        again = net.post(f"{url}/start-tracking", json={"username": "erin"})
        assert again.json()["status"] == "already_tracking"
        assert net.get(f"{url}/health").json()["active_trackers"] == 1
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


@pytest.mark.kafka
@pytest.mark.slow(30)
def test_up_distributed_runs_every_service_in_its_own_process_and_down_stops_them(
    tmp_path: Path, fresh_pg_url: str
) -> None:
    from kibitz.runtime.cluster import running_cluster

    assert "add --distributed" in kibitz(tmp_path, "up").stderr
    sqlite_store = kibitz(tmp_path, "up", "--distributed", KIBITZ_DATABASE_URL="sqlite:///x.db")
    assert sqlite_store.returncode == 2 and "needs PostgreSQL" in sqlite_store.stderr
    unknown = kibitz(
        tmp_path,
        "up",
        "--distributed",
        "--services",
        "ingest,nope",
        KIBITZ_DATABASE_URL=fresh_pg_url,
    )
    assert unknown.returncode == 2 and "--services: no service nope" in unknown.stderr
    port = free_port()
    env = {
        "KIBITZ_DATABASE_URL": fresh_pg_url,
        "KIBITZ_QUICK_NODES": "2000",
        "KIBITZ_DEEP_NODES": "5000",
        "KIBITZ_INTERACTIVE_DEEP_NODES": "5000",
        "KIBITZ_PROBLEM_NODES": "2000",  # puzzles are not under test here
        "KIBITZ_DEMO": "false",  # the demo's analysis would only compete for the CPU
    }
    # The tracker's default port taken (by another cluster, say): `up` gives it another one.
    taken = socket.socket()
    with contextlib.suppress(OSError):
        taken.bind(("127.0.0.1", 8001))
        taken.listen()
    try:
        up = kibitz(
            tmp_path, "up", "--distributed", "--port", str(port), "--analysis-workers", "2", **env
        )
        assert up.returncode == 0, up.stdout + up.stderr
        processes = running_cluster(tmp_path / "home")
        names = sorted(p.name for p in processes)
        assert names.count("analysis-1") == 1 and "analysis-2" in names and "broker" in names
        assert {"api", "store", "ingest", "matches", "robot-worker"} <= set(names)
        again = kibitz(tmp_path, "up", "--distributed", **env)
        assert again.returncode == 2 and "already up" in again.stderr
        url = f"http://127.0.0.1:{port}"
        assert net.get(f"{url}/api/health").json()["status"] == "ok"
        metrics = next(p.metrics_port for p in processes if p.name == "store")
        assert (
            "kibitz_messages_processed_total" in net.get(f"http://127.0.0.1:{metrics}/metrics").text
        )
        pgn = (FIXTURES / "three_good_one_broken.pgn").read_text()
        sent = net.post(f"{url}/api/imports/pgn", files={"file": ("g.pgn", pgn)})
        assert sent.status_code == 202
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if net.get(f"{url}/api/syncs/{sent.json()['id']}").json()["status"] == "done":
                break
            time.sleep(0.3)
        game = net.get(f"{url}/api/players/Alice/games").json()["games"][0]["id"]
        net.post(f"{url}/api/games/{game}/analysis", json={"priority": "interactive"})
        while time.monotonic() < deadline:
            if net.get(f"{url}/api/games/{game}/analysis").json()["status"] == "done":
                break
            time.sleep(0.3)
        assert net.get(f"{url}/api/games/{game}/analysis").json()["status"] == "done"

        # Self-healing: a SIGKILLed worker is started again by the watchdog within 10 s, and
        # its consumer group shows both members again.
        home = tmp_path / "home"
        victim = next(p for p in running_cluster(home) if p.name == "analysis-1")
        os.kill(victim.pid, signal.SIGKILL)
        killed = time.monotonic()
        while (
            not (back := [p for p in running_cluster(home) if p.name == "analysis-1"])
            or back[0].pid == victim.pid
        ):
            assert time.monotonic() - killed < 10, "the killed worker was not started again"
            time.sleep(0.1)
        assert back[0].restarts == 1
        watchdog = next(p for p in running_cluster(home) if p.name == "watchdog")
        restarts = net.get(f"http://127.0.0.1:{watchdog.metrics_port}/metrics").text
        assert 'kibitz_process_restarts_total{process="analysis-1"} 1.0' in restarts

        def analysis_members() -> int:
            groups = net.get(f"{url}/api/ops", timeout=30).json()["groups"]
            return max(g["members"] for g in groups if g["group"] == "kibitz.analysis")

        deadline = time.monotonic() + 60
        while analysis_members() != 2:
            assert time.monotonic() < deadline, "the analysis group did not get its two back"
            time.sleep(0.5)
    finally:
        taken.close()
        down = kibitz(tmp_path, "down")
    assert down.returncode == 0 and "stopped" in down.stdout
    assert running_cluster(tmp_path / "home") == []
    assert "nothing was up" in kibitz(tmp_path, "down").stdout


@pytest.mark.parametrize("args", [("run", "tracker"), ("run", "store", "--metrics-port", "19999")])
def test_a_service_that_listens_refuses_an_open_address_without_the_token(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Its HTTP interface and its metrics have no other guard (issue 16, item 10)."""
    refused = kibitz(tmp_path, *args, KIBITZ_HOST="0.0.0.0", KIBITZ_API_TOKEN="")
    assert refused.returncode == 2
    assert (
        "refusing to listen on 0.0.0.0 without KIBITZ_API_TOKEN" in refused.stderr + refused.stdout
    )


def test_import_pgn_of_a_broadcast_round_stores_every_game(tmp_path: Path) -> None:
    """Broadcast games once all got the id "broadcas" and the import never ended (item 14)."""
    done = kibitz(tmp_path, "import", "pgn", str(FIXTURES / "lichess_broadcast_round.pgn"))
    assert done.returncode == 0, done.stderr
    assert "lichess_broadcast_round.pgn: 3 stored (3 new), 0 rejected" in done.stdout
