"""The one typed schema of a trial. Every default lives here and nowhere else.

Defaults are sized for the built-in digits benchmark on a laptop CPU; the release
settings of method.md (Office-31) live in ``search_spaces/office31.yaml``.
"""

from __future__ import annotations

import hashlib
import json
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from augkd.basics.architectures import ARCHITECTURES
from augkd.basics.dotted import set_dotted
from augkd.basics.errors import ConfigError
from augkd.basics.methods import Method, TeacherTermName

LOCATION_KEYS = ("teacher.cache_dir",)
"""Keys that say where things are kept, not what they are (left out of digests)."""
CHECK_KEYS = ("data.min_eval_images",)
"""Keys that only refuse inputs, never change what a stage computes (left out of digests,
so adding one keeps every stage key of an existing config)."""
DEVICE = re.compile(r"auto|cpu|cuda(:\d+)?")
MEMORY_SHARE = 0.9
"""Share of the memory available on its device that a stage's estimate may take
(augkd.method.memory): the rest is headroom for what the estimate leaves out (allocator slack,
the data loaded beside it), and keeps a node below Ray's OOM-killer threshold (95 %)."""


def _wants_number(annotation: Any) -> bool:
    """int or float, alone, optional, or as the items of a tuple or list."""
    if annotation in (int, float):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType, tuple, list):
        return any(_wants_number(arg) for arg in typing.get_args(annotation))
    return False


class StrictNumbers(BaseModel):
    """A schema whose numbers refuse booleans: pydantic reads `true` as 1 otherwise,
    so `module3.epochs=true` would quietly train one epoch."""

    @field_validator("*", mode="before")
    @classmethod
    def _booleans_are_not_numbers(cls, value: Any, info: ValidationInfo) -> Any:
        items = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(item, bool) for item in items) and _wants_number(
            cls.model_fields[info.field_name].annotation
        ):
            raise ValueError("must be a number, not true/false")
        return value


class _Section(StrictNumbers):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _known_architecture(arch: str) -> str:
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture; choose one of: {', '.join(sorted(ARCHITECTURES))}")
    return arch


class DataConfig(_Section):
    """Where teacher-domain and student-domain images come from."""

    source: Literal["digits", "fonts", "forms", "tablet", "folders", "listfile", "torchvision"] = (
        "digits"
    )
    """digits: built-in benchmark; fonts: built-in printed -> handwritten digits benchmark;
    forms: built-in handwritten -> typed digits benchmark (the teacher mostly right);
    tablet: built-in scanned forms (printed + handwritten) -> pen-written digits (the
    regime that judges the search; no default was chosen on it);
    folders: root/domain/class/image (Office-31, Office-Home); listfile: VisDA-style
    'path label' lists; torchvision: mnist, usps, svhn under root."""
    root: str | None = None
    """Dataset root for real sources (unused by the built-in digits benchmark)."""
    teacher_domains: list[str] = Field(default_factory=lambda: ["clean"])
    """Domain folders, list files or torchvision dataset names the teacher was trained on."""
    student_domain: str = "rotate"
    image_size: int = Field(16, ge=8, le=512)
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    train_per_class: int | None = Field(None, ge=1)
    """Scarce labels: this many seeded train images per class, the rest split into val
    and test in the ratio of data.split's val and test shares; None splits by data.split."""
    augment: bool = True
    download: bool = False
    min_eval_images: int = Field(10, ge=1)
    """The fewest images the student domain's val and test splits may each hold; fewer is
    refused (one val and one test image trained, and reported test Acc@3 = 100). Lower it
    knowingly for tiny test data. A check only: never part of a stage key."""

    @field_validator("split")
    @classmethod
    def _split_sums_to_one(cls, split: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(part <= 0 for part in split) or abs(sum(split) - 1.0) > 1e-6:
            raise ValueError("must be three positive shares (train, val, test) that sum to 1")
        return split


class TeacherConfig(_Section):
    """The teacher: a checkpoint, or one trained and cached for the built-in benchmark."""

    checkpoint: str | None = None
    """An `augkd teacher` checkpoint, or a torchvision state dict with a YAML beside it (same
    name, .yaml: arch, class_names, image_size, mean, std); a path or a URI such as s3://."""
    arch: str = "small_cnn"
    pretrained: bool = False
    """`augkd teacher` starts from the ImageNet weights already in torchvision's local cache
    (TORCH_HOME/hub/checkpoints); nothing is downloaded."""
    epochs: int = Field(30, ge=1)
    lr: float = Field(2e-3, gt=0)
    cache_dir: str | None = None
    """Where stage artifacts (the built-in teacher, Modules 1 and 2) are cached: a path or
    URI (default $XDG_CACHE_HOME/augkd/stages, else ~/.cache/augkd/stages). A search records its
    <storage>/stage_cache here, so that an exported config re-uses the search's stages.
    A location only: never part of a cache key."""

    _arch_is_known = field_validator("arch")(_known_architecture)


class StudentConfig(_Section):
    arch: str = "tiny_cnn"
    pretrained: bool = False
    small_input: bool = True
    """Adapt torchvision stems (first conv stride, max-pool) to small images."""

    _arch_is_known = field_validator("arch")(_known_architecture)


class Module1Config(_Section):
    """Data-free learning: generator G, encoder E and the data-free student S0."""

    epochs: int = Field(20, ge=1)
    iters_per_epoch: int = Field(50, ge=1)
    """20 x 50 = 1,000 generator steps, paid once per seed by the stage cache. At 100 the
    teacher recognised 11 % of G(E(x)) on the digits benchmark (chance 10 %); at 1,000,
    16.7 % (docs/method-notes.md, "Modules 1-2 at laptop scale")."""
    batch_size: int = Field(64, ge=2)
    latent_size: int = Field(32, ge=2)
    generator_lr: float = Field(1e-3, gt=0)
    encoder_lr: float = Field(1e-4, gt=0)
    student_lr: float = Field(1e-3, gt=0)
    student_steps: int = Field(5, ge=1)
    """k: student/encoder steps per generator step."""
    balance_weight: float = Field(20.0, ge=0)
    """alpha: weight of the class-balance (negative entropy) term."""
    bn_weight: float = Field(1.0, ge=0)
    """beta: weight of the BatchNorm statistics term."""
    encoder_kl_weight: float = Field(2.5e-4, ge=0)
    generator_width: int = Field(64, ge=4)
    """Channels of G's last hidden layer (the first has 2x); 32 costs about 40 % less."""
    generator_colour: Literal["auto", "grey", "rgb"] = "rgb"
    """grey: G draws one channel, shown as three equal ones; auto: grey when the teacher's
    normalisation is the same on every channel (it was trained on grey images), else rgb."""


class EncoderAdaptConfig(_Section):
    """Fit E to invert the frozen G on student train images (not in the paper; see
    augkd/method/encoder_adapt.py). 0 epochs: E stays as Module 1 left it."""

    epochs: int = Field(20, ge=0)
    lr: float = Field(1e-3, gt=0)
    batch_size: int = Field(64, ge=2)


class Module2Config(_Section):
    """Anchor learning: AnchorNet trained with the uncertainty (energy) score."""

    steps: int = Field(120, ge=1)
    """Optimizer steps (method/budget.py): 60 epochs of the fonts benchmark's 150 train
    images. A few dozen steps left the AnchorNet where it started."""
    epochs: int | None = Field(None, ge=1)
    """Whole epochs instead of ``steps`` (None: ``steps`` decide)."""
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    anchor_weight: float = Field(0.1, ge=0)
    """w_u: weight of the uncertainty term. The energy is unbounded below: trained to
    convergence at w_u = 1, anchors collapsed onto one class the teacher is sure of; at
    0.1 they keep every class (docs/method-notes.md, "Modules 1-2 at laptop scale")."""
    temperature: float = Field(1.0, gt=0)
    """tau: temperature of the energy score."""
    ce_weight: float = Field(0.1, ge=0)
    mask_weight: float = Field(1.0, ge=0)
    invariant: float = Field(0.25, ge=0, le=1)
    """rho: share of latent dimensions the anchor must leave unchanged."""
    val_checks: int = Field(10, ge=1)
    """How many times, evenly over the steps (at epoch ends, the last one always), L_A on val
    picks the AnchorNet kept (method.md: the lowest val L_A)."""
    val_images: int = Field(512, ge=1)
    """Val images L_A is judged on: a fixed seeded subset when val holds more."""


STEPS_BETWEEN_VAL_PASSES = 10


class Module3Config(_Section):
    """Mixup learning (also the training stage of every baseline)."""

    steps: int = Field(1000, ge=1)
    """Optimizer steps (method/budget.py), whatever the data size; epochs are derived. ce's
    val curve levels off by about 310 steps on fonts, 350 on forms and 680 on digits (720
    train images) (docs/benchmarks.md, "Budgets in optimizer steps"); a budget of 20 epochs
    was 40 steps on 150 images, far from converged."""
    epochs: int | None = Field(None, ge=1)
    """Whole epochs instead of ``steps`` (None: ``steps`` decide), e.g. the paper's 200."""
    val_every: int | None = Field(None, ge=1)
    """Optimizer steps between val passes, each one report to the search (ASHA's rungs, the
    best-val checkpoint): at the first epoch end that many steps after the last pass, and
    after the last epoch. None: every epoch under an ``epochs`` budget (the paper's
    protocol), every 10 steps under a ``steps`` budget (on 150 images an epoch is 2 steps,
    and a val pass over a real val split costs more than they do)."""

    def val_interval(self) -> int:
        """``val_every`` as the steps between val passes (0: every epoch)."""
        if self.val_every is not None:
            return self.val_every
        return 0 if self.epochs is not None else STEPS_BETWEEN_VAL_PASSES

    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(1e-4, ge=0)
    schedule: Literal["linear", "step"] = "linear"
    a: float = Field(0.6, gt=0, le=1)
    """Share of the epochs spent before pure student-domain data."""
    b: float = Field(0.2, ge=0, le=1)
    """Starting share of the student domain."""
    ce_share: float = Field(0.5, ge=0, le=1)
    """u: weight of CE against the KD term."""
    kd_temperature: float = Field(1.0, gt=0)
    """tau_kd. The paper's 10 lost 11-13 points to ce on both built-in benchmarks, where
    the teacher is right on 37-51 % of the student domain (docs/benchmarks.md)."""
    teacher_term: TeacherTermName = "mixed"
    """Where the teacher's soft targets apply: both halves of [x ; x_mix] (the paper's text),
    the mixed half only (the real half gets CE alone, u = 1), or none (u = 1 everywhere: the
    release's effective training). Baselines keep their meaning (kd distils x, ce never)."""
    teacher_fade: bool = True
    """Fade the teacher on the mixed half as s grows: its u becomes 1 - (1 - u)(1 - s).
    mixed + fade at tau_kd 1 is the best-evidenced Module-3 loss on the built-in
    benchmarks; the paper's is teacher_term both, u 0.5, tau_kd 10, no fade."""


class DiagnosticsConfig(_Section):
    """Diagnostics of Modules 1-2 (augkd/method/diagnostics.py): teacher metrics on x, G(z),
    reconstructions and anchors, and pictures; computed once per stage-2 artifact."""

    enabled: bool = True
    """Compute them in every trial that runs Module 1 (off: skip, saving a second or so)."""
    generator_samples: int = Field(512, ge=10)
    """How many G(z) samples the teacher judges."""
    samples_per_class: int = Field(6, ge=1)
    """Rows of the G(z) grid picture (samples shown per predicted class)."""
    row_images: int = Field(10, ge=1)
    """Fixed val images shown through each module."""
    seed: int = 0
    """Seed of the z ~ N(0, I) samples, so pictures compare across runs."""


class Config(_Section):
    """One trial: data, teacher, student, the three modules, method, seed and device."""

    method: Method = "augkd"
    seed: int = 0
    device: str = "auto"
    """auto: CUDA when present; inside a Ray trial, the GPU Ray assigned (CPU when none).
    A search records the device type its trial ran on."""
    threads: int | None = Field(None, ge=1)
    """torch's intra-op threads. None: what the process has (Ray sets OMP_NUM_THREADS to a
    trial's CPUs); a search records the trial's count so that a re-run matches it exactly."""
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Autocast for Module 3 and every teacher forward (fp16 with loss scaling); Module 1's
    BatchNorm-statistics term stays fp32. Part of the stage keys when not fp32."""
    stage_checkpoint_minutes: float = Field(10.0, ge=0)
    """How often a running Module 1 or 2 saves its progress into the stage cache, so that a
    lost node resumes it instead of starting over (0: every epoch)."""
    data: DataConfig = Field(default_factory=DataConfig)
    teacher: TeacherConfig = Field(default_factory=TeacherConfig)
    student: StudentConfig = Field(default_factory=StudentConfig)
    module1: Module1Config = Field(default_factory=Module1Config)
    encoder_adapt: EncoderAdaptConfig = Field(default_factory=EncoderAdaptConfig)
    module2: Module2Config = Field(default_factory=Module2Config)
    module3: Module3Config = Field(default_factory=Module3Config)
    diagnostics: DiagnosticsConfig = Field(default_factory=DiagnosticsConfig)

    @field_validator("device")
    @classmethod
    def _device_is_known(cls, device: str) -> str:
        if not DEVICE.fullmatch(device):
            raise ValueError("must be 'auto', 'cpu', 'cuda' or 'cuda:N' with N a GPU number")
        return device

    # ---- serialisation -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(self.to_yaml())

    def digest(self, *sections: str) -> str:
        """Content hash of the named sections (all when none): the stage-cache key.

        Location keys (LOCATION_KEYS) are left out: where a cache lives must not change
        what is in it; so are keys that only refuse inputs (CHECK_KEYS)."""
        data = self.to_dict()
        for key in LOCATION_KEYS + CHECK_KEYS:
            section, _, name = key.rpartition(".")
            data.get(section, {}).pop(name, None)
        chosen = {name: data[name] for name in sections} if sections else data
        blob = json.dumps(chosen, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def _format_error(error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        key = ".".join(str(part) for part in item["loc"]) or "(top level)"
        if item["type"] == "extra_forbidden":
            problems.append(
                f"unknown config key '{key}'; check its spelling against augkd.basics.config"
            )
        else:
            message = item["msg"].removeprefix("Value error, ")
            problems.append(f"config key '{key}': {message} (got {item.get('input')!r})")
    return "; ".join(problems)


def config_from_dict(data: dict[str, Any]) -> Config:
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_format_error(error)) from None


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    """Load YAML (or the defaults when ``path`` is None) and apply ``key=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if path.is_dir():
            raise ConfigError(f"Config file '{path}' is a folder; pass --config a YAML file.")
        if not path.is_file():
            raise ConfigError(f"Config file '{path}' does not exist; check the --config path.")
        try:
            loaded = yaml.safe_load(path.read_text())
        except yaml.YAMLError as error:
            raise ConfigError(f"Config file '{path}' is not valid YAML: {error}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"Config file '{path}' must hold a mapping of config keys.")
        data = loaded or {}
    for override in overrides or []:
        key, value = parse_override(override)
        set_dotted(data, key, value)
    return config_from_dict(data)


def parse_override(text: str) -> tuple[str, Any]:
    """``module2.temperature=0.5`` -> ("module2.temperature", 0.5); values parse as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"Override '{text}' must look like key=value, e.g. module3.epochs=10.")
    return key.strip(), yaml.safe_load(raw) if raw.strip() else None


def with_overrides(config: Config, values: dict[str, Any]) -> Config:
    """A copy of ``config`` with dotted-key values applied (validated)."""
    data = config.to_dict()
    for key, value in values.items():
        set_dotted(data, key, value)
    return config_from_dict(data)


def config_keys(model: type[BaseModel] = Config, prefix: str = "") -> list[str]:
    """Every dotted leaf key of the schema, for validating search spaces."""
    keys: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            keys.extend(config_keys(annotation, f"{prefix}{name}."))
        else:
            keys.append(f"{prefix}{name}")
    return keys
