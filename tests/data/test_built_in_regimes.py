"""What every built-in regime with scarce labels promises (fonts, forms, tablet): 15 labels
per class, large disjoint val and test splits drawn by the seed, domains named in errors by
their keys, and a real trial that runs on it."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from augkd.basics.config import load_config
from augkd.basics.errors import ConfigError
from augkd.data import load_student_splits
from augkd.data.fonts import load_fonts_domain
from augkd.data.forms import load_forms_domain
from augkd.data.tablet import load_tablet_domain
from augkd.trial.pipeline import run_trial


@dataclass(frozen=True)
class Regime:
    data: list[str]
    load_domain: object
    student_domain: str
    smallest_eval: int
    """The fewest val (and test) images its splits leave."""
    few_images: str
    """The fixture that makes its student domain small."""


REGIMES = {
    "fonts": Regime(
        ["data.source=fonts", "data.teacher_domains=[printed]",
         "data.student_domain=handwritten", "data.train_per_class=15"],
        load_fonts_domain, "handwritten", 600, "few_renders",
    ),
    "forms": Regime(
        ["data.source=forms", "data.teacher_domains=[handwritten]",
         "data.student_domain=typed", "data.train_per_class=15"],
        load_forms_domain, "typed", 1425, "few_scans",
    ),
    "tablet": Regime(
        ["data.source=tablet", "data.teacher_domains=[printed,handwritten]",
         "data.student_domain=pen", "data.train_per_class=15"],
        load_tablet_domain, "pen", 1000, "few_pens",
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", REGIMES)
def test_scarce_labels_leave_large_disjoint_val_and_test_splits_drawn_by_the_seed(name):
    config = load_config(None, REGIMES[name].data).data
    splits = load_student_splits(config, seed=0, device=torch.device("cpu"))
    assert torch.bincount(splits.train_y).tolist() == [15] * 10
    assert min(len(splits.val_y), len(splits.test_y)) >= REGIMES[name].smallest_eval
    parts = [set(splits.indices[part].tolist()) for part in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    again = load_student_splits(config, seed=0, device=torch.device("cpu"))
    assert all(torch.equal(again.indices[p], splits.indices[p]) for p in splits.indices)
    other = load_student_splits(config, seed=1, device=torch.device("cpu"))
    assert not torch.equal(other.indices["train"], splits.indices["train"])


@pytest.mark.parametrize("name", REGIMES)
def test_an_unknown_domain_names_the_keys(name):
    regime = REGIMES[name]
    with pytest.raises(ConfigError, match=f"data.student_domain={regime.student_domain}"):
        regime.load_domain("scribbles", 16)


@pytest.mark.parametrize("name", ["fonts", "forms"])
def test_a_tiny_trial_runs_on_the_regime_and_caches_its_teacher(name, request, tmp_path):
    request.getfixturevalue(REGIMES[name].few_images)
    config = load_config(
        None,
        [*REGIMES[name].data, "method=ce", "teacher.epochs=1", "module3.epochs=1",
         f"teacher.cache_dir={tmp_path}"],
    )  # fmt: skip
    result = run_trial(config, log=lambda _line: None)
    assert result.metrics["epoch"] == 1.0 and 0.0 <= result.metrics["test_acc1"] <= 100.0
    assert (tmp_path / "teacher").is_dir()
