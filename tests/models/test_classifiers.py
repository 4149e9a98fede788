"""The architecture names are listed once (augkd.basics.architectures); each one has a builder."""

from __future__ import annotations

from augkd.basics.architectures import ARCHITECTURES
from augkd.models import CLASSIFIERS


def test_every_architecture_name_has_a_builder_in_the_one_lists_order():
    assert tuple(CLASSIFIERS) == ARCHITECTURES
