"""A real `kibitz serve` process for end-to-end tests."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import chess
import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from kibitz.events import decode
from kibitz.runtime.cluster import free_port
from tests import net
from tests.fakes.lichess import FakeLichess

KIBITZ = str(Path(sys.executable).parent / "kibitz")


@dataclass
class Server:
    url: str
    home: Path
    process: subprocess.Popen[bytes]
    started_in: float


def start_server(
    tmp: Path, env: dict[str, str], timeout: float = 120.0, args: tuple[str, ...] = ()
) -> Server:
    """Start `kibitz serve`; raises if /api/health is not 200 within `timeout` seconds."""
    port = free_port()
    home = tmp / "home"
    full_env = {
        **os.environ,
        "KIBITZ_HOME": str(home),
        "KIBITZ_PORT": str(port),
        "KIBITZ_API_TOKEN": "",
        **env,
    }
    tmp.mkdir(parents=True, exist_ok=True)
    log = (tmp / "serve.log").open("ab")
    began = time.monotonic()
    process = subprocess.Popen(
        [KIBITZ, "serve", *args], env=full_env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    while time.monotonic() - began < timeout:
        if process.poll() is not None:
            raise RuntimeError(f"kibitz serve exited: {(tmp / 'serve.log').read_text()[-2000:]}")
        try:
            if net.get(f"{url}/api/health", timeout=1).status_code == 200:
                return Server(url, home, process, time.monotonic() - began)
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(
        f"no healthy kibitz within {timeout}s: {(tmp / 'serve.log').read_text()[-2000:]}"
    )


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(15)
    except subprocess.TimeoutExpired:
        server.process.kill()


@pytest.fixture(scope="module")
def lichess_for_server() -> Iterator[FakeLichess]:
    fake = FakeLichess()
    fake.add_user("Alice", 60)
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, lichess_for_server: FakeLichess
) -> Iterator[Server]:
    """An embedded kibitz (SQLite store and log) on a fresh home, with the demo."""
    running = start_server(
        tmp_path_factory.mktemp("serve"),
        {
            "KIBITZ_LICHESS_URL": lichess_for_server.url,
            "KIBITZ_MAX_UPLOAD_BYTES": str(1024 * 1024),
            # Budgets that find the demo's puzzles and the classics' judgments; the engine's
            # depth is measured by the tests of analysis and problems, not here.
            "KIBITZ_QUICK_NODES": "2000",
            "KIBITZ_DEEP_NODES": "10000",
            "KIBITZ_INTERACTIVE_DEEP_NODES": "10000",
            "KIBITZ_PROBLEM_NODES": "20000",
        },
    )
    try:
        yield running
    finally:
        stop_server(running)


def puzzle_solution(server: Server, puzzle_id: str) -> list[str]:
    """A puzzle's solution (UCI), read from the server's store: the API keeps it secret."""
    with sqlite3.connect(server.home / "kibitz.db") as db:
        row = db.execute("SELECT solution FROM problems WHERE id = ?", (puzzle_id,)).fetchone()
    return list(json.loads(row[0]))


def opera_puzzle(server: Server, timeout: float = 180.0) -> str:
    """The id of the demo's Opera-game puzzle (17.Rd8#), once the demo games are analysed and
    searched in the background (the demo does that on first start)."""
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        games = net.get(f"{server.url}/api/players/Paul Morphy/games").json().get("games", [])
        # After 15...Nxd7 the puzzle is the mate in two 16.Qb8+ Nxb8 17.Rd8# (ply 30), or it
        # starts at 16...Nxb8, a mate in one (ply 32): which one the engines' hash decides.
        for ply in (32, 30) if games else ():
            answer = net.get(f"{server.url}/api/problems/{games[0]['id']}-{ply}")
            if answer.status_code == 200:
                return str(answer.json()["id"])
        time.sleep(0.5)
    raise AssertionError(f"no puzzle from the demo games within {timeout}s")


# --- the browser (Debian's Chromium through Playwright) -----------------------------------

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A desktop-sized page whose every request is recorded: none may leave the kibitz server
    (no CDN, no font service, nothing of lichess.org)."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    requested: list[str] = []
    opened.on("request", lambda request: requested.append(request.url))
    try:
        yield opened
    finally:
        context.close()
    elsewhere = [url for url in requested if not local(url)]
    assert not elsewhere, f"the pages fetched from outside the server: {elsewhere[:5]}"
    assert requested  # the recorder saw the pages' requests


def local(url: str) -> bool:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.scheme in ("data", "blob", "about") or parts.hostname == "127.0.0.1"


def snap(page: Page, name: str, tmp_path: Path) -> None:
    target = Path(os.environ.get("KIBITZ_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    # A board's pieces still moving would be caught half way: wait until they stand.
    page.wait_for_function("!document.querySelector('piece.anim, piece.fading')")
    page.screenshot(path=str(target / f"{name}.png"), full_page=True)


def click_move(page: Page, uci: str, board: str = "#board", *, drag: bool = False) -> None:
    """Play `uci` on a chessground board: a click on its square, then on the target, or with
    `drag` the piece dragged there; a promotion is then chosen in the picker."""
    box = page.locator(board).bounding_box()
    assert box is not None
    flipped = page.locator(f"{board}.orientation-black").count() == 1

    def centre(name: str) -> tuple[float, float]:
        square = chess.parse_square(name)
        file, rank = chess.square_file(square), chess.square_rank(square)
        col, row = (7 - file, rank) if flipped else (file, 7 - rank)
        return box["x"] + (col + 0.5) * box["width"] / 8, box["y"] + (row + 0.5) * box["height"] / 8

    if drag:
        page.mouse.move(*centre(uci[:2]))
        page.mouse.down()
        page.mouse.move(*centre(uci[2:4]), steps=8)
        page.mouse.up()
    else:
        page.mouse.click(*centre(uci[:2]))
        page.mouse.click(*centre(uci[2:4]))
    if len(uci) == 5:
        role = chess.piece_name(chess.Piece.from_symbol(uci[4]).piece_type)
        page.locator(f"#promotion .promote.{role}").click()


def logged(home: Path, topic: str) -> list[tuple[str, str]]:
    """(game id, event id) of every record of `topic` in an embedded server's log (read while
    it runs, or after)."""
    with sqlite3.connect(home / "eventlog.db") as db:
        rows = db.execute("SELECT value FROM records WHERE topic = ?", (topic,)).fetchall()
    return [
        (payload.game_id, envelope.id) for envelope, payload in map(decode, (r[0] for r in rows))
    ]
