"""A teacher's checkpoint file (augkd.storage.teacher_checkpoint): written whole and read back
safely; a plain state dict is read with the YAML beside it. Loading teachers end to end:
tests/trial/test_teacher.py."""

from __future__ import annotations

import pytest
import torch
import yaml

from augkd.basics.errors import ModelError
from augkd.storage.teacher_checkpoint import (
    CHECKPOINT_FORMAT,
    read_checkpoint,
    save_teacher,
    sidecar_path,
)


def test_the_yaml_sits_beside_the_weights():
    assert sidecar_path("teachers/resnet34.pt") == "teachers/resnet34.yaml"
    assert sidecar_path("s3://bucket/t/w.pth") == "s3://bucket/t/w.yaml"
    assert sidecar_path("weights") == "weights.yaml"


def test_a_saved_checkpoint_reads_back(tmp_path):
    checkpoint = {"format": CHECKPOINT_FORMAT, "state_dict": {"w": torch.ones(2)}}
    save_teacher(checkpoint, tmp_path / "teacher.pt")
    read = read_checkpoint(str(tmp_path / "teacher.pt"), None)
    assert read["format"] == CHECKPOINT_FORMAT and torch.equal(
        read["state_dict"]["w"], torch.ones(2)
    )


def test_a_state_dict_without_its_yaml_is_refused_in_one_sentence(tmp_path):
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "own.pt")
    with pytest.raises(ModelError, match=r"own\.yaml' beside them is missing"):
        read_checkpoint(str(tmp_path / "own.pt"), None)
    meta = {"arch": "resnet18", "class_names": ["a", "b"], "image_size": 32,
            "mean": [0.5] * 3, "std": [0.5] * 3}  # fmt: skip
    (tmp_path / "own.yaml").write_text(yaml.safe_dump(meta))
    read = read_checkpoint(str(tmp_path / "own.pt"), None)
    assert read["format"] == CHECKPOINT_FORMAT and read["metadata_file"].endswith("own.yaml")
