"""Student splits whose numbers would mislead are refused in one sentence: val or test too
small to measure anything, or a class that never reaches train."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from augkd.basics.config import Config, DataConfig, with_overrides
from augkd.basics.errors import ConfigError, DataError
from augkd.data import load_student_splits

CPU = torch.device("cpu")


def _domain(root: Path, counts: dict[str, int]) -> None:
    """root/pen/<class>/<i>.png with ``counts`` images per class."""
    for label, (name, count) in enumerate(counts.items()):
        for i in range(count):
            path = root / "pen" / name / f"{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * label, 10 * i, 90)).save(path)


def _data(root: Path, **values) -> DataConfig:
    settings = {"source": "folders", "root": str(root), "student_domain": "pen", "image_size": 8}
    return DataConfig(**settings, **values)


def test_one_val_and_one_test_image_are_refused_naming_the_key(tmp_path):
    """They used to train, and report test Acc@3 = 100."""
    _domain(tmp_path, {"a": 4, "b": 4, "c": 4})
    with pytest.raises(ConfigError) as refused:
        load_student_splits(_data(tmp_path), 0, CPU)
    assert str(refused.value) == (
        "Student domain 'pen' leaves 1 val image with data.split=[0.8, 0.1, 0.1], fewer than "
        "data.min_eval_images=10, so its accuracies would mean little; add images, give val "
        "and test larger shares, or lower data.min_eval_images."
    )
    splits = load_student_splits(_data(tmp_path, min_eval_images=1), 0, CPU)
    assert (len(splits.val_y), len(splits.test_y)) == (1, 1)  # asked for knowingly


def test_a_class_with_no_train_image_is_refused(tmp_path):
    _domain(tmp_path, {"a": 12, "b": 12, "rare": 1})
    data = _data(tmp_path, split=(0.2, 0.4, 0.4), min_eval_images=1)
    with pytest.raises(DataError) as refused:
        load_student_splits(data, 0, CPU)
    assert str(refused.value) == (
        "Student domain 'pen' has no train image of class 'rare' with data.split=[0.2, 0.4, "
        "0.4]; add images of it or give train a larger share."
    )


def test_the_minimum_is_no_part_of_any_stage_key():
    """A check only: lowering it must not make the cached stages of a config miss."""
    base = Config()
    lowered = with_overrides(base, {"data.min_eval_images": 1})
    for sections in (("data",), ("data", "encoder_adapt"), ("data", "module2"), ()):
        assert base.digest(*sections) == lowered.digest(*sections)
    assert base.digest("data") == "cf02e81d7892e8c5"  # the defaults' data key before the key
