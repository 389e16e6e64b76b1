"""kibitz: an event-driven chess analysis platform."""

__version__ = "0.1.0"
