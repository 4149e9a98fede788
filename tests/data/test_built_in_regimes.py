"""What every built-in regime with scarce labels promises (fonts, forms, tablet): the domain
it makes is deterministic, balanced and never repeats an image, nothing is downloaded, 15
labels per class leave large disjoint val and test splits drawn by the seed, domains are
named in errors by their keys, and a real trial runs on it."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import pytest
import torch

from augkd.basics.config import load_config
from augkd.basics.errors import ConfigError
from augkd.data import fonts, forms, load_student_splits, tablet
from augkd.data.fonts import load_fonts_domain
from augkd.data.forms import load_forms_domain
from augkd.data.tablet import load_tablet_domain
from augkd.trial.pipeline import run_trial
from tests.data.images import image_hashes


@dataclass(frozen=True)
class Regime:
    data: list[str]
    load_domain: object
    student_domain: str
    smallest_eval: int
    """The fewest val (and test) images its splits leave."""
    few_images: str
    """The fixture that makes its student domain small."""
    made: str
    """The domain augkd makes (renders, scans or writes) rather than reads."""
    few_per_class: int
    """Images per class of ``made`` under ``few_images``."""
    forget: object
    """Drops ``made`` from the in-process cache, so the next load makes it anew."""
    read: tuple[str, int]
    """A domain it reads (scikit-learn's digits, shipped with the package) and its size."""


REGIMES = {
    "fonts": Regime(
        ["data.source=fonts", "data.teacher_domains=[printed]",
         "data.student_domain=handwritten", "data.train_per_class=15"],
        load_fonts_domain, "handwritten", 600, "few_renders", "printed", 20,
        lambda: fonts._printed.cache_clear(), ("handwritten", 1797),
    ),
    "forms": Regime(
        ["data.source=forms", "data.teacher_domains=[handwritten]",
         "data.student_domain=typed", "data.train_per_class=15"],
        load_forms_domain, "typed", 1425, "few_scans", "typed", 20,
        lambda: forms._typed_counts.cache_clear(), ("handwritten", 1797),
    ),
    "tablet": Regime(
        ["data.source=tablet", "data.teacher_domains=[printed,handwritten]",
         "data.student_domain=pen", "data.train_per_class=15"],
        load_tablet_domain, "pen", 1000, "few_pens", "pen", 12,
        lambda: tablet._pen.cache_clear(), ("handwritten", 1797),
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", REGIMES)
def test_the_made_domain_is_deterministic_balanced_and_never_repeats_an_image(name, request):
    regime = REGIMES[name]
    request.getfixturevalue(regime.few_images)
    first = regime.load_domain(regime.made, 16)
    regime.forget()
    again = regime.load_domain(regime.made, 16)
    assert torch.equal(first.images, again.images) and torch.equal(first.labels, again.labels)
    count = 10 * regime.few_per_class
    assert first.images.shape == (count, 3, 16, 16) and first.images.dtype == torch.uint8
    assert torch.bincount(first.labels).tolist() == [regime.few_per_class] * 10
    assert len(image_hashes(first.images)) == count
    assert first.class_names == [str(digit) for digit in range(10)]


@pytest.mark.parametrize("name", REGIMES)
def test_its_domains_load_without_the_network(name, request, monkeypatch):
    regime = REGIMES[name]
    request.getfixturevalue(regime.few_images)

    def no_network(*_args, **_kwargs):
        raise OSError(f"the {name} benchmark tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    assert len(regime.load_domain(regime.made, 16)) == 10 * regime.few_per_class
    read, size = regime.read
    assert len(regime.load_domain(read, 16)) == size


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
