"""The HTTP edge under abuse, in process over the real stores: the token is checked before a
body is read, bodies are cut at the limit, NUL bytes and full disks get the same JSON answer on
both stores, and health tells the truth (issue 16, items 6, 7, 10, 11, 13)."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy import event

from kibitz.services.ingest import import_pgn
from tests.support import api, running, settings_for, wait_for_sync

FIXTURES = Path(__file__).parent.parent / "fixtures"
TOKEN = "s3cret-token"


async def test_an_upload_without_the_token_is_refused_before_its_body_is_read(
    tmp_path: Path,
) -> None:
    sent = 0

    async def body() -> AsyncIterator[bytes]:  # 200 MiB, chunked (no Content-Length)
        nonlocal sent
        yield (
            b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.pgn"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        for _ in range(200):
            sent += 1
            yield b"x" * (1 << 20)

    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", api_token=TOKEN) as (http, _):
        headers = {"content-type": "multipart/form-data; boundary=b"}
        answer = await http.post("/api/imports/pgn", content=body(), headers=headers)
        assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
        assert sent <= 1
        # With the token, a chunked body is cut off at the limit (20 MiB + 64 KiB).
        sent = 0
        answer = await http.post(
            "/api/imports/pgn",
            content=body(),
            headers={**headers, "authorization": f"Bearer {TOKEN}"},
        )
        assert answer.status_code == 413 and answer.json()["error"] == "payload_too_large"
        assert sent <= 22


async def test_the_token_needs_its_scheme_and_guards_state_changing_and_operator_reads(
    tmp_path: Path,
) -> None:
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", api_token=TOKEN) as (http, _):
        follow = "/api/players/alice/follow"
        assert (await http.post(follow, headers={"authorization": TOKEN})).status_code == 401
        assert (
            await http.post(follow, headers={"authorization": f"Basic {TOKEN}"})
        ).status_code == 401
        ok = await http.post(follow, headers={"authorization": f"bearer {TOKEN}"})
        assert ok.status_code == 200 and ok.json()["followed"] is True
        for path in ("/api/problems/random", "/api/ops/dlq/games.raw"):
            refused = await http.get(path)
            assert refused.status_code == 401, path
            allowed = await http.get(path, headers={"authorization": f"Bearer {TOKEN}"})
            assert allowed.status_code in (200, 404), (path, allowed.text)
        # Reads that change nothing stay open.
        assert (await http.get("/api/players/alice/games")).status_code == 200


async def test_a_nul_byte_gets_the_same_json_answer_on_both_stores(
    tmp_path: Path, database_url: str
) -> None:
    async with api(tmp_path, database_url) as (http, _):
        for path in ("/api/games/%00", "/api/syncs/a%00b", "/api/problems/%00", "/api/live/x%00"):
            answer = await http.get(path)
            assert answer.status_code == 404, (path, answer.text)
            assert answer.json()["error"] == "not_found"
        answer = await http.get("/api/problems/pool", params={"player": "a\x00b"})
        assert answer.status_code == 422 and answer.json()["error"] == "invalid_input"


async def test_a_tracking_profile_nested_900_deep_is_refused_before_tracking_starts(
    tmp_path: Path,
) -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(900):
        node["x"] = {}
        node = node["x"]
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}") as (http, _):
        answer = await http.post("/api/tracking", json={"username": "alice", "profile": deep})
        assert answer.status_code == 422 and "nested" in answer.json()["detail"]
        tracked = (await http.get("/api/tracking")).json()
    assert "alice" not in str(tracked).lower()


async def test_a_full_disk_answers_507_json_health_says_so_and_writes_resume_with_space(
    tmp_path: Path,
) -> None:
    path = tmp_path / "k.db"
    limit: dict[str, int | None] = {"pages": None}
    async with api(tmp_path, f"sqlite:///{path}") as (http, container):
        engine = container.sql.engine

        @event.listens_for(engine, "connect")
        def _cap(dbapi_conn: sqlite3.Connection, _record: object) -> None:
            if limit["pages"] is not None:
                dbapi_conn.execute(f"PRAGMA max_page_count={limit['pages']}")

        with sqlite3.connect(path) as db:
            limit["pages"] = db.execute("PRAGMA page_count").fetchone()[0]
        engine.dispose()
        answer = None
        for i in range(2000):  # follow players until the database must grow
            answer = await http.post(f"/api/players/player{i:04d}x/follow")
            if answer.status_code != 200:
                break
        assert answer is not None and answer.status_code == 507, answer.text
        assert answer.json()["error"] == "storage_full"
        health = await http.get("/api/health")
        assert health.status_code == 503
        assert "StorageFull" in health.json()["components"]["store"]
        limit["pages"] = None  # space comes back
        engine.dispose()
        assert (await http.post("/api/players/after/follow")).status_code == 200
        health = await http.get("/api/health")
        assert health.json()["components"]["store"] == "ok"


async def test_health_names_a_service_whose_every_process_died(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'k.db'}"
    settings = settings_for(tmp_path, url)
    async with running(settings, ["store"]) as worker:  # the store service's only process
        text = (FIXTURES / "lichess_study_chapter.pgn").read_text()
        assert (await wait_for_sync(worker, await import_pgn(worker.ctx, text)))["status"] == "done"
        async with api(tmp_path, url) as (http, _):
            health = (await http.get("/api/health")).json()
            assert health["components"]["services"] == "ok", health
    async with api(tmp_path, url) as (http, _):  # it has gone: nobody stores games now
        answer = await http.get("/api/health")
    assert answer.status_code == 503
    assert "kibitz.store" in answer.json()["components"]["services"]


async def test_sync_and_tracking_refuse_the_same_usernames(tmp_path: Path) -> None:
    """One rule: a name Lichess cannot have is refused at once by both (it was a 202 for a
    sync, then a 404 from Lichess)."""
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}") as (http, _):
        for name in ("Ålice", "名前名前", "-bob"):
            sync = await http.post(f"/api/players/{name}/sync")
            track = await http.post("/api/tracking", json={"username": name})
            assert (sync.status_code, track.status_code) == (422, 422), name
            assert sync.json()["error"] == track.json()["error"] == "invalid_input"


async def test_api_only_asks_the_tracker_process_how_many_players_it_follows(
    tmp_path: Path,
) -> None:
    """`active_trackers` was null under `serve --api-only` (issue 17, item 17): the API asks the
    tracker's own /health (a real tracker interface here, over a real port)."""
    import asyncio

    import uvicorn

    from kibitz.api.tracker_app import create_tracker_app
    from kibitz.runtime.cluster import free_port

    url = f"sqlite:///{tmp_path / 'k.db'}"
    port = free_port()
    async with running(settings_for(tmp_path, url), ["tracker"]) as tracking:
        server = uvicorn.Server(
            uvicorn.Config(
                create_tracker_app(tracking.component("tracker")),
                host="127.0.0.1",
                port=port,
                log_level="warning",
            )
        )
        serving = asyncio.create_task(server.serve())
        try:
            async with asyncio.timeout(30):
                while not server.started:
                    await asyncio.sleep(0.05)
            tracker_url = f"http://127.0.0.1:{port}"
            async with api(tmp_path, url, tracker_url=tracker_url) as (http, _):
                assert (await http.get("/api/tracking")).json()["active_trackers"] == 0
            async with api(tmp_path, url, tracker_url="http://127.0.0.1:9") as (http, _):
                assert (await http.get("/api/tracking")).json()["active_trackers"] is None
        finally:
            server.should_exit = True
            await serving


async def test_the_token_never_reaches_a_log_or_an_error_body(tmp_path: Path, caplog: Any) -> None:
    """Issue 17, item 20: every write checks the token the same way; neither the right token
    nor a wrong one is ever written to a log or echoed in an answer."""
    import logging

    wrong = "wr0ng-t0ken-value"
    caplog.set_level(logging.DEBUG)
    bodies: list[str] = []
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", api_token=TOKEN) as (http, _):
        writes = [
            ("POST", "/api/players/alice/follow", None),
            ("DELETE", "/api/players/alice/follow", None),
            ("POST", "/api/players/alice/sync", {}),
            ("POST", "/api/games/nope/analysis", {}),
            ("DELETE", "/api/games/nope/analysis", None),
            ("POST", "/api/problems/generate-bulk", {}),
            ("POST", "/api/matches", {"rounds": 1, "robots_per_round": 1}),
            ("POST", "/api/tracking", {"username": "alice"}),
            ("POST", "/api/ops/dlq/games.raw/discard", None),
        ]
        for method, path, body in writes:
            for header in (f"Bearer {wrong}", wrong, None):
                headers = {"authorization": header} if header else {}
                answer = await http.request(method, path, json=body, headers=headers)
                assert answer.status_code == 401, (method, path, header, answer.text)
                bodies.append(answer.text)
            answer = await http.request(
                method, path, json=body, headers={"authorization": f"Bearer {TOKEN}"}
            )
            assert answer.status_code != 401, (method, path)
            bodies.append(answer.text)
    logged = "\n".join(f"{r.getMessage()} {r.args!r}" for r in caplog.records)
    for secret in (TOKEN, wrong):
        assert secret not in logged
        assert all(secret not in body for body in bodies)


async def test_the_favicon_is_served(tmp_path: Path) -> None:
    """Issue 17, item 24: /favicon.ico was a 404 on every page load."""
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}") as (http, _):
        icon = await http.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")


async def test_workers_alive_drops_within_three_heartbeats_when_a_worker_dies(
    tmp_path: Path,
) -> None:
    """Issue 17, item 21: /ops counted a killed worker for minutes, as long as the broker kept
    it in the group. The heartbeats say it at once, whatever the broker."""
    import asyncio

    url = f"sqlite:///{tmp_path / 'k.db'}"
    settings = settings_for(tmp_path, url, heartbeat_seconds=0.1)
    async with running(settings, ["store"]), running(settings, ["store"]) as doomed:
        async with api(tmp_path, url, heartbeat_seconds=0.1) as (http, _):

            async def alive() -> int:
                groups = (await http.get("/api/ops")).json()["groups"]
                return int(next(g["alive"] for g in groups if g["group"] == "kibitz.store"))

            async with asyncio.timeout(10):
                while await alive() != 2:
                    await asyncio.sleep(0.05)
            supervisor = doomed.supervisor
            assert supervisor is not None
            supervisor.workers = None  # a SIGKILL: no goodbye
            for task in supervisor._tasks:
                task.cancel()
            async with asyncio.timeout(10):
                while await alive() != 1:
                    await asyncio.sleep(0.05)
            health = (await http.get("/api/health")).json()
            assert health["components"]["services"] == "ok"  # one store worker is left


async def test_a_browser_signs_in_once_then_writes_with_its_cookie_and_the_csrf_value(
    tmp_path: Path,
) -> None:
    pgn = (FIXTURES / "lichess_study_chapter.pgn").read_text()
    async with api(tmp_path, f"sqlite:///{tmp_path / 'k.db'}", api_token=TOKEN) as (http, _):
        assert (await http.get("/api/session")).json() == {
            "signed_in": False,
            "token_required": True,
        }
        wrong = await http.post("/api/session", json={"token": "nope"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "unauthorized"
        assert "set-cookie" not in wrong.headers
        taken = await http.post("/api/session", json={"token": TOKEN})
        assert taken.status_code == 200 and taken.json()["signed_in"] is True
        set_cookies = taken.headers.get_list("set-cookie")
        session_cookie = next(c for c in set_cookies if c.startswith("kibitz_session="))
        csrf_cookie = next(c for c in set_cookies if c.startswith("kibitz_csrf="))
        assert "HttpOnly" in session_cookie and "SameSite=strict" in session_cookie
        assert "HttpOnly" not in csrf_cookie and "Secure" not in session_cookie  # plain HTTP
        csrf = http.cookies["kibitz_csrf"]
        assert (await http.get("/api/session")).json()["signed_in"] is True

        files = {"file": ("g.pgn", pgn)}
        forged = await http.post("/api/imports/pgn", files=files)  # the cookie, no CSRF value
        assert forged.status_code == 401
        wrong_csrf = await http.post(
            "/api/imports/pgn", files=files, headers={"X-CSRF-Token": "guess"}
        )
        assert wrong_csrf.status_code == 401
        written = await http.post("/api/imports/pgn", files=files, headers={"X-CSRF-Token": csrf})
        assert written.status_code == 202, written.text

        out = await http.delete("/api/session")
        assert out.status_code == 200
        http.cookies.clear()  # as the browser does with the expired cookies
        refused = await http.post("/api/imports/pgn", files=files, headers={"X-CSRF-Token": csrf})
        assert refused.status_code == 401
        # Scripts keep the bearer token, without cookies or CSRF.
        scripted = await http.post(
            "/api/imports/pgn", files=files, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        assert scripted.status_code == 202

        over_https = await http.post(
            "/api/session", json={"token": TOKEN}, headers={"X-Forwarded-Proto": "https"}
        )
        assert all("Secure" in c for c in over_https.headers.get_list("set-cookie"))


async def test_a_session_ends_when_the_token_changes_or_it_is_too_old() -> None:
    from kibitz.api.session import SESSION_SECONDS, new_session, session_valid

    value, _ = new_session(TOKEN, now=1_000_000)
    assert session_valid(value, TOKEN, now=1_000_000 + 60)
    assert not session_valid(value, "another-token", now=1_000_000 + 60)
    assert not session_valid(value, TOKEN, now=1_000_000 + SESSION_SECONDS + 1)
    assert not session_valid("123.forged", TOKEN, now=1_000_000)


async def test_without_a_token_everyone_is_signed_in(tmp_path: Path) -> None:
    async with api(tmp_path, f"sqlite:///{tmp_path / 'o.db'}") as (http, _):
        assert (await http.post("/api/session", json={})).json() == {
            "signed_in": True,
            "token_required": False,
        }
