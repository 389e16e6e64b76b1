"""Players: the one rule for what a Lichess username can be."""

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
