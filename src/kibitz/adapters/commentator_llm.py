"""The LLM commentator: one line per move from an OpenAI-compatible chat endpoint, given the
engine's facts. On a timeout, an error or an open circuit, the default commentator answers."""

from __future__ import annotations

import json
import logging

import httpx
from prometheus_client import Counter

from kibitz.domain.commentary import Comment, MoveFacts, TemplateCommentator
from kibitz.runtime.breaker import CircuitBreaker
from kibitz.tls import tls_context

log = logging.getLogger("kibitz.llm")

LLM_CALLS = Counter("kibitz_llm_calls_total", "LLM commentary calls", ["outcome"])

SYSTEM_PROMPT = (
    "You are a lively chess commentator. Given the facts of one move as JSON, write one "
    "sentence of commentary (at most 30 words) for the audience. Use only the facts given: "
    "never invent moves, threats or evaluations, and never contradict the engine's verdict."
)


class LlmCommentator:
    name = "llm"

    def __init__(
        self,
        url: str,
        model: str,
        *,
        key: str | None = None,
        timeout: float = 3.0,
        fallback: TemplateCommentator | None = None,
        breaker: CircuitBreaker | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = httpx.AsyncClient(
            base_url=url.rstrip("/"), headers=headers, timeout=timeout, verify=tls_context()
        )
        self.model = model
        self.fallback = fallback or TemplateCommentator()
        self.breaker = breaker or CircuitBreaker("llm")

    async def close(self) -> None:
        await self.http.aclose()

    async def comment(self, facts: MoveFacts) -> Comment:
        if not self.breaker.allow():
            LLM_CALLS.labels("skipped").inc()
            return await self._fallback(facts, "LLM circuit open")
        try:
            text = await self._ask(facts)
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            self.breaker.failure()
            outcome = "timeout" if isinstance(exc, httpx.TimeoutException) else "error"
            LLM_CALLS.labels(outcome).inc()
            reason = f"LLM {outcome}: {type(exc).__name__}"
            log.warning("llm_commentary_failed %s", reason)
            return await self._fallback(facts, reason)
        self.breaker.success()
        LLM_CALLS.labels("ok").inc()
        return Comment(text, self.name)

    async def _fallback(self, facts: MoveFacts, reason: str) -> Comment:
        line = await self.fallback.comment(facts)
        return Comment(line.text, line.commentator, reason)

    async def _ask(self, facts: MoveFacts) -> str:
        response = await self.http.post(
            "/chat/completions",
            json={
                "model": self.model,
                "messages": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": json.dumps(facts.as_prompt())},
                ],
                "max_tokens": 80,
                "temperature": 0.7,
            },
        )
        response.raise_for_status()
        text = str(response.json()["choices"][0]["message"]["content"]).strip()
        if not text:
            raise ValueError("the LLM answered an empty line")
        return " ".join(text.split())[:400]
