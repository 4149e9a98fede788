"""Seeds: the one home of how a trial's seeds and each stage's seed derive from ``seed``.

A trial averaged over ``k`` seeds runs seeds ``seed, seed + 1, ..., seed + k - 1`` (the
objective's ``seeds``); each stage of one seed draws its randomness from its own stream,
``seed * 1000 + offset``, so that changing one stage's settings never shifts another's draws.
Changing an offset changes every cached artifact's contents without changing its key: don't.
"""

from __future__ import annotations

from enum import IntEnum


class Stream(IntEnum):
    """The random stream of each stage of one seed (the offset added to ``seed * 1000``)."""

    MODULE1 = 1
    MODULE2 = 2
    MODULE3 = 3
    MODULE3_AUGMENT = 4
    ENCODER = 5


def stage_seed(seed: int, stream: Stream) -> int:
    """The seed of one stage's random stream for a trial's ``seed``."""
    return seed * 1000 + int(stream)


def trial_seeds(seed: int, count: int) -> list[int]:
    """The seeds a trial with ``seed`` runs when its objective averages ``count`` seeds."""
    return [seed + offset for offset in range(count)]
