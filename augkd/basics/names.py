"""The names a config chooses among: methods, teacher terms and architectures.

Kept here, free of imports, so that the schema validates a name on load without importing
torch or the method; the registries that give each name its meaning
(``augkd.method.plans.METHOD_PLANS`` and ``TEACHER_TERMS``,
``augkd.models.classifiers.CLASSIFIERS``) hold exactly these keys (tests/basics/test_names.py).
"""

from __future__ import annotations

from typing import Literal, get_args

Method = Literal["augkd", "ce", "kd", "dfkd", "no_anchor", "no_mixup"]
METHODS: tuple[str, ...] = get_args(Method)
"""AuG-KD, its two ablations and the three baselines."""

TeacherTerm = Literal["both", "mixed", "none"]
TEACHER_TERMS: tuple[str, ...] = get_args(TeacherTerm)
"""Which half of Module 3's batch the teacher's soft targets apply to."""

ARCHITECTURES = (
    "small_cnn",
    "tiny_cnn",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
    "regnet_y_400mf",
    "vgg11_bn",
    "wide_resnet50_2",
)
"""The teachers and students augkd can build (small_cnn and tiny_cnn its own; the rest
torchvision's)."""
