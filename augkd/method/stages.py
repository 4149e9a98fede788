"""The stages before Module 3: the teacher and the splits, Module 1, the encoder's adaptation
and Module 2.

Each stage takes the section of the config it needs and the artifacts of the stages before it,
and returns its own. A trained stage is produced one way (augkd.method.stage_runs): in the
stage cache under its key, from its own random stream (augkd.basics.seeds), resumable from its
progress, timed; so that a trial that finds it in the cache reads it instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from augkd.basics.config import (
    Config,
    EncoderAdaptConfig,
    Module1Config,
    Module2Config,
    StudentConfig,
)
from augkd.basics.seeds import Stream
from augkd.data import StudentSplits
from augkd.hardware.precision import MixedPrecision
from augkd.method.anchor import AnchorInputs, train_anchor
from augkd.method.datafree import DatafreeInputs, datafree_channels, train_datafree
from augkd.method.encoder_adapt import AdaptInputs, adapt_encoder
from augkd.method.mixup import MixupNets
from augkd.method.plans import MethodPlan
from augkd.method.resume import Progress
from augkd.method.stage_runs import StageRuns, TrainedStage
from augkd.models import AnchorNet, Encoder, Generator, build_student
from augkd.models.teacher import Teacher


@dataclass
class Inputs:
    """What every stage learns from: the teacher and the student-domain splits."""

    teacher: Teacher
    splits: StudentSplits
    device: torch.device
    image_size: int

    @property
    def num_classes(self) -> int:
        return len(self.splits.class_names)


MODULE1 = TrainedStage("module1", "module1", Stream.MODULE1)
ENCODER = TrainedStage("encoder_adapt", "encoder", Stream.ENCODER)
MODULE2 = TrainedStage("module2", "module2", Stream.MODULE2)


@dataclass
class Stages:
    """What the stages before Module 3 leave it."""

    student_init: dict[str, torch.Tensor] | None
    """S0, Module 1's student: where Module 3 starts (None: a fresh student)."""
    mixup_nets: MixupNets | None
    """The frozen nets that build x_mix, for methods whose batches mix."""
    timings: dict[str, float]
    frozen_nets: MixupNets | None = None
    """G, E (and A) whenever Module 1 ran, also for methods that do not mix (diagnostics)."""
    reported: dict[str, float] = field(default_factory=dict)
    """Constant metrics every epoch's report carries (the diagnostics)."""


@dataclass
class PreparedTrial:
    """Everything Module 3 starts from: teacher, splits and the frozen stage outputs."""

    config: Config
    plan: MethodPlan
    teacher: Teacher
    splits: StudentSplits
    stages: Stages
    device: torch.device
    precision: MixedPrecision


@dataclass
class Module1Nets:
    """What Module 1 leaves: the frozen G and E, and the data-free-distilled student S0."""

    generator: Generator
    encoder: Encoder
    student: dict[str, torch.Tensor]


def datafree_stage(
    settings: Module1Config, student: StudentConfig, inputs: Inputs, runs: StageRuns, key: str
) -> Module1Nets:
    """Module 1 (data-free learning): G and E frozen, and S0's weights."""
    teacher, channels = inputs.teacher, datafree_channels(settings, inputs.teacher.normalize)

    def train(_rng: torch.Generator, progress: Progress) -> dict[str, Any]:
        net = build_student(student, inputs.num_classes)
        learns = DatafreeInputs(teacher.model, teacher.normalize, net, inputs.num_classes,
                                inputs.image_size, inputs.device)  # fmt: skip
        return train_datafree(learns, settings, runs.log, progress, runs.on_step)

    artifact = runs.artifact(MODULE1, key, train)
    latent = settings.latent_size
    generator = Generator(latent, inputs.image_size, settings.generator_width, channels)
    encoder = Encoder(latent, inputs.image_size, inputs.num_classes)
    for net, name in ((generator, "generator"), (encoder, "encoder")):
        net.to(inputs.device).load_state_dict(artifact[name])
        net.eval().requires_grad_(False)
    return Module1Nets(generator, encoder, artifact["student"])


def encoder_stage(
    settings: EncoderAdaptConfig, kl_weight: float, nets: Module1Nets, inputs: Inputs,
    runs: StageRuns, key: str,
) -> Module1Nets:  # fmt: skip
    """Module 1's nets with E fitted to invert G on the student train images (G frozen)."""

    def train(rng: torch.Generator, _progress: Progress) -> dict[str, Any]:
        fits = AdaptInputs(nets.encoder, nets.generator, inputs.splits.train_x,
                           inputs.splits.train_y)  # fmt: skip
        return {"encoder": adapt_encoder(fits, settings, kl_weight, rng, runs.log, runs.on_step)}

    adapted = runs.artifact(ENCODER, key, train)
    nets.encoder.load_state_dict(adapted["encoder"])
    nets.encoder.eval().requires_grad_(False)
    return nets


def anchor_stage(
    settings: Module2Config, latent_size: int, nets: Module1Nets, inputs: Inputs,
    runs: StageRuns, key: str,
) -> AnchorNet:  # fmt: skip
    """Module 2 (anchor learning): the frozen AnchorNet."""
    teacher = inputs.teacher

    def train(rng: torch.Generator, progress: Progress) -> dict[str, Any]:
        learns = AnchorInputs(nets.encoder, nets.generator, teacher.model, teacher.normalize,
                              inputs.splits, latent_size)  # fmt: skip
        return train_anchor(learns, settings, rng, runs.log, progress, runs.on_step)

    artifact = runs.artifact(MODULE2, key, train)
    anchor_net = AnchorNet(latent_size, inputs.num_classes).to(inputs.device)
    anchor_net.load_state_dict(artifact["anchor_net"])
    return anchor_net.eval().requires_grad_(False)


def mixup_nets(nets: Module1Nets, anchor_net: AnchorNet | None) -> MixupNets:
    return MixupNets(nets.encoder, nets.generator, anchor_net)
