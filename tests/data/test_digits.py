import torch

from augkd.basics.config import load_config
from augkd.data import iterate_batches, load_student_splits, split_indices
from augkd.data.digits import SHIFTS, load_digits_domain


def test_teacher_and_student_domains_are_disjoint_halves():
    clean = load_digits_domain("clean", 8)
    rotated = load_digits_domain("rotate", 8)
    assert len(clean) + len(rotated) == 1797
    assert clean.images.dtype == torch.uint8 and clean.images.shape[1:] == (3, 8, 8)


def test_shifts_are_deterministic_and_change_the_images():
    first = load_digits_domain("noise", 16)
    second = load_digits_domain("noise", 16)
    assert torch.equal(first.images, second.images)
    for name in SHIFTS:
        shifted = load_digits_domain(name, 16)
        assert not torch.equal(
            shifted.images,
            load_digits_domain("rotate" if name != "rotate" else "invert", 16).images,
        )


def test_splits_never_overlap_and_cover_everything():
    parts = split_indices(100, (0.8, 0.1, 0.1), seed=3)
    sets = {name: set(rows.tolist()) for name, rows in parts.items()}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    assert len(sets["train"] | sets["val"] | sets["test"]) == 100
    assert split_indices(100, (0.8, 0.1, 0.1), seed=3)["val"].tolist() == parts["val"].tolist()
    assert split_indices(100, (0.8, 0.1, 0.1), seed=4)["val"].tolist() != parts["val"].tolist()


def test_student_splits_stay_uint8_on_device_and_batches_come_out_as_unit_floats():
    config = load_config()
    splits = load_student_splits(config.data, seed=0, device=torch.device("cpu"))
    assert splits.train_x.dtype == torch.uint8 and splits.val_x.dtype == torch.uint8
    batch, _ = next(iterate_batches(splits.train_x, splits.train_y, 8, torch.Generator()))
    assert batch.dtype == torch.float32 and batch.min() >= 0.0 and batch.max() <= 1.0
    assert torch.allclose(batch * 255, (batch * 255).round(), atol=1e-3)  # the stored pixels
    assert len(splits.train_y) + len(splits.val_y) + len(splits.test_y) == 1797 - 1797 // 2
    rows = [set(splits.indices[p].tolist()) for p in ("train", "val", "test")]
    assert not (rows[0] & rows[1]) and not (rows[0] & rows[2]) and not (rows[1] & rows[2])


def test_the_digits_read_without_scikit_learn_are_its_load_digits_exactly():
    """load_raw reads scikit-learn's file itself; the numbers are the ones its loader gives
    (and scikit-learn is not imported on the way)."""
    import subprocess
    import sys

    from sklearn.datasets import load_digits

    from augkd.data.digits import load_raw

    images, labels = load_raw()
    bunch = load_digits()
    assert torch.equal(images, torch.tensor(bunch.images, dtype=torch.float32) / 16.0)
    assert torch.equal(labels, torch.tensor(bunch.target, dtype=torch.int64))
    check = "import sys; from augkd.data.digits import load_raw; load_raw(); print('sklearn' in sys.modules)"
    found = subprocess.run(
        [sys.executable, "-c", check], capture_output=True, text=True, check=True
    )
    assert found.stdout.strip() == "False"


def test_digits_without_scikit_learn_name_the_package_to_install(monkeypatch):
    import importlib.util

    import pytest

    from augkd.basics.errors import ConfigError
    from augkd.data.digits import load_raw

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="pip install scikit-learn"):
        load_raw()
