"""A character-level language model in numpy, trained in well under a second at start-up.

Small on purpose, real on purpose: the model is a character trigram table smoothed with bigram
and unigram back-off, trained on the text below (or any text you pass). Generation computes a
probability vector over the alphabet for every token and samples it with a seeded generator, so
time to first token and time per token come from actual work (a short prefill over the prompt,
then one step per token), not from sleeps. Nothing is downloaded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import numpy as np

CORPUS = """\
Tracing a model server starts with the request: where did the time go, and what did the model see.
A trace holds the server span, then preprocess, feature lookup, inference and postprocess.
Generative models are judged by the time to the first token and the time per output token.
The queue before generation, the prefill over the prompt and the decode loop each take their share.
When a client goes away in the middle of a stream, the server should stop generating and say so.
Drift on inputs and outputs shows when the traffic no longer looks like the data the model learned.
Small models, honest numbers: measure side by side, report medians, never trust one fast run.
"""


class CharModel:
    """Trigram character model with back-off: ``encode``, ``stream``, ``generate``."""

    def __init__(self, text: str = CORPUS, *, prefill_passes: int = 4, step_work: int = 2) -> None:
        chars = sorted(set(text))
        self.alphabet = "".join(chars)
        self.index = {c: i for i, c in enumerate(chars)}
        ids = np.array([self.index[c] for c in text], dtype=np.int64)
        v = len(chars)
        uni = np.bincount(ids, minlength=v).astype(np.float64) + 1.0
        bi = np.ones((v, v))
        np.add.at(bi, (ids[:-1], ids[1:]), 1.0)
        tri = np.zeros((v, v, v))
        np.add.at(tri, (ids[:-2], ids[1:-1], ids[2:]), 1.0)
        # Interpolated back-off: a log-probability table for every (prev2, prev1) context.
        p_uni = uni / uni.sum()
        p_bi = bi / bi.sum(axis=1, keepdims=True)
        counts = tri.sum(axis=2, keepdims=True)
        p_tri = np.divide(tri, counts, out=np.zeros_like(tri), where=counts > 0)
        lam = np.where(counts > 0, 0.7, 0.0)
        mixed = lam * p_tri + (1 - lam) * (0.9 * p_bi[None, :, :] + 0.1 * p_uni[None, None, :])
        self.logits = np.log(mixed)
        self.vocab_size = v
        self.prefill_passes = prefill_passes
        self.step_work = step_work

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (characters outside the alphabet become a space)."""
        space = self.index.get(" ", 0)
        return [self.index.get(c, space) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.alphabet[i] for i in ids)

    def _prefill(self, ids: list[int]) -> float:
        """Run over the prompt, 32 positions at a time (the work a real model's prefill does, so
        a long prompt makes a late first token): a score per position."""
        if len(ids) < 3:
            return 0.0
        a = np.asarray(ids, dtype=np.int64)
        score = 0.0
        for _ in range(self.prefill_passes):
            for i in range(0, len(a) - 1, 32):
                prev, cur = a[i : i + 32], a[i + 1 : i + 33]
                k = min(len(prev), len(cur))
                block = self.logits[prev[:k], cur[:k], :]
                score += float(np.logaddexp.reduce(block, axis=1).sum())
        return score

    def _step(self, p2: int, p1: int, rng: np.random.Generator, temperature: float) -> int:
        row = self.logits[p2, p1]
        for _ in range(self.step_work):  # a few vector passes per token, like a tiny decoder layer
            row = row - np.logaddexp.reduce(row)  # renormalise (a no-op on the values, real work)
        if temperature <= 0:
            return int(np.argmax(row))
        z = row / temperature
        z = np.exp(z - z.max())
        return int(rng.choice(self.vocab_size, p=z / z.sum()))

    def tokens(
        self, prompt_ids: list[int], max_tokens: int, *, seed: int = 0, temperature: float = 0.5,
        stop: str = "",
    ) -> Iterator[str]:
        """Characters one at a time, at most ``max_tokens``; ends before a character in ``stop``."""
        rng = np.random.default_rng(seed)
        self._prefill(prompt_ids)
        space = self.index.get(" ", 0)
        ctx = [space, space, *prompt_ids][-2:]
        for _ in range(max_tokens):
            nxt = self._step(ctx[0], ctx[1], rng, temperature)
            ctx = [ctx[1], nxt]
            ch = self.alphabet[nxt]
            if ch in stop:
                return
            yield ch

    async def stream(
        self, prompt_ids: list[int], max_tokens: int, *, seed: int = 0, temperature: float = 0.5, stop: str = ""
    ) -> AsyncIterator[str]:
        """:meth:`tokens`, giving the event loop a turn between tokens (other streams interleave)."""
        for ch in self.tokens(prompt_ids, max_tokens, seed=seed, temperature=temperature, stop=stop):
            yield ch
            await asyncio.sleep(0)
