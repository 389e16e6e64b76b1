"""Settings read from the environment and `.env`; only `bootstrap` and the CLI entry read them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kibitz.errors import ConfigurationError

DEFAULT_STOCKFISH_PATHS = ("/usr/games/stockfish", "/usr/bin/stockfish", "/usr/local/bin/stockfish")


class Settings(BaseSettings):
    """Every knob of a kibitz process; `KIBITZ_` + the upper-case field name in the environment."""

    model_config = SettingsConfigDict(env_prefix="KIBITZ_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: Path.home() / ".local" / "share" / "kibitz")
    database_url: str = ""
    bus_url: str = ""
    lichess_url: str = "https://lichess.org"
    lichess_token: str | None = None
    chesscom_url: str = "https://api.chess.com"  # chess.com's published API
    stockfish: str = ""
    api_token: str | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_upload_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    demo: bool = True
    cpu_workers: int = Field(
        default_factory=lambda: 1 if (os.cpu_count() or 1) > 1 else 0, ge=0, le=64
    )
    # Analysis: N Stockfish processes, each searching a fixed node budget per position.
    engines: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1, le=256)
    engine_threads: int = Field(default=1, ge=1, le=512)
    engine_hash_mb: int = Field(default=32, ge=1, le=65536)
    # Budgets as Lichess gives them (lila modules/fishnet/src/main/Work.scala): a user's
    # request 1,000,000 nodes, system work 300,000. Before it, a quick pass: a first sketch.
    quick_nodes: int = Field(default=20_000, ge=1)
    # The quick pass of a request for one game, whose user waits for it: unset, half of
    # quick_nodes (10,000: on two cores a 40-move game's sketch is stored within a second,
    # where 20,000 nodes take a second of engine time alone). The deep pass follows at once.
    interactive_quick_nodes: int | None = Field(default=None, ge=1)
    deep_nodes: int = Field(default=300_000, ge=1)  # batch work: followed players, bulk runs
    interactive_deep_nodes: int = Field(default=1_000_000, ge=1)  # a request for one game
    # Graceful degradation: while interactive requests wait longer than this many seconds for
    # an engine, new interactive deep passes run at the batch budget (and say so), until one
    # starts within half of it again. 0 keeps the full budget whatever the wait.
    degrade_after: float = Field(default=30.0, ge=0)
    analysis_timeout: float = Field(default=900.0, gt=0)  # seconds for one game, both phases
    # A running job's lease: a worker that dies leaves its games to another after this long;
    # renewed every quarter of it (and a cancelled job stops within that quarter).
    analysis_lease: float = Field(default=20.0, ge=0.1, le=3600)
    # A process whose store or log is unreachable at start waits for them, reporting itself
    # degraded, retrying every few seconds; after this many seconds it gives up (exit 2).
    upstream_wait: float = Field(default=3600.0, ge=0, le=7 * 86400)
    # Each service process writes a heartbeat this often; "alive" means seen within 3 of them.
    heartbeat_seconds: float = Field(default=5.0, ge=0.05, le=300)
    reuse_lichess_analysis: bool = True
    # The scheduler's round (followed players' syncs and analyses, puzzle pools) every so often.
    scheduler_tick: float = Field(default=60.0, gt=0, le=86400)
    # A file holding seconds to add to the system clock: a test moves time forward (e.g. to
    # when cards are due) by writing it. Unset: the system clock as it is.
    clock_file: Path | None = None
    eval_cache: bool = True  # reuse evaluations of positions already searched at >= the budget
    # Live: the tracker (its own HTTP interface when run alone) and the commentary.
    tracker_url: str = "http://127.0.0.1:8001"  # where `serve --api-only` reaches the tracker
    tracker_port: int = Field(default=8001, ge=1, le=65535)  # `kibitz run tracker` listens here
    track_wait: float = Field(default=300.0, ge=0)  # seconds to wait for a (next) game
    track_poll: float = Field(default=5.0, gt=0)  # seconds between status checks while waiting
    max_tracked: int = Field(default=20, ge=1)  # players one tracker process follows at once
    commentary_nodes: int = Field(default=100_000, ge=1)  # node budget per live position
    llm_url: str | None = None  # an OpenAI-compatible endpoint, e.g. http://host:8080/v1
    llm_model: str = "gpt-4o-mini"
    llm_key: str | None = None
    llm_timeout: float = Field(default=3.0, gt=0)
    problem_nodes: int = Field(default=400_000, ge=1)  # node budget per puzzle search
    problems_min_unserved: int = Field(default=10, ge=0)  # below this, generate more
    match_response_seconds: float = Field(default=60.0, gt=0)  # to answer a round
    match_vote_seconds: float = Field(default=30.0, gt=0)  # to vote
    match_nodes: int = Field(default=100_000, ge=1)  # budget to score the answers
    robots_min_idle: int = Field(default=2, ge=0)  # per personality
    robots_max: int = Field(default=20, ge=1)  # instances in all
    robots_scale_up_busy: float = Field(default=0.8, gt=0, le=1)  # busy share that adds one
    robots_idle_release: float = Field(default=300.0, ge=0)  # idle seconds before release
    robots_tick: float = Field(default=5.0, gt=0)  # seconds between scaling checks
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # `kibitz run`'s /metrics
    speech: bool = False  # speak every line (espeak-ng); a profile can ask for it too

    @field_validator("database_url")
    @classmethod
    def _database_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        return value

    @field_validator("bus_url")
    @classmethod
    def _bus_scheme(cls, value: str) -> str:
        if value and not value.startswith(("sqlite:///", "kafka://")):
            raise ValueError("must be sqlite:///PATH or kafka://HOST:PORT[,HOST:PORT]")
        if value.startswith("kafka://") and not value.removeprefix("kafka://").strip():
            raise ValueError("kafka:// needs at least one HOST:PORT")
        return value

    @field_validator("llm_url", mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("lichess_url", "chesscom_url", "tracker_url", "llm_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _defaults_in_home(self) -> Settings:
        if not self.database_url:
            self.database_url = f"sqlite:///{self.home / 'kibitz.db'}"
        if not self.bus_url:
            self.bus_url = f"sqlite:///{self.home / 'eventlog.db'}"
        return self

    @property
    def kafka_bootstrap(self) -> list[str]:
        """The broker addresses of a `kafka://` bus URL."""
        return [h.strip() for h in self.bus_url.removeprefix("kafka://").split(",") if h.strip()]

    @property
    def interactive_quick_budget(self) -> int:
        """The quick pass's nodes for a request for one game (half of quick_nodes unless set)."""
        return self.interactive_quick_nodes or max(1, self.quick_nodes // 2)

    @property
    def bus_is_kafka(self) -> bool:
        return self.bus_url.startswith("kafka://")

    def stockfish_path(self) -> str | None:
        """The Stockfish binary to run: KIBITZ_STOCKFISH, else PATH, else Debian's location."""
        if self.stockfish:
            return self.stockfish
        found = shutil.which("stockfish")
        if found:
            return found
        for candidate in DEFAULT_STOCKFISH_PATHS:
            if Path(candidate).exists():
                return candidate
        return None


def load_settings(**overrides: object) -> Settings:
    """Read the settings; raises ConfigurationError with a one-line message naming the variable."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        raise ConfigurationError(f"KIBITZ_{field.upper()}: {message}") from None
