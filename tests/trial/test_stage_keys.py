"""The stage-cache keys of the defaults, pinned: a refactor that changes one would silently
orphan every cached teacher, Module 1 and AnchorNet of every user (and re-train them)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from augkd.basics.config import load_config
from augkd.hardware.runtime import Normalize
from augkd.trial.stage_keys import stage_keys
from augkd.trial.teacher import built_in_teacher_key

TEACHER = SimpleNamespace(identity="0123456789abcdef", normalize=Normalize([0.5], [0.5]))
MODULE1 = "0123456789abcdef-0cbce00be9ca7d5f-s0"


@pytest.mark.parametrize(
    ("overrides", "teacher", "encoder", "module2"),
    [
        ([], "9142cd836b0e7867-9922fb4cce90", "05d4df734158ce10", "2462c43cf40c33cb"),
        (["data.source=tablet"], "9142cd836b0e7867-7c8ee5a454c8", "fc68b03bdf4338e1",
         "2462c43cf40c33cb"),
        (["data.source=fonts"], "9142cd836b0e7867-3e603d8c3d29", "7ca4901291a9c73a",
         "2462c43cf40c33cb"),
    ],
)  # fmt: skip
def test_the_defaults_stage_keys_never_change(overrides, teacher, encoder, module2):
    config = load_config(None, overrides)
    keys = stage_keys(config, TEACHER)
    assert built_in_teacher_key(config) == teacher
    assert keys.module1 == MODULE1
    assert keys.encoder == f"{MODULE1}-{encoder}"
    assert keys.module2 == f"{MODULE1}-{encoder}-{module2}"
    assert keys.diagnostics == f"{keys.module2}-6ffb1d33771c3891"
    assert stage_keys(config, TEACHER, False).diagnostics == (
        f"{MODULE1}-{encoder}-noanchor-6ffb1d33771c3891"
    )


def test_bf16_without_adaptation_keys_module2_on_module1():
    config = load_config(None, ["precision=bf16", "encoder_adapt.epochs=0"])
    keys = stage_keys(config, TEACHER)
    assert keys.module1 == f"{MODULE1}-bf16"
    assert keys.module2 == f"{MODULE1}-bf16-fec9d3c376f91b80"
