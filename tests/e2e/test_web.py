"""The web pages in headless Chromium (Debian's package), driven by Playwright.

Set KIBITZ_SCREENSHOTS=docs/screenshots to refresh the committed screenshots.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import chess
import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.conftest import Server, opera_puzzle, snap
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
    moves = httpx.get(f"{server.url}/api/games/{game_id}").json()["moves_uci"]
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
    answer = httpx.post(f"{server.url}/api/imports/pgn", files={"file": ("ada.pgn", text)})
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
    first_mark = page.locator("a.move:has(.glyph)").first
    first_mark.click()
    expect(page.locator("#comment")).to_contain_text("was best")
    game_id = page.locator("#game").get_attribute("data-game-id")
    base = page.url.split("/games/")[0]
    evals = httpx.get(f"{base}/api/games/{game_id}/analysis").json()["evals"]
    scored = [e for e in evals if e["cp"] is not None or e["mate"] is not None]
    assert len(scored) >= len(evals) - 1  # all but a final mate
    expect(page.locator("a.move .move-eval")).to_have_count(len(scored))  # each with its number
    expect(page.locator("#eval-number")).to_have_text(re.compile(r"^(#-?\d+|[+-]?\d+\.\d)$"))
    expect(page.locator("#board .cg-shapes line").first).to_be_attached()  # the best move
    snap(page, "game-analysis", tmp_path)
    explore_from_the_board(page, tmp_path)

    page.goto(server.url + "/players/Ada%20Tester")
    expect(page.locator("#r-analysed")).to_have_text("1 of 2")
    expect(page.locator("#r-accuracy")).to_have_text(re.compile(r"^\d+(\.\d)?%$"))
    page.click("#analyse-all")
    expect(page.locator("#analyse-all-note")).to_have_text("1 games queued for analysis.")
    snap(page, "player-report", tmp_path)


def explore_from_the_board(page: Page, tmp_path: Path) -> None:
    """From the position before a judged move: the engine line is clickable; a move made on
    the board (click, click) is searched by the server at the budget chosen; "Back to the
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
    box = page.locator("#board").bounding_box()
    assert box is not None
    flipped = page.locator("#board.orientation-black").count() == 1

    def centre(square: int) -> tuple[float, float]:
        file, rank = chess.square_file(square), chess.square_rank(square)
        col, row = (7 - file, rank) if flipped else (file, 7 - rank)
        return box["x"] + (col + 0.5) * box["width"] / 8, box["y"] + (row + 0.5) * box["height"] / 8

    page.mouse.click(*centre(move.from_square))
    page.mouse.click(*centre(move.to_square))
    if move.promotion:
        page.locator("#promotion .promote.queen").click()
    expect(page.locator("#explore-moves")).to_contain_text(san)
    board.push(move)
    expect(page.locator("#game")).to_have_attribute("data-fen", board.fen())
    expect(page.locator("#engine-info")).to_contain_text("nodes", timeout=60_000)
    snap(page, "game-explore", tmp_path)
    page.click("#back-to-game")
    expect(page.locator("#explore-bar")).to_be_hidden()
    expect(page.locator("#ply-label")).to_have_text(label)


def test_the_live_page_follows_a_replayed_game_move_by_move(
    server: Server, lichess_for_server: FakeLichess, page: Page, tmp_path: Path
) -> None:
    # A real game (Lichess NchH5KBj, matyizom vs veloce), its first 24 plies played live.
    sans = json.loads((FIXTURES / "lichess_real_analysis.ndjson").read_text().splitlines()[1])[
        "moves"
    ].split()[:24]
    game = lichess_for_server.add_live_game(
        "Bobby", sans, opponent="veloce", pace=0.25, start_in=2.0, game_id="livegame1"
    )
    bad = httpx.post(server.url + "/api/tracking", json={"username": "x y"})
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
    expect(page.locator("#live-board")).to_have_attribute(
        "src", re.compile(f"lastmove={game.ucis[-1]}$")
    )
    expect(page.locator("#feed li").first).to_contain_text(sans[-1])
    expect(page.locator("#feed li.blunder").first).to_contain_text("blunder")
    height = page.locator("#evalbar-white").evaluate("el => el.style.height")
    assert height.endswith("%") and height != "50%"
    expect(page.locator("#live-status")).to_have_text("1-0", timeout=10_000)
    snap(page, "live", tmp_path)
    audio = httpx.get(server.url + "/api/live/livegame1/audio/1.wav")
    assert audio.status_code == 200 and audio.content.startswith(b"RIFF")


def test_the_trainer_solves_a_puzzle_by_clicking_after_a_wrong_move(
    server: Server, page: Page, tmp_path: Path
) -> None:
    opera = opera_puzzle(server)
    page.goto(f"{server.url}/problems/{opera}")
    expect(page.locator("#trainer-turn")).to_contain_text("Nxb8 was just played")
    expect(page.locator("#trainer-source")).to_have_attribute("href", re.compile(r"^/games/"))

    def square(name: str) -> None:
        page.get_by_role("button", name=name, exact=True).click()

    expect(page.locator("#trainer-board")).to_have_attribute("src", re.compile("lastmove=d7b8"))
    square("d1")
    expect(page.locator(".sq.selected")).to_have_attribute("data-square", "d1")
    square("d2")  # legal, but not the mate
    expect(page.locator("#trainer-feedback")).to_have_text("✗ Rd2 is not the move.")
    expect(page.locator("#trainer-feedback")).to_have_class(re.compile("bad"))
    page.click("#trainer-retry")
    square("d1")
    square("d8")
    expect(page.locator("#trainer-feedback")).to_contain_text("Rd8# — solved!")
    expect(page.locator("#trainer-board")).to_have_attribute("src", re.compile("lastmove=d1d8"))
    snap(page, "puzzle", tmp_path)
    counted = httpx.get(f"{server.url}/api/problems/{opera}").json()
    assert counted["successes"] >= 1 and counted["attempts"] >= 2

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
    assert httpx.post(f"{server.url}/api/ops/dlq/nope/replay").status_code == 404
    row.locator("button.discard").click()
    expect(page.locator("#ops-error")).to_have_text("games.raw: 1 message(s) discarded")
    expect(row).to_contain_text("0 parked")


def test_on_a_server_with_a_token_a_refused_write_opens_the_sign_in_then_works(
    tmp_path: Path, page: Page, lichess_for_server: FakeLichess
) -> None:
    from tests.e2e.conftest import start_server, stop_server

    token = "club-secret"
    server = start_server(
        tmp_path,
        {
            "KIBITZ_API_TOKEN": token,
            "KIBITZ_DEMO": "false",
            "KIBITZ_LICHESS_URL": lichess_for_server.url,
        },
    )
    try:
        page.goto(server.url + "/")
        expect(page.locator("#signin-status")).to_have_text("sign in")
        page.fill("#username", "Alice")
        page.fill("#max", "5")
        page.click("#sync-button")
        expect(page.locator("#sync-error")).to_contain_text("needs the API token")
        expect(page.locator("#signin-form")).to_be_visible()  # opened by the refusal
        page.fill("#signin-token", "wrong")
        page.click("#signin-form button")
        expect(page.locator("#signin-error")).to_have_text("wrong token")
        page.fill("#signin-token", token)
        page.click("#signin-form button")
        expect(page.locator("#signin-status")).to_have_text("signed in · sign out")
        page.click("#sync-button")  # the same write, now with the token
        expect(page).to_have_url(re.compile(r"/imports/"))
        expect(page.locator("#status")).to_have_text("done", timeout=30_000)
        snap(page, "signed-in", tmp_path)
        page.reload()  # kept in this browser
        expect(page.locator("#signin-status")).to_have_text("signed in · sign out")
    finally:
        stop_server(server)
