"""A stage's memory is estimated before it allocates, and a stage that cannot fit on its
device is refused in one sentence naming the key that sets its size (augkd.method.memory).

The refusals use batch sizes whose estimate exceeds any machine's memory; nothing that size
is ever allocated (each test checks that the process's peak memory did not grow by it)."""

from __future__ import annotations

import resource

import pytest
import torch

from augkd.basics.config import MEMORY_SHARE, with_overrides
from augkd.basics.errors import ExitCode, ResourceError
from augkd.cli import main
from augkd.hardware.free_memory import check_fits, cuda_available_bytes, host_available_bytes
from augkd.method.memory import STAGES, estimate_stages, estimate_teacher_training
from augkd.storage.cache import StageCache
from augkd.trial.pipeline import prepare_trial
from augkd.trial.teacher import default_cache_root
from tests.basics.test_exit_codes import one_line

ABSURD = 10**8
"""A batch size whose estimate is far above any machine's memory."""


def peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@pytest.fixture
def tiny_args(cache_home: str) -> list[str]:
    from tests.conftest import TINY

    return [arg for item in [*TINY, f"teacher.cache_dir={cache_home}"] for arg in ("--set", item)]


def test_train_with_an_absurd_module1_batch_is_refused_before_anything_trains(
    tmp_path, tiny_args, capsys
):
    out = tmp_path / "results.json"
    before = peak_rss()
    code = main(["train", *tiny_args, "--set", f"module1.batch_size={ABSURD}", "--out", str(out)])
    assert code == ExitCode.BAD_INPUT
    captured = capsys.readouterr()
    line = one_line(captured)
    assert line.startswith("error: Module 1 would need about ")
    assert f"at module1.batch_size={ABSURD}, but this machine has " in line
    assert line.endswith(" or less.") and "lower module1.batch_size to " in line
    assert "epoch" not in captured.out and not out.exists()  # no teacher, no stage trained
    assert peak_rss() - before < 500e6  # nothing of that size was allocated


def test_a_stage_capped_by_the_data_is_refused_once_the_data_is_known(tiny_config):
    """Module 3's batch holds at most the train split (mixed: twice that); a batch the data
    caps is no threat, and a student too large for the machine at that batch is refused."""
    config = with_overrides(tiny_config, {"module3.batch_size": ABSURD})
    capped = estimate_stages(config, 10, "small_cnn", ["module3"], train_images=150)[0]
    assert capped.rows == 300 and capped.bytes < 1e9  # [x ; x_mix] of 150 images
    huge = with_overrides(config, {"data.image_size": 512, "student.arch": "vgg11_bn"})
    (estimate,) = estimate_stages(huge, 10, "small_cnn", ["module3"], train_images=10**6)
    with pytest.raises(ResourceError, match=r"^Module 3 would need about .* at module3\.batch"):
        check_fits([estimate], torch.device("cpu"))


def test_the_pipeline_refuses_module1_before_it_allocates(tiny_config):
    """The check after the teacher and the data loaded (a teacher checkpoint's architecture
    is known only then): Module 1 is refused, and nothing of it is in the cache."""
    # a one-epoch teacher: what matters is that it loads, not what it learned
    config = with_overrides(tiny_config, {"module1.batch_size": ABSURD, "teacher.epochs": 1})
    cache = StageCache(default_cache_root(config))
    before = peak_rss()
    with pytest.raises(ResourceError, match=rf"module1\.batch_size={ABSURD}, but this machine"):
        prepare_trial(config, cache, log=lambda _line: None, device=torch.device("cpu"))
    assert not [event for event in cache.events if event.stage.startswith("module")]
    assert peak_rss() - before < 500e6


def test_estimates_grow_with_the_batch_and_the_image(tiny_config):
    small = estimate_stages(tiny_config, 10, "small_cnn", STAGES, train_images=10**6)
    bigger = with_overrides(
        tiny_config,
        {f"{stage}.batch_size": 4 * getattr(tiny_config, stage).batch_size for stage in STAGES},
    )
    large = estimate_stages(bigger, 10, "small_cnn", STAGES, train_images=10**6)
    for one, four in zip(small, large, strict=True):
        assert one.stage == four.stage and one.row_bytes == four.row_bytes > 0
        assert four.bytes - four.fixed_bytes == 4 * (one.bytes - one.fixed_bytes)
    wider = with_overrides(tiny_config, {"data.image_size": 32})
    assert (
        estimate_teacher_training(wider, 10).row_bytes
        > 3 * estimate_teacher_training(tiny_config, 10).row_bytes
    )


def test_the_largest_batch_named_fits_and_one_more_would_not(tiny_config):
    (estimate,) = estimate_stages(tiny_config, 10, "small_cnn", ["module1"])
    room = int(host_available_bytes() * MEMORY_SHARE)
    largest = estimate.largest_value(room)
    assert estimate.fixed_bytes + largest * estimate.row_bytes <= room
    assert estimate.fixed_bytes + (largest + 1) * estimate.row_bytes > room


def test_the_cuda_branch_counts_the_free_memory_and_the_trials_share():
    """This machine has no GPU: torch.cuda.mem_get_info is the one thing stood in for."""
    device = torch.device("cuda", 0)

    def info(_device):  # 10 GB free of an 80 GB GPU
        return 10 * 10**9, 80 * 10**9

    assert cuda_available_bytes(device, 0.0, info) == 10 * 10**9
    assert cuda_available_bytes(device, 0.5, info) == 10 * 10**9  # the free part is smaller
    assert cuda_available_bytes(device, 0.1, info) == 8 * 10**9  # 10 % of 80 GB


def test_a_batch_the_machine_can_hold_passes(tiny_config):
    estimates = estimate_stages(tiny_config, 10, "small_cnn", STAGES, train_images=150)
    check_fits([*estimates, estimate_teacher_training(tiny_config, 10, 1797)], torch.device("cpu"))


def test_the_estimate_draws_no_random_numbers(tiny_config):
    """The networks are built on the meta device: a run with the check is the run without."""
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    estimate_stages(tiny_config, 10, "small_cnn", STAGES, train_images=150)
    estimate_teacher_training(tiny_config, 10, 100)
    assert torch.equal(torch.rand(3), expected)
