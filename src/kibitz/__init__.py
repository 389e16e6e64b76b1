"""kibitz: an event-driven chess analysis platform."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kibitz")  # one place: pyproject.toml (release-please bumps it)
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
