"""Networks: the classifier zoo and AuG-KD's generator, encoder and anchor net."""

from augkd.models.anchor_net import AnchorNet
from augkd.models.classifiers import (
    CLASSIFIERS,
    build_classifier,
    build_student,
    count_parameters,
)
from augkd.models.encoder import Encoder
from augkd.models.generator import Generator, generator_channels

__all__ = [
    "CLASSIFIERS",
    "AnchorNet",
    "Encoder",
    "Generator",
    "build_classifier",
    "build_student",
    "count_parameters",
    "generator_channels",
]
