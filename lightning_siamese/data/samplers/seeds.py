"""Independent random streams from one seed: one child of ``SeedSequence(seed)`` per purpose.

An evaluation is fixed by one seed, but its episodes, their unknown (open-set) queries and
its pairs and triplets must not draw the same random numbers (with ``default_rng(seed)``
each, the first pair replays the first episode's draws). Each purpose takes its own child
of ``numpy.random.SeedSequence(seed).spawn``, in the fixed order of :data:`STREAMS`: a new
purpose is appended, never inserted, so the existing streams of a seed stay what they are.
"""

from __future__ import annotations

import numpy as np

STREAMS = ("episodes", "unknown_queries", "pairs", "triplets")


def seed_stream(seed: int, purpose: str) -> np.random.Generator:
    """The generator of ``purpose`` (one of :data:`STREAMS`) under ``seed``: the same for the same seed, independent of the others."""
    if purpose not in STREAMS:
        raise ValueError(f"unknown random stream {purpose!r}; expected one of {STREAMS}")
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(len(STREAMS))[STREAMS.index(purpose)])
