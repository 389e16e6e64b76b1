"""The web pages in headless Chromium (Debian's package), driven by Playwright.

Set KIBITZ_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import chess
import pytest
from playwright.sync_api import Browser, Page, expect

from tests import net
from tests.e2e.conftest import Server, click_move, opera_puzzle, puzzle_solution, snap
from tests.fakes.lichess import FakeLichess

FIXTURES = Path(__file__).parent.parent / "fixtures"


def fen_after(moves: list[str]) -> str:
    """The position after `moves` (UCI) from the start, as chessops writes its FEN."""
    board = chess.Board()
    for uci in moves:
        board.push_uci(uci)
    return board.fen()


pytestmark = pytest.mark.browser


def test_import_from_lichess_watch_progress_open_a_game_and_step_through_it(
    server: Server, page: Page, tmp_path: Path
) -> None:
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Import from Lichess")).to_be_visible()
    snap(page, "home", tmp_path)
    page.fill("#username", "Alice")
    page.fill("#max", "20")
    page.click("#sync-button")
    expect(page).to_have_url(re.compile(r"/imports/"))
    expect(page.locator("#status")).to_have_text("done", timeout=30_000)
    expect(page.locator("#stored")).to_have_text("20")
    assert page.locator("#progress").evaluate("el => el.value") == 1
    snap(page, "import-progress", tmp_path)

    page.click("#games-link")
    expect(page).to_have_url(re.compile(r"/players/alice$"))
    expect(page.locator("table.games tbody tr")).to_have_count(20)
    snap(page, "player-games", tmp_path)

    page.locator("a.game-link").first.click()
    expect(page).to_have_url(re.compile(r"/games/\w+(#ply=\d+)?$"))
    game_id = page.url.rsplit("/", 1)[1].split("#")[0]
    moves = net.get(f"{server.url}/api/games/{game_id}").json()["moves_uci"]
    plies = len(moves)
    assert plies >= 10
    expect(page.locator("#game")).to_have_attribute("data-ready", "1")
    expect(page.locator("#board cg-board piece:not(.ghost)")).to_have_count(32)  # the start
    for _ in range(3):
        page.click("#next")
    expect(page.locator("#ply-label")).to_have_text(f"ply 3 / {plies}")
    expect(page.locator("#game")).to_have_attribute("data-fen", fen_after(moves[:3]))
    expect(page.locator("a.move.current")).to_have_attribute("data-ply", "3")
    expect(page.locator("#board square.last-move")).to_have_count(2)
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#ply-label")).to_have_text(f"ply 2 / {plies}")
    page.locator('a.move[data-ply="5"]').click()
    expect(page.locator("#ply-label")).to_have_text(f"ply 5 / {plies}")
    page.click("#last")
    expect(page.locator("#ply-label")).to_have_text(f"ply {plies} / {plies}")
    expect(page.locator("#game")).to_have_attribute("data-fen", fen_after(moves))
    page.click("#first")
    expect(page.locator("#ply-label")).to_have_text(f"ply 0 / {plies}")
    page.keyboard.press("f")  # flipped: Black at the bottom
    expect(page.locator("#board .cg-wrap, #board.cg-wrap").first).to_have_class(
        re.compile("orientation-black")
    )
    expect(page.locator("#clock-bottom .clock")).to_have_text(re.compile(r"^\d+:\d\d$"))
    page.locator('a.move[data-ply="6"]').click()
    snap(page, "game", tmp_path)


def test_a_pgn_upload_shows_the_rejected_game(server: Server, page: Page, tmp_path: Path) -> None:
    page.goto(server.url + "/")
    page.set_input_files("#pgn-file", str(FIXTURES / "three_good_one_broken.pgn"))
    page.click("#pgn-button")
    expect(page.locator("#status")).to_have_text("done", timeout=30_000)
    expect(page.locator("#stored")).to_have_text("3")
    expect(page.locator("#rejected")).to_have_text("1")
    expect(page.locator("#rejections li")).to_have_text(re.compile(r"game 3: illegal move"))
    snap(page, "pgn-import", tmp_path)


def test_an_unknown_player_shows_the_error_on_the_import_page(server: Server, page: Page) -> None:
    page.goto(server.url + "/")
    page.fill("#username", "NobodyHere")
    page.click("#sync-button")
    expect(page.locator("#status")).to_have_text("failed", timeout=30_000)
    expect(page.locator("#import-error")).to_contain_text("no user")


def test_a_bad_username_is_refused_on_the_home_page(server: Server, page: Page) -> None:
    page.goto(server.url + "/")
    page.fill("#username", "a b")
    page.click("#sync-button")
    expect(page.locator("#sync-error")).to_contain_text("not a valid Lichess username")


def test_analyse_a_game_see_the_graph_judgments_and_accuracy_then_the_player_averages(
    server: Server, page: Page, tmp_path: Path
) -> None:
    # The demo's own games get analysed in the background; this player's are ours alone.
    classics = Path(__file__).parents[2] / "src" / "kibitz" / "demo" / "classics.pgn"
    text = classics.read_text().replace("Adolf Anderssen", "Ada Tester")
    answer = net.post(f"{server.url}/api/imports/pgn", files={"file": ("ada.pgn", text)})
    assert answer.status_code == 202, answer.text
    page.goto(server.url + "/imports/" + answer.json()["id"])
    expect(page.locator("#status")).to_have_text("done", timeout=30_000)
    page.goto(server.url + "/players/Ada%20Tester")
    expect(page.locator("#report")).to_contain_text("No game of Ada Tester is analysed yet")
    page.locator("a.game-link").first.click()
    expect(page.locator("#a-status")).to_have_text("none")
    page.click("#analyse")
    # Progress arrives over SSE; the page shows the quick pass, then the deep pass when done.
    expect(page.locator("#eval-graph")).to_be_visible(timeout=60_000)
    expect(page.locator("#a-status")).to_have_text("done", timeout=120_000)
    expect(page.locator("#summary")).to_contain_text("Accuracy")
    expect(page.locator(".acc-white")).to_have_text(re.compile(r"^\d+%$"))
    expect(page.locator("#swing")).to_contain_text("Largest swing")
    judged = page.locator("a.move .glyph")
    assert judged.count() == page.locator("#eval-graph circle.mark").count() > 0
    # The page reloaded with the results: its board script takes the clicks once it is ready.
    expect(page.locator("#game")).to_have_attribute("data-ready", "1")
    first_mark = page.locator("a.move:has(.glyph)").first
    first_mark.click()
    expect(page.locator("#comment")).to_contain_text("was best")
    game_id = page.locator("#game").get_attribute("data-game-id")
    base = page.url.split("/games/")[0]
    evals = net.get(f"{base}/api/games/{game_id}/analysis").json()["evals"]
    scored = [e for e in evals if e["cp"] is not None or e["mate"] is not None]
    assert len(scored) >= len(evals) - 1  # all but a final mate
    expect(page.locator("a.move .move-eval")).to_have_count(len(scored))  # each with its number
    expect(page.locator("#eval-number")).to_have_text(re.compile(r"^(#-?\d+|[+-]?\d+\.\d)$"))
    expect(page.locator("#board .cg-shapes line").first).to_be_attached()  # the best move
    snap(page, "game-analysis", tmp_path)
    explore_from_the_board(page, tmp_path)
    learn_from_the_mistakes(page, tmp_path)

    page.goto(server.url + "/players/Ada%20Tester")
    expect(page.locator("#r-analysed")).to_have_text("1 of 2")
    expect(page.locator("#r-accuracy")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
    page.click("#analyse-all")
    expect(page.locator("#analyse-all-note")).to_have_text("1 games queued for analysis.")
    snap(page, "player-report", tmp_path)


def explore_from_the_board(page: Page, tmp_path: Path) -> None:
    """From the position before a judged move: the engine line is clickable; a move dragged on
    the board is searched by the server at the budget chosen; "Back to the
    game" returns to where it left."""
    page.click("#prev")  # before the judged move: the engine's line starts with another move
    label = page.locator("#ply-label").inner_text()
    page.locator("#budget").select_option("100000")
    page.locator("#pv .pv-move").first.click()
    expect(page.locator("#explore-bar")).to_be_visible()
    expect(page.locator("#engine-info")).to_contain_text("100,000 nodes", timeout=60_000)
    fen = page.locator("#game").get_attribute("data-fen") or ""
    board = chess.Board(fen)
    move = next(iter(board.legal_moves))
    san = board.san(move)
    click_move(page, move.uci(), drag=True)  # dragged
    expect(page.locator("#explore-moves")).to_contain_text(san)
    board.push(move)
    expect(page.locator("#game")).to_have_attribute("data-fen", board.fen())
    expect(page.locator("#engine-info")).to_contain_text("nodes", timeout=60_000)
    snap(page, "game-explore", tmp_path)
    page.click("#back-to-game")
    expect(page.locator("#explore-bar")).to_be_hidden()
    expect(page.locator("#ply-label")).to_have_text(label)


def learn_from_the_mistakes(page: Page, tmp_path: Path) -> None:
    """White's judged moves in turn: the move played fails, the solution shows the engine's
    move as an arrow, the engine's move wins; the engine's numbers stay hidden meanwhile."""
    base = page.url.split("/games/")[0]
    game_id = page.locator("#game").get_attribute("data-game-id")
    moves = net.get(f"{base}/api/games/{game_id}").json()["moves_uci"]
    evals = net.get(f"{base}/api/games/{game_id}/analysis").json()["evals"]
    best = {e["ply"]: e["best"] for e in evals}
    page.locator("#retro-color").select_option("white")
    page.click("#retro-start")
    expect(page.locator("#retro-text")).to_contain_text("Find a better move for White")
    expect(page.locator("#eval-number")).to_be_hidden()  # no spoiler
    expect(page.locator("#evalbar")).to_have_class(re.compile("unknown"))  # nor in the gauge
    expect(page.locator("#game")).to_have_attribute("data-arrow", "")
    ply = int(page.locator("#game").get_attribute("data-ply") or "0") + 1  # the judged move
    assert ply % 2 == 1  # White's
    click_move(page, moves[ply - 1])  # what was played in the game
    expect(page.locator("#retro-text")).to_contain_text("You can do better")
    snap(page, "game-retro-fail", tmp_path)
    page.click("#retro-solution")
    expect(page.locator("#retro-text")).to_contain_text("Solution:")
    expect(page.locator("#game")).to_have_attribute("data-arrow", best[ply])
    page.click("#retro-next")
    expect(page.locator("#retro-text")).to_contain_text("2 of")
    ply = int(page.locator("#game").get_attribute("data-ply") or "0") + 1
    click_move(page, best[ply])
    expect(page.locator("#retro-text")).to_contain_text("Good move!")
    expect(page.locator("#eval-number")).to_be_visible()
    snap(page, "game-retro-win", tmp_path)
    page.click("#retro-close")
    expect(page.locator("#retro")).to_be_hidden()


def test_the_live_page_follows_a_replayed_game_move_by_move(
    server: Server, lichess_for_server: FakeLichess, page: Page, tmp_path: Path
) -> None:
    # A real game (Lichess NchH5KBj, matyizom vs veloce), its first 24 plies played live.
    sans = json.loads((FIXTURES / "lichess_real_analysis.ndjson").read_text().splitlines()[1])[
        "moves"
    ].split()[:24]
    lichess_for_server.add_live_game(
        "Bobby", sans, opponent="veloce", pace=0.25, start_in=2.0, game_id="livegame1"
    )
    bad = net.post(server.url + "/api/tracking", json={"username": "x y"})
    assert bad.status_code == 422 and "not a valid Lichess username" in bad.json()["detail"]

    page.goto(server.url + "/")
    page.fill("#track-username", "Bobby")
    page.check("#track-speech")
    page.click("#track-button")
    expect(page).to_have_url(re.compile(r"/live$"))
    page.locator("a[href='/live/livegame1']").click(timeout=20_000)
    expect(page).to_have_url(re.compile(r"/live/livegame1$"))
    expect(page.locator("#feed li")).to_have_count(len(sans), timeout=60_000)
    expect(page.locator("#ply-count")).to_have_text(str(len(sans)))
    expect(page.locator("#live")).to_have_attribute("data-orientation", "white")  # Bobby's side
    expect(page.locator("#live-board square.last-move")).to_have_count(2)
    expect(page.locator("#live-moves a.move")).to_have_count(len(sans))
    expect(page.locator("#live-moves a.move.current")).to_have_text(sans[-1])
    expect(page.locator("#feed li").first).to_contain_text(sans[-1])
    expect(page.locator("#feed li.blunder").first).to_contain_text("blunder")
    height = page.locator("#evalbar-white").evaluate("el => el.style.height")
    assert height.endswith("%") and height != "50.0%"
    expect(page.locator("#live-eval")).to_have_text(re.compile(r"^(#-?\d+|[+-]?\d+\.\d)$"))
    expect(page.locator("#live-clock-bottom")).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(page.locator("#live-status")).to_have_text("1-0 · resignation", timeout=10_000)
    expect(page).to_have_title(re.compile("^Bobby \N{EN DASH} veloce · 1-0"))
    snap(page, "live", tmp_path)
    page.keyboard.press("ArrowLeft")  # step back: the board leaves the last move
    expect(page.locator("#live")).to_have_attribute("data-ply", str(len(sans) - 1))
    expect(page.locator("#back-to-live")).to_be_visible()
    page.click("#back-to-live")
    expect(page.locator("#live")).to_have_attribute("data-ply", str(len(sans)))
    page.reload()  # after a reload: the gauge where it was, not at 50 %
    expect(page.locator("#live")).to_have_attribute("data-ready", "1")
    assert page.locator("#evalbar-white").evaluate("el => el.style.height") == height
    audio = net.get(server.url + "/api/live/livegame1/audio/1.wav")
    assert audio.status_code == 200 and audio.content.startswith(b"RIFF")


def test_the_trainer_hints_refuses_a_wrong_move_solves_shows_the_solution_and_moves_on(
    server: Server, page: Page, tmp_path: Path
) -> None:
    opera = opera_puzzle(server)
    solution = puzzle_solution(server, opera)  # Rd8#, or Qb8+ Nxb8 Rd8#
    before = chess.Board(net.get(f"{server.url}/api/problems/{opera}").json()["puzzle_fen"])
    other = next(
        m for m in before.legal_moves if m.uci() != solution[0] and not before.is_capture(m)
    )

    def solve() -> None:
        for step in range(0, len(solution), 2):
            fen = page.locator("#trainer").get_attribute("data-fen")
            click_move(page, solution[step], board="#trainer-board")
            if step + 1 < len(solution):  # the reply comes, then it is White's move again
                page.wait_for_function(
                    "f => document.getElementById('trainer').dataset.fen !== f", arg=fen
                )

    page.goto(f"{server.url}/problems/{opera}")
    expect(page.locator("#trainer")).to_have_attribute("data-state", "play")
    expect(page.locator("#trainer-turn")).to_have_text("Find the best move for white.")
    expect(page.locator("#trainer-after")).to_be_hidden()  # themes and the game: no spoilers
    page.click("#trainer-hint")
    expect(page.locator("#trainer")).to_have_attribute("data-hint", solution[0][:2])
    click_move(page, other.uci(), board="#trainer-board")  # legal, but not the move
    expect(page.locator("#trainer-feedback")).to_have_text(
        f"✗ {before.san(other)} is not the move."
    )
    expect(page.locator("#trainer-feedback")).to_have_class(re.compile("bad"))
    page.click("#trainer-retry")
    solve()
    expect(page.locator("#trainer-feedback")).to_contain_text("Rd8#: solved!")
    expect(page.locator("#trainer-after")).to_be_visible()
    expect(page.locator("#trainer-meta")).to_contain_text(f"mateIn{len(solution[0::2])}")
    expect(page.locator("#trainer-source")).to_have_attribute(
        "href", re.compile(r"^/games/\w+#ply=\d+$")
    )
    snap(page, "puzzle", tmp_path)
    counted = net.get(f"{server.url}/api/problems/{opera}").json()
    assert counted["successes"] >= 1 and counted["attempts"] >= 2

    page.reload()  # given up: the whole solution is played, and the attempt counts unsolved
    expect(page.locator("#trainer")).to_have_attribute("data-state", "play")
    page.click("#trainer-solution")
    line = chess.Board(before.fen())
    sans = []
    for uci in solution:
        sans.append(line.san(chess.Move.from_uci(uci)))
        line.push_uci(uci)
    expect(page.locator("#trainer-feedback")).to_have_text(f"The solution: {' '.join(sans)}")
    expect(page.locator("#trainer")).to_have_attribute("data-played", "1")
    after = net.get(f"{server.url}/api/problems/{opera}").json()
    assert (after["attempts"], after["successes"]) == (
        counted["attempts"] + 1,
        counted["successes"],
    )

    page.reload()  # next by itself once solved
    page.check("#trainer-auto")
    expect(page.locator("#trainer")).to_have_attribute("data-state", "play")
    solve()
    expect(page.locator("#trainer")).to_have_attribute("data-state", "solved")
    expect(page.locator("#trainer")).to_have_attribute("data-state", "play", timeout=10_000)

    page.goto(f"{server.url}/problems/pool")
    expect(page.locator("#pool-themes")).to_contain_text("mateIn1")


def test_the_ops_page_shows_groups_and_a_parked_message_then_discards_it(
    server: Server, page: Page, tmp_path: Path
) -> None:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from kibitz.adapters.eventlog_sqlite import SqliteEventLog

    async def poison() -> None:
        log = SqliteEventLog(server.home / "eventlog.db")
        await log.start()
        await log.append("games.raw", "ops-poison", b"{this is not an event")
        await log.close()

    with ThreadPoolExecutor(1) as pool:  # Playwright's sync API holds this thread's loop
        pool.submit(asyncio.run, poison()).result()
    page.goto(server.url + "/ops")
    store_workers = page.locator("#ops-groups tr[data-group='kibitz.store'] td").nth(1)
    expect(store_workers).not_to_have_text("0")
    row = page.locator("#ops-dlq tr[data-topic='games.raw']")
    expect(row).to_contain_text("1 parked", timeout=30_000)
    expect(page.locator("#ops-failures")).to_contain_text("ops-poison")
    expect(page.locator("#ops-chart polyline").first).to_be_attached(timeout=10_000)
    snap(page, "ops", tmp_path)
    assert net.post(f"{server.url}/api/ops/dlq/nope/replay").status_code == 404
    row.locator("button.discard").click()
    expect(page.locator("#ops-error")).to_have_text("games.raw: 1 message(s) discarded")
    expect(row).to_contain_text("0 parked")


def test_on_a_server_with_a_token_the_browser_signs_in_then_imports_and_analyses(
    tmp_path: Path, page: Page, lichess_for_server: FakeLichess
) -> None:
    from tests.e2e.conftest import start_server, stop_server

    token = "club-secret"
    env = {
        "KIBITZ_API_TOKEN": token,
        "KIBITZ_DEMO": "false",
        "KIBITZ_LICHESS_URL": lichess_for_server.url,
        "KIBITZ_QUICK_NODES": "2000",
        "KIBITZ_DEEP_NODES": "5000",
        "KIBITZ_INTERACTIVE_DEEP_NODES": "5000",
    }
    server = start_server(tmp_path, env)
    try:
        page.goto(server.url + "/")
        expect(page.locator("#signin-status")).to_have_text("sign in")
        expect(page.locator("#sync-button")).to_be_disabled()  # and it says why
        expect(page.locator("#sync-button")).to_have_attribute("title", re.compile("Sign in"))
        expect(page.locator("#signed-out")).to_contain_text("asks for its API token")
        page.click("#signin-status")
        expect(page).to_have_url(re.compile(r"/signin\?next=%2F$"))
        page.fill("#signin-token", "wrong")
        page.click("#signin-button")
        expect(page.locator("#signin-error")).to_have_text("That is not this server's token.")
        page.fill("#signin-token", token)
        page.click("#signin-button")
        expect(page).to_have_url(server.url + "/")
        expect(page.locator("#signin-status")).to_have_text("signed in · sign out")
        cookies = {c["name"]: c for c in page.context.cookies()}
        assert (
            cookies["kibitz_session"]["httpOnly"]
            and cookies["kibitz_session"]["sameSite"] == "Strict"
        )
        page.fill("#username", "Alice")
        page.fill("#max", "3")
        page.click("#sync-button")
        expect(page).to_have_url(re.compile(r"/imports/"))
        expect(page.locator("#status")).to_have_text("done", timeout=30_000)
        page.click("#games-link")
        page.locator("a.game-link").first.click()
        page.click("#analyse")
        expect(page.locator("#a-status")).to_have_text("done", timeout=120_000)
        snap(page, "signed-in", tmp_path)
        # A write from the page without the CSRF value, or from outside without the session:
        forged = page.evaluate(
            "fetch('/api/players/Alice/sync', {method: 'POST', headers: {'Content-Type': "
            "'application/json'}, body: '{}'}).then(r => r.status)"
        )
        assert forged == 401
        assert net.post(f"{server.url}/api/players/Alice/sync", json={}).status_code == 401
        page.click("#signin-status")  # sign out
        expect(page.locator("#signin-status")).to_have_text("sign in")
        expect(page.locator("#analyse")).to_be_disabled()
    finally:
        stop_server(server)


def test_every_page_fits_a_phone_screen(server: Server, browser: Browser, tmp_path: Path) -> None:
    """At 390 px wide (a phone), no page scrolls sideways and the boards fit the screen."""
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    phone = context.new_page()
    try:
        opera = opera_puzzle(server)
        game = net.get(f"{server.url}/api/problems/{opera}").json()["game"]["id"]
        pages = {
            "home": "/",
            "game": f"/games/{game}",
            "puzzle": f"/problems/{opera}",
            "live-list": "/live",
            "matches": "/matches",
            "signin": "/signin",
            "review": "/players/Paul Morphy/review",
            "dashboard": "/players/Paul Morphy/dashboard",
            "insights": "/players/Paul Morphy/insights",
        }
        for name, path in pages.items():
            phone.goto(server.url + path)
            phone.wait_for_load_state("networkidle")
            width = phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, (name, width)
            board = phone.locator(".cg-wrap").first
            if board.count():
                box = board.bounding_box()
                assert box is not None and 300 <= box["width"] <= 390, (name, box)
            snap(phone, f"{name}-390", tmp_path)
    finally:
        context.close()


def test_a_puzzle_whose_answer_is_a_promotion_is_solved_by_dragging_with_the_piece_chosen(
    server: Server, page: Page, tmp_path: Path
) -> None:
    """A back-rank mate by promotion: the pawn dragged to the last rank, a rook chosen (an
    under-promotion mates as well as a queen: any mate ends a puzzle)."""
    opera = net.get(f"{server.url}/api/problems/{opera_puzzle(server)}").json()
    before = "3r3k/4P1pp/8/8/8/8/8/K7 b - - 0 1"  # the black rook leaves the back rank: Rd2??
    with sqlite3.connect(server.home / "kibitz.db") as db:
        db.execute(
            "INSERT INTO problems (id, game_id, ply, fen, blunder_uci, solution, kind, themes,"
            " rating, solver_color, generator_version, created_at, served_count, attempts,"
            " successes) VALUES (?, ?, 1, ?, 'd8d2', '[\"e7e8q\"]', 'mate', '[\"mateIn1\"]',"
            " 1000, 'white', 1, '2026-01-01 00:00:00', 0, 0, 0)",
            ("promotion-1", opera["game"]["id"], before),
        )
    page.goto(f"{server.url}/problems/promotion-1")
    expect(page.locator("#trainer")).to_have_attribute("data-state", "play")
    click_move(page, "e7e8r", board="#trainer-board", drag=True)
    expect(page.locator("#trainer-feedback")).to_contain_text("e8=R#: solved!")
    board = chess.Board(before)
    board.push_uci("d8d2")
    board.push_uci("e7e8r")
    expect(page.locator("#trainer")).to_have_attribute("data-fen", board.fen())
    snap(page, "puzzle-promotion", tmp_path)


def test_a_game_without_opening_tags_is_named_from_its_moves(
    server: Server, page: Page, tmp_path: Path
) -> None:
    pgn = (
        '[White "Tagless"]\n[Black "Nobody"]\n[Result "*"]\n\n'
        "1. e4 e5 2. Nf3 Nc6 3. Bb5 a6 4. Ba4 *\n"  # no ECO, no Opening tag
    )
    answer = net.post(f"{server.url}/api/imports/pgn", files={"file": ("t.pgn", pgn)})
    assert answer.status_code == 202, answer.text
    page.goto(server.url + "/imports/" + answer.json()["id"])
    expect(page.locator("#status")).to_have_text("done", timeout=30_000)
    page.goto(server.url + "/players/Tagless")
    page.locator("a.game-link").first.click()
    expect(page.locator("main p.muted").first).to_contain_text("Ruy Lopez: Morphy Defense")


def test_a_puzzle_streak_rates_the_solver_rises_and_keeps_the_best(
    server: Server, page: Page, tmp_path: Path
) -> None:
    opera_puzzle(server)  # the demo's puzzles are there
    page.goto(f"{server.url}/problems?solver=Streaker&mode=streak")
    trainer = page.locator("#trainer")
    expect(trainer).to_have_attribute("data-state", "play")
    solved = 0
    last_rating = -1

    def solution_of(puzzle_id: str) -> list[str]:  # the demo may still be adding puzzles
        with sqlite3.connect(server.home / "kibitz.db") as db:
            row = db.execute("SELECT solution FROM problems WHERE id = ?", (puzzle_id,)).fetchone()
        return list(json.loads(row[0]))

    for _ in range(3):
        puzzle_id = trainer.get_attribute("data-loaded")
        assert puzzle_id is not None
        rating = net.get(f"{server.url}/api/problems/{puzzle_id}").json()["rating"]
        assert rating > last_rating  # rising
        last_rating = rating
        solution = solution_of(puzzle_id)
        for step in range(0, len(solution), 2):
            before = trainer.get_attribute("data-fen")
            click_move(page, solution[step], board="#trainer-board")
            if step + 1 < len(solution):  # the reply is played, then it is our move again
                page.wait_for_function(
                    "f => document.getElementById('trainer').dataset.fen !== f", arg=before
                )
        solved += 1
        expect(page.locator("#trainer-rating")).to_contain_text("Your puzzle rating:")
        # The next, harder puzzle comes by itself; or none is left and the streak ends there.
        page.wait_for_function(
            """id => { const t = document.getElementById('trainer').dataset;
                       return t.streakOver !== undefined
                           || (t.state === 'play' && t.loaded !== id); }""",
            arg=puzzle_id,
            timeout=15_000,
        )
        if trainer.get_attribute("data-streak-over") is not None:
            break  # no harder puzzle left
        expect(page.locator("#trainer-streak")).to_have_text(f"Streak: {solved}")
    else:  # three solved and more left: a wrong move ends the streak
        board = chess.Board(trainer.get_attribute("data-fen") or "")
        current = solution_of(trainer.get_attribute("data-loaded") or "")
        wrong = next(
            m.uci() for m in board.legal_moves if m.uci() != current[0] and not m.promotion
        )
        click_move(page, wrong, board="#trainer-board")
    expect(page.locator("#trainer-streak")).to_contain_text(f"Streak over: {solved} solved")
    snap(page, "streak", tmp_path)
    dash = net.get(f"{server.url}/api/training/Streaker/dashboard?days=1").json()
    assert dash["best_streak"] == solved and dash["rated_attempts"] >= solved
