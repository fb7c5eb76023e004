"""Independent random streams from one seed, one per purpose.

An evaluation is fixed by one seed, but its episodes, their unknown (open-set) queries and
its pairs and triplets must not draw the same random numbers (with ``default_rng(seed)``
each, the first pair replays the first episode's draws). Episodes keep the seed's root
stream, ``default_rng(seed)``, the one every recorded episode accuracy was drawn with, so
the same seed still means the same tasks. Every other purpose takes its own child of
``numpy.random.SeedSequence(seed).spawn``, in the fixed order of :data:`CHILDREN` (a new
purpose is appended, never inserted); spawned children are independent of the root and of
each other.
"""

from __future__ import annotations

import numpy as np

CHILDREN = ("unknown_queries", "pairs", "triplets")
STREAMS = ("episodes", *CHILDREN)


def seed_stream(seed: int, purpose: str) -> np.random.Generator:
    """The generator of ``purpose`` (one of :data:`STREAMS`) under ``seed``: the same for the same seed, independent of the others."""
    if purpose not in STREAMS:
        raise ValueError(f"unknown random stream {purpose!r}; expected one of {STREAMS}")
    if purpose == "episodes":
        return np.random.default_rng(seed)
    return np.random.default_rng(np.random.SeedSequence(seed).spawn(len(CHILDREN))[CHILDREN.index(purpose)])
