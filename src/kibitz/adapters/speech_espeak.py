"""Speech: espeak-ng turns a line of commentary into a WAV file (bytes)."""

from __future__ import annotations

import asyncio
import shutil

from kibitz.errors import UpstreamUnavailable


class EspeakSpeech:
    def __init__(self, binary: str | None = None, *, words_per_minute: int = 165) -> None:
        self.binary = binary or shutil.which("espeak-ng") or ""
        self.words_per_minute = words_per_minute

    @property
    def available(self) -> bool:
        return bool(self.binary)

    async def speak(self, text: str) -> bytes:
        """The WAV audio of `text`; UpstreamUnavailable without espeak-ng or when it fails."""
        if not self.binary:
            raise UpstreamUnavailable("speech needs espeak-ng (Debian package `espeak-ng`)")
        process = await asyncio.create_subprocess_exec(
            self.binary,
            "--stdout",
            "-s",
            str(self.words_per_minute),
            "--",
            text,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        audio, error = await process.communicate()
        if process.returncode != 0 or not audio.startswith(b"RIFF"):
            raise UpstreamUnavailable(f"espeak-ng failed: {error.decode(errors='replace')[:200]}")
        return audio
