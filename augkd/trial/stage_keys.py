"""What each stage artifact depends on: its key in the stage cache.

A key names exactly the settings an artifact was produced from (Config.digest of the sections
it reads), the teacher it learned from (its weights' hash), the seed, and what the settings
resolve to (a grey or RGB generator, the precision when not fp32). Everything that changes an
artifact changes its key; nothing else does (where the cache lives is never part of one).
"""

from __future__ import annotations

from dataclasses import dataclass

from augkd.basics.config import Config
from augkd.method.datafree import datafree_channels
from augkd.models.teacher import Teacher


@dataclass(frozen=True)
class StageKeys:
    """The keys of one trial's stage artifacts (computed once, before its stages run)."""

    module1: str
    encoder: str
    """Module 1's key plus the student data and the adaptation (E fitted on x)."""
    module2: str
    diagnostics: str
    generator_channels: int
    """1 (grey) or 3 (RGB): what module1.generator_colour resolves to for this teacher."""


def stage_keys(config: Config, teacher: Teacher, with_anchors: bool = True) -> StageKeys:
    """The keys of ``config``'s stages with ``teacher``; ``with_anchors``: whether its method
    trains an AnchorNet (the diagnostics of a method without one are keyed apart)."""
    channels = datafree_channels(config.module1, teacher.normalize)
    precision = "" if config.precision == "fp32" else f"-{config.precision}"
    grey = "-grey" if channels == 1 else ""
    module1 = (
        f"{teacher.identity}-{config.digest('student', 'module1')}-s{config.seed}{grey}{precision}"
    )
    encoder = f"{module1}-{config.digest('data', 'encoder_adapt')}"
    if config.encoder_adapt.epochs > 0:  # anchors are learned on the adapted E
        module2 = f"{encoder}-{config.digest('module2')}"
    else:
        module2 = f"{module1}-{config.digest('data', 'module2')}"
    stages = module2 if with_anchors else f"{encoder}-noanchor"
    return StageKeys(
        module1, encoder, module2, f"{stages}-{config.digest('diagnostics')}", channels
    )
