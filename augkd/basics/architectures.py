"""The names of the classifier architectures a teacher or a student may have.

The one list of them, with no imports: the config validates ``teacher.arch`` and
``student.arch`` against it before torch loads, and augkd.models.classifiers builds each one.
"""

from __future__ import annotations

SMALL_CNNS = ("small_cnn", "tiny_cnn")
"""augkd's own small CNNs (BatchNorm after every conv: Module 1 matches their statistics)."""
TORCHVISION = (
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
"""torchvision's classifiers, with their head replaced and their stem kept for small inputs."""
ARCHITECTURES = (*SMALL_CNNS, *TORCHVISION)
