"""Players: the one rule for what a username can be on each site, and players' ids."""

from __future__ import annotations

import json
import re
from typing import Any

from kibitz.domain.errors import InvalidInput

# lila's rule: 2 to 30 ASCII letters, digits, '_' or '-', starting and ending with a letter or
# a digit.
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,28}[A-Za-z0-9]")


def check_username(username: str) -> str:
    """The username stripped; raises InvalidInput unless it can be a Lichess username."""
    name = username.strip()
    if not USERNAME.fullmatch(name):
        raise InvalidInput(
            f"{username[:40]!r} is not a valid Lichess username (2-30 letters, digits, _ or -)"
        )
    return name


# chess.com: 3-25 letters, digits, _ or - (its sign-up rule); case does not matter.
CHESSCOM_USERNAME = re.compile(r"[A-Za-z0-9_-]{3,25}")
# A chess.com player's id: the name and this suffix (no Lichess name has an @), so the same
# name on both sites is two players unless linked.
CHESSCOM_SUFFIX = "@chess.com"
SOURCES = ("lichess", "chesscom")


def check_chesscom_username(username: str) -> str:
    """The username stripped; raises InvalidInput unless it can be a chess.com username."""
    name = username.strip()
    if not CHESSCOM_USERNAME.fullmatch(name):
        raise InvalidInput(
            f"{username[:40]!r} is not a valid chess.com username (3-25 letters, digits, _ or -)"
        )
    return name


def player_id(name: str, source: str = "lichess") -> str:
    """The id of a player of a site: the lower-case name, with @chess.com for chess.com."""
    return name.lower() + (CHESSCOM_SUFFIX if source == "chesscom" else "")


MAX_NAME = 64  # a stored player name's length


def player_key(username: str) -> str:
    """The player id of a name as users write it: a chess.com username followed by
    @chess.com, or any other player's name as their games carry it (a Lichess username, or a
    PGN's "Ada Tester"), lower case. InvalidInput for an empty, overlong or unprintable
    name."""
    name = username.strip()
    if name.lower().endswith(CHESSCOM_SUFFIX):
        return player_id(*site_of(name))
    if not name or len(name) > MAX_NAME or not name.isprintable() or "/" in name:
        raise InvalidInput(f"{username[:40]!r} is not a player's name (1-{MAX_NAME} characters)")
    return name.lower()


def site_of(username: str, source: str | None = None) -> tuple[str, str]:
    """(the name checked by its site's rule, the site) of a name as users write it: a Lichess
    username, or a chess.com one given with `source="chesscom"` or written name@chess.com."""
    name = username.strip()
    if name.lower().endswith(CHESSCOM_SUFFIX):
        name, source = name[: -len(CHESSCOM_SUFFIX)], "chesscom"
    site = check_source(source or "lichess")
    if site == "chesscom":
        return check_chesscom_username(name), site
    return check_username(name), site


def check_source(source: str) -> str:
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source[:20]!r}")
    return source


MAX_PROFILE_DEPTH = 4
MAX_PROFILE_BYTES = 4096


def check_profile(profile: dict[str, Any]) -> dict[str, Any]:
    """A tracking profile (speech, voice, …) as given; raises InvalidInput when it is nested
    deeper than MAX_PROFILE_DEPTH or over MAX_PROFILE_BYTES as JSON, before anything acts on
    it."""

    def depth(value: object, level: int) -> int:
        if level > MAX_PROFILE_DEPTH:
            return level
        if isinstance(value, dict):
            value = list(value.values())
        if isinstance(value, list):
            return max((depth(v, level + 1) for v in value), default=level)
        return level

    if depth(profile, 1) > MAX_PROFILE_DEPTH:
        raise InvalidInput(f"the profile is nested deeper than {MAX_PROFILE_DEPTH} levels")
    if len(json.dumps(profile)) > MAX_PROFILE_BYTES:
        raise InvalidInput(f"the profile is over {MAX_PROFILE_BYTES} bytes")
    return profile
