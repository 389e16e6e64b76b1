"""The speech port's twin: a short WAV per line, or a failure when told to fail."""

from __future__ import annotations

from kibitz.errors import UpstreamUnavailable


class ScriptedSpeech:
    def __init__(self) -> None:
        self.spoken: list[str] = []
        self.fail = False

    async def speak(self, text: str) -> bytes:
        if self.fail:
            raise UpstreamUnavailable("speech: espeak-ng is not installed")
        self.spoken.append(text)
        return b"RIFF" + len(text).to_bytes(4, "little") + b"WAVEfmt "
