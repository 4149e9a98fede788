"""Diagnostics of Modules 1-2: does the teacher recognise what the frozen G, E and
AnchorNet make of the student domain?

For each kind of image Module 3 is built from, the teacher's Acc@1 (where a label
exists), its mean confidence (max softmax), its mean energy U_1 (low: familiar) and the
class balance of its predictions (largest class share; entropy of the predicted-class
histogram over log C, 1 = balanced):

- ``x``       student-domain val images;
- ``gz``      generator samples G(z), z ~ N(0, I) from a fixed seed (no label exists);
- ``recon``   reconstructions G(E(x, y)), E's mean;
- ``anchor``  anchors G(A(E(x, y), y)) (left out without an AnchorNet);
- ``mix``     x_mix at s = b, exactly as Module 3 builds it (when a share is given);

plus the anchor mask's mean and spread, and two pictures (PNG): G samples per teacher-
predicted class, and rows of x, G(E(x)), G(z_a) and x_mix for fixed val images.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from augkd.basics.config import DiagnosticsConfig
from augkd.data import as_unit_float
from augkd.hardware.runtime import Normalize
from augkd.method.losses import energy_score
from augkd.method.mixup import MixupNets, mix_batch

CHUNK = 512
GRID_FILE = "generator_samples.png"
ROWS_FILE = "module_rows.png"


@dataclass
class Diagnostics:
    metrics: dict[str, float]
    """Unprefixed names, e.g. ``recon_acc1``; trials log them as ``diag_<name>``."""
    pictures: dict[str, bytes] = field(default_factory=dict)
    """File name -> PNG bytes."""

    def merged(self, other: Diagnostics) -> Diagnostics:
        return Diagnostics(self.metrics | other.metrics, self.pictures | other.pictures)

    def to_artifact(self) -> dict[str, dict]:
        """Plain dicts, loadable with ``weights_only=True`` (a stage-cache artifact)."""
        return {"metrics": dict(self.metrics), "pictures": dict(self.pictures)}

    @classmethod
    def from_artifact(cls, artifact: dict[str, dict]) -> Diagnostics:
        return cls(dict(artifact["metrics"]), dict(artifact["pictures"]))


@dataclass
class Judge:
    """The teacher and what it judges: student-domain val images and the frozen nets."""

    teacher: torch.nn.Module
    normalize: Normalize
    val_x: torch.Tensor
    val_y: torch.Tensor
    nets: MixupNets
    class_names: list[str]

    @torch.no_grad()
    def classify(self, images: torch.Tensor) -> torch.Tensor:
        self.teacher.eval()
        return _chunked(lambda x: self.teacher(self.normalize(as_unit_float(x))), images)

    @torch.no_grad()
    def codes(self) -> torch.Tensor:
        """z = E(x, y), the encoder's mean, for every val image."""
        self.nets.encoder.eval()
        return _chunked(
            lambda x, y: self.nets.encoder(as_unit_float(x), y)[0], self.val_x, self.val_y
        )

    @torch.no_grad()
    def generate(self, codes: torch.Tensor) -> torch.Tensor:
        self.nets.generator.eval()
        return _chunked(self.nets.generator, codes)


def teacher_view(
    logits: torch.Tensor, labels: torch.Tensor | None, prefix: str
) -> dict[str, float]:
    """Acc@1 (with labels), confidence, energy U_1 and class balance of one set of logits."""
    probs = F.softmax(logits.float(), dim=1)
    num_classes = logits.shape[1]
    predicted = probs.argmax(dim=1)
    histogram = torch.bincount(predicted, minlength=num_classes).float() / len(predicted)
    entropy = -(histogram * histogram.clamp_min(1e-12).log()).sum() / math.log(num_classes)
    view = {
        "confidence": probs.max(dim=1).values.mean().item(),
        "energy": energy_score(logits.float(), 1.0).mean().item(),
        "largest_class_share": histogram.max().item(),
        "class_entropy": max(entropy.item(), 0.0),
    }
    if labels is not None:
        view["acc1"] = 100.0 * (predicted == labels).float().mean().item()
    return {f"{prefix}_{name}": value for name, value in view.items()}


def _chunked(fn, *tensors: torch.Tensor) -> torch.Tensor:
    return torch.cat(
        [fn(*(t[i : i + CHUNK] for t in tensors)) for i in range(0, len(tensors[0]), CHUNK)]
    )


@torch.no_grad()
def stage_diagnostics(judge: Judge, settings: DiagnosticsConfig, latent_size: int) -> Diagnostics:
    """What depends on Modules 1-2 only: x, G(z), reconstructions, anchors, the mask, and
    the G(z) grid. A trial caches it next to the stage-2 artifact (augkd.trial.diagnostics)."""
    nets = judge.nets
    metrics = teacher_view(judge.classify(judge.val_x), judge.val_y, "x")
    noise = torch.randn(
        settings.generator_samples,
        latent_size,
        generator=torch.Generator().manual_seed(settings.seed),
    ).to(judge.val_x.device)
    samples = judge.generate(noise)
    sample_logits = judge.classify(samples)
    metrics |= teacher_view(sample_logits, None, "gz")
    codes = judge.codes()
    metrics |= teacher_view(judge.classify(judge.generate(codes)), judge.val_y, "recon")
    if nets.anchor_net is not None:
        nets.anchor_net.eval()
        anchors = _chunked(lambda z, y: nets.anchor_net(z, y)[0], codes, judge.val_y)
        metrics |= teacher_view(judge.classify(judge.generate(anchors)), judge.val_y, "anchor")
        mask = _chunked(nets.anchor_net.mask, judge.val_y)
        metrics |= {
            "mask_mean": mask.mean().item(),
            "mask_std_samples": mask.std(dim=0).mean().item() if len(mask) > 1 else 0.0,
            "mask_std_dims": mask.std(dim=1).mean().item(),
        }
    grid = _sample_grid(samples, sample_logits, judge.class_names, settings.samples_per_class)
    return Diagnostics(metrics, {GRID_FILE: _png(grid)})


@torch.no_grad()
def mixup_diagnostics(
    judge: Judge, settings: DiagnosticsConfig, share: float | None
) -> Diagnostics:
    """What also depends on Module 3's first share s = b: the teacher on x_mix (when
    ``share`` is given) and the rows picture. Cheap: one pass over val."""
    metrics: dict[str, float] = {}
    if share is not None:
        mixed = _chunked(
            lambda x, y: mix_batch(judge.nets, as_unit_float(x), y, share), judge.val_x, judge.val_y
        )
        metrics = teacher_view(judge.classify(mixed), judge.val_y, "mix")
        metrics["mix_share"] = float(share)
    rows = _module_rows(judge, settings.row_images, share)
    return Diagnostics(metrics, {ROWS_FILE: _png(rows)})


def diagnose(
    judge: Judge, settings: DiagnosticsConfig, latent_size: int, share: float | None = None
) -> Diagnostics:
    """Every metric and picture of this module for frozen G, E (and A)."""
    return stage_diagnostics(judge, settings, latent_size).merged(
        mixup_diagnostics(judge, settings, share)
    )


# -- pictures ------------------------------------------------------------------------
# One imshow of a mosaic per picture: a grid of subplots costs seconds per figure.
PAD = 2


def _mosaic(cells: list[list[torch.Tensor | None]]) -> torch.Tensor:
    """Rows of [3, H, W] images (None: an empty cell) as one [H', W', 3] image."""
    size = next(c for row in cells for c in row if c is not None).shape[-1]
    step = size + PAD
    canvas = torch.ones(3, len(cells) * step + PAD, len(cells[0]) * step + PAD)
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            if image is not None:
                top, left = PAD + r * step, PAD + c * step
                canvas[:, top : top + size, left : left + size] = image.clamp(0, 1).cpu()
    return canvas.permute(1, 2, 0)


def _draw(cells, width: float, height: float) -> tuple[Figure, object, int]:
    figure = Figure(figsize=(width, height))
    ax = figure.add_axes((0.08, 0.02, 0.9, 0.86))
    ax.imshow(_mosaic(cells).numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_frame_on(False)
    step = next(c for row in cells for c in row if c is not None).shape[-1] + PAD
    return figure, ax, step


def _sample_grid(
    samples: torch.Tensor, logits: torch.Tensor, names: list[str], per_class: int
) -> Figure:
    """Columns: the teacher's predicted class (with its share of all samples); the first
    ``per_class`` samples of each, in z order. An empty column means G never makes it."""
    predicted = logits.argmax(dim=1)
    columns = [(predicted == c).nonzero().flatten() for c in range(len(names))]
    cells = [
        [samples[rows[r]] if r < len(rows) else None for rows in columns] for r in range(per_class)
    ]
    figure, ax, step = _draw(cells, 0.75 * len(names) + 0.6, 0.75 * per_class + 0.8)
    for c, rows in enumerate(columns):
        share = 100.0 * len(rows) / len(predicted)
        ax.text(PAD + (c + 0.5) * step, -1, f"{names[c]}\n{share:.0f}%", ha="center",
                va="bottom", fontsize=8)  # fmt: skip
    figure.suptitle("G(z) by the teacher's predicted class (share of samples)", fontsize=9)
    return figure


def _fixed_rows(labels: torch.Tensor, count: int) -> torch.Tensor:
    """The first val image of each class in turn, then the next, until ``count``."""
    order: list[int] = []
    taken = torch.zeros(len(labels), dtype=torch.bool)
    cpu_labels = labels.cpu()
    while len(order) < min(count, len(labels)):
        for c in cpu_labels.unique().tolist():
            free = ((cpu_labels == c) & ~taken).nonzero().flatten()
            if len(free) and len(order) < count:
                order.append(int(free[0]))
                taken[free[0]] = True
    return torch.tensor(order, dtype=torch.long)


def _module_rows(judge: Judge, count: int, share: float | None) -> Figure:
    """Rows x, G(E(x)), G(z_a), x_mix; each cell captioned with the teacher's prediction
    (green when it equals the label)."""
    nets, names = judge.nets, judge.class_names
    chosen = _fixed_rows(judge.val_y, count).to(judge.val_y.device)
    x = as_unit_float(judge.val_x[chosen])
    y = judge.val_y[chosen]
    z = nets.encoder(x, y)[0]
    rows = [("x", x), ("G(E(x))", nets.generator(z))]
    if nets.anchor_net is not None:
        rows.append(("G(z_a)", nets.generator(nets.anchor_net(z, y)[0])))
    if share is not None:
        rows.append((f"x_mix\ns={share:.2f}", mix_batch(nets, x, y, share)))
    cells = [list(images) for _, images in rows]
    figure, ax, step = _draw(cells, 0.75 * len(chosen) + 1.2, 0.95 * len(rows) + 0.6)
    for r, (label, images) in enumerate(rows):
        predicted = judge.classify(images).argmax(dim=1)
        top = PAD + r * step
        ax.text(-2, top + step / 2, label, ha="right", va="center", fontsize=8)
        for c in range(len(chosen)):
            right = bool(predicted[c] == y[c])
            ax.text(PAD + (c + 0.5) * step, top - 0.3, f"T:{names[predicted[c]]}", ha="center",
                    va="bottom", fontsize=6, color="green" if right else "red")  # fmt: skip
    figure.suptitle("Fixed val images through each module (T: the teacher's class)", fontsize=9)
    return figure


def _png(figure: Figure) -> bytes:
    FigureCanvasAgg(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()
