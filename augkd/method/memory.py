"""How much memory a stage will take, estimated before it allocates; the refusal of one that
cannot fit on the device it runs on (host RAM on a CPU, free memory on a GPU) is
augkd.hardware.free_memory's ``check_fits``.

Without it a batch size that is far too large is found out by the kernel: the process
grows until it is killed (exit 137, no sentence), and on a shared node Ray's OOM killer
takes other searches' workers with it. The estimate is cheap: the stage's networks are
built on PyTorch's ``meta`` device (shapes only, no storage, no random numbers drawn),
and a probe forward at two small batch sizes counts the bytes autograd saves for the
backward pass, per row of the batch. So

    estimate = parameters (x4 when trained: weights, gradients, Adam's two moments)
             + data the stage holds on the device
             + rows x saved bytes per row x BACKWARD_PEAK

where rows is the batch a step really runs (a data batch is capped by the train split;
Module 3 mixes, so its student sees twice the rows). BACKWARD_PEAK covers the gradients of
the activations that exist alongside the saved tensors during the backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import nn

from augkd.basics.config import Config
from augkd.hardware.free_memory import StageMemory, check_fits

BACKWARD_PEAK = 1.5
"""Peak bytes of a training step per byte autograd saved in its forward pass: the saved
activations, then their gradients while the backward pass runs. Measured peak RSS of Module 1
per row over saved bytes per row: 1.36 (small_cnn teacher, 16 px), 1.08 (resnet18, 32 px);
1.5 errs a little on the safe side (docs/errors.md, "Inputs that would exhaust or hang the
machine")."""
OPTIMIZER_COPIES = 4
"""Copies of a trained network's parameters: weights, gradients, Adam's two moments."""
TEACHER_BATCH = 64
"""The built-in teacher's training batch (augkd.trial.teacher.train_teacher)."""
PROBE_ROWS = (2, 4)
"""Batch sizes of the probe forward; their difference gives the bytes per row (2 at least:
BatchNorm in training mode needs two rows)."""


# ---- the probe -------------------------------------------------------------------------


def _saved_bytes(forward: Callable[[int], object], rows: int) -> int:
    """Bytes autograd saves for the backward pass of ``forward(rows)`` on meta tensors."""
    seen: dict[int, torch.Tensor] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        seen[id(tensor)] = tensor  # kept alive, so that an id is never reused
        return tensor

    with torch.device("meta"), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        forward(rows)
    return sum(t.numel() * t.element_size() for t in seen.values())


def saved_bytes_per_row(forward: Callable[[int], object]) -> int:
    """Saved bytes each row of the batch adds (what does not grow with it is left out)."""
    small, large = PROBE_ROWS
    return max(0, (_saved_bytes(forward, large) - _saved_bytes(forward, small)) // (large - small))


def parameter_bytes(*models: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for m in models for p in m.parameters())


@dataclass
class _MetaNets:
    """The trial's networks, built on the meta device (no storage, no random numbers)."""

    teacher: nn.Module
    student: nn.Module
    generator: nn.Module
    encoder: nn.Module
    anchor: nn.Module
    config: Config
    num_classes: int

    @classmethod
    def build(
        cls,
        config: Config,
        num_classes: int,
        teacher_arch: str,
        teacher_small_input: bool = True,
        generator_channels: int = 3,
    ) -> _MetaNets:
        from augkd.models import AnchorNet, Encoder, Generator, build_classifier, build_student

        size, latent = config.data.image_size, config.module1.latent_size
        with torch.device("meta"):
            teacher = build_classifier(teacher_arch, num_classes, False, teacher_small_input)
            student = build_student(config.student, num_classes, pretrained=False)
            generator = Generator(latent, size, config.module1.generator_width, generator_channels)
            encoder = Encoder(latent, size, num_classes)
            anchor = AnchorNet(latent, num_classes)
        return cls(teacher, student, generator, encoder, anchor, config, num_classes)

    def images(self, rows: int) -> torch.Tensor:
        size = self.config.data.image_size
        return torch.zeros(rows, 3, size, size).to(memory_format=torch.channels_last)

    def labels(self, rows: int) -> torch.Tensor:
        return torch.zeros(rows, dtype=torch.long)

    def latents(self, rows: int) -> torch.Tensor:
        return torch.zeros(rows, self.config.module1.latent_size)


def _rows(batch: int, train_images: int | None) -> int:
    """A data batch never holds more rows than the train split."""
    return batch if train_images is None else max(1, min(batch, train_images))


def estimate_teacher_training(
    config: Config, num_classes: int, domain_images: int = 0
) -> StageMemory:
    """The built-in teacher's training: teacher.arch at data.image_size, batch 64, with the
    teacher domain held on the device as float images."""
    from augkd.models import build_classifier

    with torch.device("meta"):
        teacher = build_classifier(config.teacher.arch, num_classes, False, True)
    size = config.data.image_size
    per_row = saved_bytes_per_row(lambda n: teacher(torch.zeros(n, 3, size, size)))
    data = domain_images * 3 * size * size * 4
    return StageMemory(
        "teacher training", "data.image_size", size, TEACHER_BATCH,
        OPTIMIZER_COPIES * parameter_bytes(teacher) + data, int(per_row * BACKWARD_PEAK),
    )  # fmt: skip


def estimate_stages(
    config: Config,
    num_classes: int,
    teacher_arch: str,
    stages: Iterable[str],
    train_images: int | None = None,
    teacher_small_input: bool = True,
    generator_channels: int = 3,
    mixing: bool = True,
) -> list[StageMemory]:
    """Estimates of the named stages ("module1", "encoder_adapt", "module2", "module3") of
    one trial. ``train_images`` caps the data batches (None before the data is loaded:
    the configured batch); ``mixing``: Module 3's batches are [x ; x_mix]."""
    stages = list(stages)
    if not stages:  # e.g. every stage already in the cache
        return []
    nets = _MetaNets.build(
        config, num_classes, teacher_arch, teacher_small_input, generator_channels
    )
    return [_ESTIMATORS[stage](nets, train_images, mixing) for stage in stages]


def _module1(nets: _MetaNets, _train: int | None, _mixing: bool) -> StageMemory:
    # The generator step (the larger of Module 1's two): G(z) through the teacher and S.
    def forward(rows: int) -> None:
        images = nets.generator(nets.latents(rows).requires_grad_())
        nets.teacher(images)
        nets.student(images)

    trained = parameter_bytes(nets.generator, nets.encoder, nets.student)
    batch = nets.config.module1.batch_size
    return StageMemory(
        "Module 1", "module1.batch_size", batch, batch,
        OPTIMIZER_COPIES * trained + parameter_bytes(nets.teacher),
        int(saved_bytes_per_row(forward) * BACKWARD_PEAK),
    )  # fmt: skip


def _encoder_adapt(nets: _MetaNets, train: int | None, _mixing: bool) -> StageMemory:
    def forward(rows: int) -> None:
        mu, _ = nets.encoder(nets.images(rows), nets.labels(rows))
        nets.generator(mu)

    batch = nets.config.encoder_adapt.batch_size
    return StageMemory(
        "encoder adaptation", "encoder_adapt.batch_size", batch, _rows(batch, train),
        OPTIMIZER_COPIES * parameter_bytes(nets.encoder) + parameter_bytes(nets.generator),
        int(saved_bytes_per_row(forward) * BACKWARD_PEAK),
    )  # fmt: skip


def _module2(nets: _MetaNets, train: int | None, _mixing: bool) -> StageMemory:
    def forward(rows: int) -> None:
        anchor, _ = nets.anchor(nets.latents(rows).requires_grad_(), nets.labels(rows))
        nets.teacher(nets.generator(anchor))

    batch = nets.config.module2.batch_size
    frozen = parameter_bytes(nets.teacher, nets.generator, nets.encoder)
    return StageMemory(
        "Module 2", "module2.batch_size", batch, _rows(batch, train),
        OPTIMIZER_COPIES * parameter_bytes(nets.anchor) + frozen,
        int(saved_bytes_per_row(forward) * BACKWARD_PEAK),
    )  # fmt: skip


def _module3(nets: _MetaNets, train: int | None, mixing: bool) -> StageMemory:
    def forward(rows: int) -> None:
        nets.student(nets.images(rows))

    batch = nets.config.module3.batch_size
    factor = 2 if mixing else 1  # the student sees [x ; x_mix]
    frozen = parameter_bytes(nets.teacher, nets.generator, nets.encoder, nets.anchor)
    return StageMemory(
        "Module 3", "module3.batch_size", batch, factor * _rows(batch, train),
        OPTIMIZER_COPIES * parameter_bytes(nets.student) + frozen,
        int(saved_bytes_per_row(forward) * BACKWARD_PEAK), float(factor),
    )  # fmt: skip


_ESTIMATORS: dict[str, Callable[[_MetaNets, int | None, bool], StageMemory]] = {
    "module1": _module1,
    "encoder_adapt": _encoder_adapt,
    "module2": _module2,
    "module3": _module3,
}
STAGES = tuple(_ESTIMATORS)
"""The trial's stages, in the order they run."""


STAGE_NAMES = {
    "module1": "Module 1",
    "encoder_adapt": "encoder adaptation",
    "module2": "Module 2",
    "module3": "Module 3",
}
KILLED_FOR_MEMORY = "for want of memory"
"""What every sentence about a task killed for memory says (searched for by the search's
ending, which then adds the command that resumes it)."""


def stage_sizes(config: Config, stages: Iterable[str]) -> str:
    """The stages with the key (and value) that sets each one's size, for the sentence when
    a task running them is killed for memory."""
    parts = [
        f"{STAGE_NAMES[stage]}: {stage}.batch_size={getattr(config, stage).batch_size}"
        for stage in stages
    ]
    return "; ".join(parts) or f"the data and the teacher: data.image_size={config.data.image_size}"


def trial_stages(config: Config, module1: bool, module2: bool, mixing: bool) -> list[str]:
    """The stages a trial of this plan runs, in order (Module 3 always)."""
    stages = []
    if module1:
        stages.append("module1")
        if config.encoder_adapt.epochs > 0 and (module2 or mixing):
            stages.append("encoder_adapt")
        if module2:
            stages.append("module2")
    return [*stages, "module3"]


def check_config_before_work(
    config: Config, device: torch.device, num_classes: int = 10, module1_copies: int = 1
) -> None:
    """What can be refused before the data and the teacher load: teacher training (the
    built-in teacher) and Module 1, whose batch is the generator's and no data caps it
    (``module1_copies``: how many run at once, e.g. a search's shared-stage tasks).
    With a teacher checkpoint its architecture is unknown until it loads; the stages are then
    checked after it loads (augkd.trial.pipeline), still before they allocate."""
    from dataclasses import replace

    from augkd.method.plans import METHOD_PLANS

    if config.teacher.checkpoint is not None:
        return
    estimates = [estimate_teacher_training(config, num_classes)]
    if METHOD_PLANS[config.method].module1:
        (module1,) = estimate_stages(config, num_classes, config.teacher.arch, ["module1"])
        estimates.append(replace(module1, copies=module1_copies))
    check_fits(estimates, device)
