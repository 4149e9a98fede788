"""The stage cache on a local disk and on a real S3-compatible server: corrupt artifacts,
failing producers, lease renewal and take-over of a dead producer's lease."""

from __future__ import annotations

import logging
import threading
import time
import uuid

import pytest
import torch

from augkd.basics.errors import CacheError, DataError
from augkd.storage.cache import StageCache
from augkd.storage.files import read_bytes, resolve_filesystem, write_bytes


class _NotATensor:
    """An object torch.save keeps but weights_only loading refuses: a broken artifact."""


def _weights(value: float) -> dict[str, torch.Tensor]:
    return {"weights": torch.full((3,), value)}


def test_corrupt_artifact_is_named_moved_aside_and_produced_again(tmp_path, caplog):
    cache = StageCache(str(tmp_path))
    cache.get_or_create("module1", "k", lambda: _weights(1.0))
    path = tmp_path / "module1" / "k.pt"
    path.write_bytes(path.read_bytes()[:40])  # truncated

    produced = []
    with caplog.at_level(logging.WARNING, logger="augkd.storage.cache"):
        again = StageCache(str(tmp_path)).get_or_create(
            "module1", "k", lambda: produced.append(1) or _weights(2.0)
        )
    assert produced == [1] and torch.equal(again["weights"], torch.full((3,), 2.0))
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert str(path) in warning and "corrupt" in warning and "moved it aside" in warning
    [aside] = list((tmp_path / "module1").glob("k.pt.corrupt-*"))
    assert len(aside.read_bytes()) == 40  # kept, not deleted
    loaded = StageCache(str(tmp_path)).get_or_create("module1", "k", pytest.fail)
    assert torch.equal(loaded["weights"], again["weights"])


def test_artifact_still_corrupt_after_producing_it_again_is_an_error(tmp_path):
    (tmp_path / "module2").mkdir()
    (tmp_path / "module2" / "k.pt").write_bytes(b"not a torch file")
    with pytest.raises(CacheError, match=r"module2/k\.pt' is corrupt again after it was produced"):
        StageCache(str(tmp_path)).get_or_create("module2", "k", lambda: {"x": _NotATensor()})


def _wait_in_threads(cache_for, produce, count: int) -> list[BaseException | dict]:
    """Start a producer, then ``count`` waiters for the same artifact, each in a thread."""
    outcomes: list = [None] * (count + 1)

    def call(index: int) -> None:
        try:
            outcomes[index] = cache_for().get_or_create("module1", "shared", produce)
        except BaseException as error:
            outcomes[index] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(count + 1)]
    threads[0].start()
    time.sleep(0.3)  # the producer is elected first
    for thread in threads[1:]:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def _failing_producer(calls: list):
    def produce():
        calls.append(1)
        time.sleep(1.0)
        raise DataError("Image 'x.png' could not be decoded; remove or replace the file.")

    return produce


def test_waiters_stop_with_the_failed_producers_error_on_local_storage(tmp_path):
    calls: list = []
    outcomes = _wait_in_threads(
        lambda: StageCache(str(tmp_path), poll_s=0.05), _failing_producer(calls), 2
    )
    assert calls == [1]  # the waiters did not try again
    assert isinstance(outcomes[0], DataError)
    for waiter in outcomes[1:]:
        assert isinstance(waiter, CacheError), waiter
        assert "producer of stage artifact 'module1/shared' failed" in str(waiter)
        assert "x.png' could not be decoded" in str(waiter)
    # a later caller (a new search) tries again rather than failing forever
    again = StageCache(str(tmp_path)).get_or_create("module1", "shared", lambda: _weights(3.0))
    assert torch.equal(again["weights"], torch.full((3,), 3.0))


def test_waiters_stop_with_the_failed_producers_error_on_s3(s3_server):
    root = f"{s3_server.bucket('cache-failure')}/{uuid.uuid4().hex}"
    calls: list = []
    outcomes = _wait_in_threads(
        lambda: StageCache(root, poll_s=0.05, settle_s=0.2), _failing_producer(calls), 2
    )
    assert calls == [1]
    assert isinstance(outcomes[0], DataError)
    assert all(isinstance(w, CacheError) and "could not be decoded" in str(w) for w in outcomes[1:])


def test_s3_lease_is_renewed_so_waiters_outwait_a_long_producer(s3_server):
    """The producer works four lease periods: its heartbeat keeps waiters from taking over."""
    root = f"{s3_server.bucket('cache-lease')}/{uuid.uuid4().hex}"
    calls: list = []

    def slow():
        calls.append(1)
        time.sleep(2.0)
        return _weights(4.0)

    outcomes = _wait_in_threads(
        lambda: StageCache(root, poll_s=0.05, lease_s=0.5, settle_s=0.1), slow, 2
    )
    assert calls == [1]
    assert all(torch.equal(o["weights"], torch.full((3,), 4.0)) for o in outcomes)
    filesystem, path = resolve_filesystem(root)
    assert not filesystem.get_file_info(f"{path}/.locks/module1_shared.lease").is_file


def test_dead_producers_s3_lease_is_taken_over_and_its_progress_resumed(s3_server):
    root = f"{s3_server.bucket('cache-takeover')}/{uuid.uuid4().hex}"
    write_bytes(f"{root}/.locks/module1_shared.lease", b"dead-producer:7")  # never renewed
    cache = StageCache(root, poll_s=0.05, lease_s=0.5, settle_s=0.1)
    cache.progress("module1", "shared", every_s=0).save(3, lambda: {"epoch": 3})

    def resume():
        state = cache.progress("module1", "shared", every_s=0).load()
        return {"from_epoch": torch.tensor(state["epoch"])}

    artifact = cache.get_or_create("module1", "shared", resume)
    assert int(artifact["from_epoch"]) == 3
    with pytest.raises(FileNotFoundError):  # progress is dropped once the artifact exists
        read_bytes(f"{root}/module1/.progress/shared.pt")
