"""Progress of `evaluate.generate`, one step per answer; with `stream`, the answers as they grow.

A streamed progress message is a note on its first line and a JSON object on the rest:
`{"prompt": index, "variants": [names in order], "answers": {name: text so far}, "generating":
name or null}`. It holds every answer of the current prompt so far, not only the growing one: the
daemon keeps only the latest progress message of each flush, so a message must not rely on an
earlier one having been stored. Each text is a prefix of the final answer (see `visible`); the
answer's last message holds the final text itself.

An answer costs at most 2 + min(new tokens, seconds it takes / INTERVAL_S) progress messages: one
when it starts, at most one per INTERVAL_S while its text grows, one with the final text (and the
job one more at its end). Imported only inside the operation (it imports transformers).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

from transformers.generation.streamers import BaseStreamer

from tunelog.plugins.api import JobContext

INTERVAL_S = 0.25
"""Least time between two messages about growing text (the start and the end of an answer are always sent)."""


def visible(text: str, stop: Sequence[str]) -> str:
    """The part of a partial decode that the final answer is sure to start with: cut before a stop
    string, without a trailing start of a stop string, replacement characters (a character whose
    bytes are still arriving) or whitespace (a tokenizer may join it to what follows)."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=len(text))
    text = text[:cut]
    held = max((n for s in stop for n in range(1, len(s)) if text.endswith(s[:n])), default=0)
    text = text[:len(text) - held]
    while text and (text[-1].isspace() or text[-1] == "\ufffd"):
        text = text[:-1]
    return text


class Progress:
    """Reports evaluate.generate's progress through `ctx.progress`: step = answers finished of `total`."""

    def __init__(self, ctx: JobContext, *, variants: list[str], total: int, stream: bool,
                 interval: float = INTERVAL_S, clock: Callable[[], float] = time.monotonic):
        self.ctx, self.variants, self.total, self.stream = ctx, variants, total, stream
        self.interval, self.clock = interval, clock
        self.done, self.prompt = 0, 0
        self.answers: dict[str, str] = {}
        self._sent_at = -interval

    def start(self, prompt: int) -> None:
        """Answers for prompt number `prompt` follow."""
        self.prompt, self.answers = prompt, {}

    def begin(self, name: str) -> None:
        """Variant `name` starts answering."""
        if self.stream:
            self.answers[name] = ""
            self._send(f"generating {name} (answer {self.done + 1} of {self.total})", generating=name)
        else:
            self.ctx.progress(self.done, self.total, f"generating {name}")

    def due(self) -> bool:
        """Whether a message about growing text may go out now."""
        return self.clock() - self._sent_at >= self.interval

    def grow(self, name: str, text: str) -> None:
        """The text of `name` so far (sent when it grew and a message is due)."""
        if self.stream and len(text) > len(self.answers.get(name, "")) and self.due():
            self.answers[name] = text
            self._send(f"generating {name} (answer {self.done + 1} of {self.total})", generating=name)

    def finish(self, name: str, text: str) -> None:
        """Variant `name` answered `text`."""
        self.done += 1
        if self.stream:
            self.answers[name] = text
            self._send(f"answered {name} ({self.done} of {self.total})", generating=None)

    def end(self) -> None:
        """Every answer is in (streamed: the last prompt's answers stay shown until the report replaces them)."""
        if self.stream:
            self._send("done", generating=None)
        else:
            self.ctx.progress(self.done, self.total, "done")

    def streamer(self, tokenizer: Any, name: str, stop: Sequence[str]) -> TokenStream | None:
        """A transformers streamer feeding `grow` for variant `name` (None when not streaming)."""
        return TokenStream(self, tokenizer, name, stop) if self.stream else None

    def _send(self, note: str, *, generating: str | None) -> None:
        body = {"prompt": self.prompt, "variants": self.variants, "answers": self.answers, "generating": generating}
        self.ctx.progress(self.done, self.total, f"{note}\n{json.dumps(body, ensure_ascii=False)}")
        self._sent_at = self.clock()


class TokenStream(BaseStreamer):
    """Receives the tokens `generate` produces (the prompt first) and decodes them only when a
    message is due, so a fast model is not slowed by decoding every token."""

    def __init__(self, progress: Progress, tokenizer: Any, name: str, stop: Sequence[str]):
        self.progress, self.tokenizer, self.name, self.stop = progress, tokenizer, name, stop
        self.ids: list[int] | None = None

    def put(self, value: Any) -> None:
        if self.ids is None:  # generate puts the prompt's ids first
            self.ids = []
            return
        self.ids += [int(t) for t in value.reshape(-1).tolist()]
        if self.progress.due():
            text = str(self.tokenizer.decode(self.ids, skip_special_tokens=True))
            self.progress.grow(self.name, visible(text, self.stop))

    def end(self) -> None:
        """Nothing: the caller reports the final text (`Progress.finish`)."""
