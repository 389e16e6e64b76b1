"""The error types of kibitz (part of the domain: they name what went wrong in its terms),
mapped to HTTP status codes and CLI exit codes in one place."""

from __future__ import annotations


class KibitzError(Exception):
    """Base of every expected error; `code` is the machine-readable name shown to users."""

    code = "error"
    http_status = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class ConfigurationError(KibitzError):
    code = "configuration_error"
    http_status = 500


class InvalidInput(KibitzError):
    code = "invalid_input"
    http_status = 422


class NotFound(KibitzError):
    code = "not_found"
    http_status = 404


class GameNotFound(NotFound):
    code = "game_not_found"


class PlayerNotFound(NotFound):
    code = "player_not_found"


class Conflict(KibitzError):
    code = "conflict"
    http_status = 409


class PayloadTooLarge(KibitzError):
    code = "payload_too_large"
    http_status = 413


class Unauthorized(KibitzError):
    code = "unauthorized"
    http_status = 401


class StorageFull(KibitzError):
    """The store's disk is full: nothing is lost, writes resume once there is space."""

    code = "storage_full"
    http_status = 507


class InvalidPgn(InvalidInput):
    code = "invalid_pgn"


class UpstreamUnavailable(KibitzError):
    """A server kibitz depends on (Lichess, the broker, the engine) cannot be reached."""

    code = "upstream_unavailable"
    http_status = 503


class EngineUnavailable(UpstreamUnavailable):
    """No engine in this process, or the engine keeps failing."""

    code = "engine_unavailable"


class UserNotFound(NotFound):
    """A game site (Lichess, chess.com) has no such user."""

    code = "user_not_found"


class LichessUserNotFound(UserNotFound):
    code = "lichess_user_not_found"


class RateLimited(KibitzError):
    """A game site asked kibitz to slow down (HTTP 429); `resumes_at` says when it may ask
    again."""

    code = "rate_limited"
    http_status = 503

    def __init__(self, detail: str, resumes_at: float | None = None) -> None:
        super().__init__(detail)
        self.resumes_at = resumes_at


class LichessRateLimited(RateLimited):
    code = "lichess_rate_limited"


class MalformedEvent(KibitzError):
    """A message that is not a valid envelope or whose payload does not fit its type."""

    code = "malformed_event"
    http_status = 400


CLI_EXIT_USAGE = 2
