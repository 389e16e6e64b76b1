"""Input that once froze, broke or confused the import: each is refused by reason, at once,
or read as Lichess writes it (issue 16). Fixture sources: tests/fixtures/README.md."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import pytest

from kibitz.domain.games import (
    MAX_PLIES,
    game_from_lichess,
    game_from_pgn,
    parse_raw_games,
    split_pgn,
)
from kibitz.domain.players import check_profile, check_username
from kibitz.errors import InvalidInput, InvalidPgn

FIXTURES = Path(__file__).parent.parent / "fixtures"


def games_of(name: str) -> list[str]:
    return [e.pgn or "" for e in split_pgn((FIXTURES / name).read_text())]


def shuffle_game(plies: int) -> str:
    """A legal game of `plies` knight moves back and forth (Nf3 Nf6 Ng1 Ng8 …)."""
    cycle = ["Nf3", "Nf6", "Ng1", "Ng8"]
    tokens = []
    for ply in range(plies):
        if ply % 2 == 0:
            tokens.append(f"{ply // 2 + 1}.")
        tokens.append(cycle[ply % 4])
    return '[Event "x"]\n[White "a"]\n[Black "b"]\n\n' + " ".join(tokens) + " *\n"


def test_a_lichess_game_broadcast_games_and_a_study_chapter_get_their_own_ids() -> None:
    exported = [game_from_pgn(text) for text in games_of("lichess_exports.pgn")]
    assert [g.id for g in exported] == ["PpwPOZMq", "oHmutTGn"]  # Site; GameURL alone
    broadcast = [game_from_pgn(text) for text in games_of("lichess_broadcast_round.pgn")]
    assert [g.id for g in broadcast] == ["pjFW7Z3B", "vLMnoCct", "b0eP7FAA"]
    assert [g.white_name for g in broadcast] == [
        "Abugenda, Nagi",
        "Xiong, Jeffery",
        "Qin, Oscar Shu Xuan",
    ]
    (chapter,) = [game_from_pgn(text) for text in games_of("lichess_study_chapter.pgn")]
    assert chapter.id == "hO2QSrD3" and chapter.black_name == "Magnus Carlsen"


def test_a_site_that_is_no_game_url_gives_an_id_of_the_game_itself() -> None:
    text = games_of("lichess_exports.pgn")[0].replace(
        "https://lichess.org/PpwPOZMq", "https://lichess.org/broadcast"
    )
    record = game_from_pgn(text)
    assert record.id.startswith("p") and record.id != "broadcas"
    assert game_from_pgn(text).id == record.id


def test_a_game_too_long_to_be_real_is_refused_and_a_long_real_one_is_read() -> None:
    with pytest.raises(InvalidPgn, match=f"more than {MAX_PLIES} plies"):
        game_from_pgn(shuffle_game(10_000))
    assert len(game_from_pgn(shuffle_game(MAX_PLIES)).moves_uci) == MAX_PLIES


@pytest.mark.parametrize("data", [b"f8{}){", bytes(random.Random(7).randbytes(20_000))])
def test_garbage_is_refused_by_reason_never_by_a_crash(data: bytes) -> None:
    entries = split_pgn(data.decode("latin-1"))
    assert entries
    for entry in entries:
        if entry.pgn is None:
            assert entry.error
            continue
        with pytest.raises(InvalidPgn):
            game_from_pgn(entry.pgn)


def test_random_bytes_never_escape_the_store_parser_as_an_exception() -> None:
    raw = [("pgn", None, os.urandom(3000).decode("latin-1")) for _ in range(20)]
    raw += [("pgn", None, "f8{}){"), ("lichess", "[1,2,3]", None), ("lichess", '{"id": "ab', None)]
    results = parse_raw_games(raw)
    assert all(isinstance(r, str) and r for r in results)
    assert "not a game object" in str(results[-2]) and "not JSON" in str(results[-1])


BASE = games_of("lichess_exports.pgn")[0]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (('[WhiteElo "2100"]', '[WhiteElo "99999999999999999999"]'), "WhiteElo"),
        (('[TimeControl "300+0"]', '[TimeControl "99999999999999999999+0"]'), "time control"),
        (('[Black "Costello"]', f'[Black "{"C" * 65}"]'), "Black name"),
        (('[Black "Costello"]', '[Black "Cost\x00ello"]'), "NUL"),
        (('[ECO "B30"]', f'[ECO "{"B" * 20}"]'), "ECO"),
    ],
)
def test_a_value_no_store_can_keep_is_refused_by_name(change: tuple[str, str], reason: str) -> None:
    assert change[0] in BASE
    with pytest.raises(InvalidPgn, match=reason):
        game_from_pgn(BASE.replace(*change))


@pytest.mark.parametrize(
    ("variant", "moves"),
    [
        ("Chess960", "1. e4 e5 2. Nf3 Nc6 *"),
        ("Crazyhouse", "1. e4 d5 2. exd5 Qxd5 3. P@e4 *"),
        ("Atomic", "1. e4 e5 2. Nf3 Nc6 *"),
        ("Three-check", "1. e4 e5 2. Nf3 Nc6 *"),
    ],
)
def test_other_variants_are_refused_at_import(variant: str, moves: str) -> None:
    text = f'[Event "x"]\n[White "a"]\n[Black "b"]\n[Variant "{variant}"]\n\n{moves}\n'
    with pytest.raises(InvalidPgn, match="not supported"):
        game_from_pgn(text)


def test_a_game_without_moves_or_without_kings_is_refused() -> None:
    with pytest.raises(InvalidPgn, match="no moves"):
        game_from_pgn('[Event "x"]\n[White "a"]\n[Black "b"]\n\n*\n')
    no_kings = '[SetUp "1"]\n[FEN "8/8/8/8/8/8/8/8 w - - 0 1"]\n\n*\n'
    with pytest.raises(InvalidPgn, match="not legal"):
        game_from_pgn(no_kings)
    with pytest.raises(InvalidPgn, match="not legal"):
        game_from_lichess(
            {"id": "abcdefgh", "variant": "fromPosition", "initialFen": "8/8/8/8/8/8/8/8 w - - 0 1"}
        )


def lichess_game() -> dict[str, object]:
    loaded: dict[str, object] = json.loads(
        (FIXTURES / "lichess_game_with_analysis.json").read_text()
    )
    return loaded


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("players", "nope", "players"),
        ("createdAt", "yesterday", "createdAt"),
        ("createdAt", 10**18, "date"),
        ("id", "../../etc/passwd", "not a valid id"),
        ("clock", {"initial": "3m"}, "clock.initial"),
        ("rated", 1, "rated"),
    ],
)
def test_a_lichess_object_with_a_wrong_field_is_refused_by_name(
    field: str, value: object, reason: str
) -> None:
    game = lichess_game()
    game[field] = value
    with pytest.raises(InvalidPgn, match=reason):
        game_from_lichess(game)
    assert game_from_lichess(lichess_game()).id == "q7ZvsdUF"


def test_one_username_rule_refuses_unicode_and_takes_lichess_names() -> None:
    assert check_username(" Alice_2 ") == "Alice_2"
    for bad in ("Ålice", "名前名前", "a", "-bob", "x" * 31, "bob!"):
        with pytest.raises(InvalidInput):
            check_username(bad)


def test_a_profile_too_deep_or_too_large_is_refused() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(900):
        node["x"] = {}
        node = node["x"]  # type: ignore[assignment]
    with pytest.raises(InvalidInput, match="nested"):
        check_profile(deep)
    with pytest.raises(InvalidInput, match="bytes"):
        check_profile({"voice": "x" * 5000})
    assert check_profile({"speech": True, "voice": {"name": "en"}}) == {
        "speech": True,
        "voice": {"name": "en"},
    }


def test_a_game_played_before_1970_keeps_its_date() -> None:
    text = (FIXTURES / "lichess_study_chapter.pgn").read_text()
    record = game_from_pgn(text.replace('[Date "2005.07.17"]', '[Date "1851.06.21"]'))
    assert record.played_at is not None and record.played_at.year == 1851


def test_one_backoff_doubles_from_its_first_wait_up_to_its_cap() -> None:
    from kibitz.backoff import Backoff
    from kibitz.runtime.consumer import RetryPolicy

    backoff = Backoff(first=0.5, cap=30.0)
    assert [backoff.delay(n) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(10_000) == 30.0
    assert RetryPolicy(base_delay=0.5, max_delay=60.0).delay(3) == 2.0


def test_side_lines_are_read_not_kept_and_the_comments_after_them_stay_with_the_main_line() -> None:
    text = (
        '[Event "x"]\n\n'
        "1. e4 {[%clk 0:03:00]} (1. d4 {[%clk 0:02:00] [%eval 9.0]} d5) "
        "{[%eval 0.3]} 1... e5 $1 {[%clk 0:02:59]} {[%eval #-2]} 2. Nf3 *\n"
    )
    game = game_from_pgn(text)
    assert game.moves_san == ["e4", "e5", "Nf3"]
    assert game.pgn_evals == [{"cp": 30}, {"mate": -2}, None]
    assert game.clocks_cs is None  # two clocks for three moves: none kept
    assert game.opening_name is not None and game.opening_ply is not None
    with pytest.raises(InvalidPgn, match="illegal"):
        game_from_pgn('[Event "x"]\n\n1. e4 (1. d4 Ke3) e5 *\n')  # a side line's illegal move


def test_a_game_keeps_its_id_from_one_version_to_the_next() -> None:
    # A PGN game without a Lichess URL is named by a hash of its headers (with PGN's seven
    # default tags) and moves: were it to change, importing a file again would double it.
    text = '[Event "Casual game"]\n[Site "?"]\n[White "Carol"]\n[Black "Dan"]\n'
    text += '[Result "0-1"]\n\n1. f3 e5 2. g4 Qh4# 0-1\n'
    assert game_from_pgn(text).id == "p631a2a1156e82cd"
    assert game_from_pgn(text.replace('[Site "?"]\n', "")).id == "p631a2a1156e82cd"
