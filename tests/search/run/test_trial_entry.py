"""The one trial entry of the search's trials and of the evaluation's runs: bad input ends
as an error result (a retry would fail again), never as an exception."""

from __future__ import annotations

from augkd.basics.config import Config
from augkd.search.run.trial_entry import run_search_trial


def test_a_config_that_cannot_run_ends_as_an_error_naming_the_key(tmp_path):
    end = run_search_trial(Config().to_dict(), {"module3.a": 1.5}, str(tmp_path))
    assert end.config is None and end.result is None and not end.ran
    assert "module3.a" in end.error


def test_a_device_that_cannot_be_used_ends_as_an_error_before_the_trial(tmp_path):
    """Outside Ray, config.device decides: cuda on a machine without one is refused."""
    import torch

    if torch.cuda.is_available():
        return  # the device can be used here
    end = run_search_trial(Config().to_dict(), {"device": "cuda"}, str(tmp_path))
    assert end.error is not None and not end.ran
