"""Node copies (augkd.storage.node_cache): each artifact in object storage is downloaded once per node,
verified against the hash recorded when it was written, and shared by the node's readers.

Storage is moto's S3 server; a "node" is a node-copies folder ($AUGKD_NODE_CACHE).
"""

from __future__ import annotations

import io
import logging
import threading
import uuid
from pathlib import Path

import pytest
import torch

from augkd.storage.cache import StageCache
from augkd.storage.files import read_bytes, uri_is_file, write_bytes
from augkd.storage.locations import NODE_CACHE_ENV, node_cache_dir


@pytest.fixture
def s3_root(s3_server) -> str:
    return f"{s3_server.bucket('node-copies')}/{uuid.uuid4().hex}"


def _on_node(monkeypatch: pytest.MonkeyPatch, folder: Path) -> Path:
    monkeypatch.setenv(NODE_CACHE_ENV, str(folder))
    return folder


def _downloads(node: Path) -> list[str]:
    log = node / "downloads.log"
    return [line.split("\t")[0] for line in log.read_text().splitlines()] if log.exists() else []


def _artifact() -> dict:
    return {"weights": torch.arange(1000, dtype=torch.float32)}


def test_a_node_downloads_an_artifact_once_and_then_reads_its_copy(s3_root, tmp_path, monkeypatch):
    _on_node(monkeypatch, tmp_path / "producer")
    StageCache(s3_root).get_or_create("module1", "k", _artifact)
    assert uri_is_file(f"{s3_root}/module1/k.sha256")  # the hash, recorded with the artifact
    # the producer's node kept what it wrote: no download there
    assert _downloads(tmp_path / "producer") == []

    node = _on_node(monkeypatch, tmp_path / "worker")
    first, second = StageCache(s3_root), StageCache(s3_root)
    assert torch.equal(first.get_or_create("module1", "k", _artifact)["weights"],
                       _artifact()["weights"])  # fmt: skip
    second.get_or_create("module1", "k", _artifact)
    assert [(e.hit, e.downloaded, e.node_copy) for e in first.events] == [(True, True, False)]
    assert [(e.hit, e.downloaded, e.node_copy) for e in second.events] == [(True, False, True)]
    assert _downloads(node) == [f"{s3_root}/module1/k.pt"]


def test_concurrent_readers_on_one_node_wait_for_one_download(s3_root, tmp_path, monkeypatch):
    _on_node(monkeypatch, tmp_path / "producer")
    StageCache(s3_root).get_or_create("domain", "d", _artifact)
    node = _on_node(monkeypatch, tmp_path / "worker")
    caches = [StageCache(s3_root) for _ in range(4)]
    threads = [
        threading.Thread(target=c.get_or_create, args=("domain", "d", _artifact)) for c in caches
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(_downloads(node)) == 1
    events = [event for cache in caches for event in cache.events]
    assert sorted(e.downloaded for e in events) == [False, False, False, True]
    assert all(e.hit for e in events)


def test_a_damaged_node_copy_is_discarded_with_one_line_and_downloaded_again(
    s3_root, tmp_path, monkeypatch, caplog
):
    _on_node(monkeypatch, tmp_path / "producer")
    StageCache(s3_root).get_or_create("module1", "k", _artifact)
    node = _on_node(monkeypatch, tmp_path / "worker")
    StageCache(s3_root).get_or_create("module1", "k", _artifact)
    [copy] = [p for p in (node / "stages").rglob("k.pt")]
    copy.write_bytes(copy.read_bytes()[:100])  # a partial copy, as a full disk leaves it

    again = StageCache(s3_root)
    with caplog.at_level(logging.WARNING, logger="augkd.storage.node_cache"):
        loaded = again.get_or_create("module1", "k", _artifact)
    assert torch.equal(loaded["weights"], _artifact()["weights"])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "discarded it and downloading it again" in warnings[0]
    assert [e.downloaded for e in again.events] == [True]
    assert len(_downloads(node)) == 2
    assert copy.read_bytes() == read_bytes(f"{s3_root}/module1/k.pt")


def test_stored_bytes_that_do_not_match_their_hash_are_produced_again(
    s3_root, tmp_path, monkeypatch
):
    _on_node(monkeypatch, tmp_path / "producer")
    StageCache(s3_root).get_or_create("module1", "k", _artifact)
    buffer = io.BytesIO()
    torch.save({"weights": torch.zeros(3)}, buffer)  # loadable, but not what was recorded
    write_bytes(f"{s3_root}/module1/k.pt", buffer.getvalue())

    node = _on_node(monkeypatch, tmp_path / "worker")
    cache = StageCache(s3_root)
    loaded = cache.get_or_create("module1", "k", _artifact)
    assert torch.equal(loaded["weights"], _artifact()["weights"])
    assert [e.hit for e in cache.events] == [False]  # produced again, not served as stored
    assert _downloads(node) == []  # the mismatching bytes never became a node copy


def test_a_teacher_file_is_downloaded_once_per_node_until_it_changes(
    s3_root, tmp_path, monkeypatch
):
    node = _on_node(monkeypatch, tmp_path / "worker")
    uri = f"{s3_root}/teachers/t.pt"
    write_bytes(uri, b"first version")
    cache = StageCache(f"{s3_root}/stage_cache")
    assert cache.read_source(uri) == b"first version"
    assert cache.read_source(uri) == b"first version"
    assert [(e.stage, e.downloaded, e.node_copy) for e in cache.events] == [
        ("source", True, False),
        ("source", False, True),
    ]
    write_bytes(uri, b"second, longer version")  # replaced: another size, a newer mtime
    assert cache.read_source(uri) == b"second, longer version"
    assert len(_downloads(node)) == 2


def test_local_storage_is_read_in_place_without_hashes_or_copies(tmp_path, monkeypatch):
    node = _on_node(monkeypatch, tmp_path / "worker")
    cache = StageCache(str(tmp_path / "storage"))
    cache.get_or_create("module1", "k", _artifact)
    StageCache(str(tmp_path / "storage")).get_or_create("module1", "k", _artifact)
    assert sorted(p.name for p in (tmp_path / "storage" / "module1").iterdir()) == ["k.pt"]
    assert not node.exists()


def test_node_copies_can_be_turned_off(s3_root, tmp_path, monkeypatch):
    monkeypatch.setenv(NODE_CACHE_ENV, "off")
    assert node_cache_dir() is None
    StageCache(s3_root).get_or_create("module1", "k", _artifact)
    reader = StageCache(s3_root)
    reader.get_or_create("module1", "k", _artifact)
    assert [(e.hit, e.downloaded, e.node_copy) for e in reader.events] == [(True, False, False)]


def test_an_unusable_node_folder_costs_the_copies_never_the_artifact(
    s3_root, tmp_path, monkeypatch, caplog
):
    _on_node(monkeypatch, tmp_path / "producer")
    StageCache(s3_root).get_or_create("module1", "k", _artifact)
    blocked = tmp_path / "not_a_folder"
    blocked.write_text("a file where the node folder should be")
    _on_node(monkeypatch, blocked)
    reader = StageCache(s3_root)
    with caplog.at_level(logging.WARNING):
        loaded = reader.get_or_create("module1", "k", _artifact)
        reader.read_source(f"{s3_root}/module1/k.sha256")
    assert torch.equal(loaded["weights"], _artifact()["weights"])
    assert [(e.hit, e.downloaded, e.node_copy) for e in reader.events] == [(True, False, False)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "Node copies are off on this node" in warnings[0]
    assert uri_is_file(f"{s3_root}/module1/k.pt")  # not moved aside as corrupt


def test_the_default_node_folder_is_under_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(NODE_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert node_cache_dir() == tmp_path / "augkd" / "nodes"


# --- a whole search ------------------------------------------------------------------------


def _domain_and_teacher_on_s3(root: str) -> tuple[str, str]:
    """3 classes of 6 PNGs and an augkd teacher for them, on S3 only."""
    import numpy as np
    from PIL import Image

    from augkd.models import build_classifier
    from augkd.storage.teacher_checkpoint import CHECKPOINT_FORMAT

    rng = np.random.default_rng(0)
    classes = ["bike", "cup", "pen"]
    for label, name in enumerate(classes):
        for i in range(6):
            buffer = io.BytesIO()
            pixels = rng.integers(0, 80, (16, 16, 3)) + 80 * label
            Image.fromarray(pixels.astype("uint8")).save(buffer, format="PNG")
            write_bytes(f"{root}/office/dslr/{name}/{i}.png", buffer.getvalue())
    torch.manual_seed(0)
    checkpoint = {
        "format": CHECKPOINT_FORMAT, "arch": "small_cnn", "class_names": classes,
        "image_size": 16, "mean": [0.5] * 3, "std": [0.25] * 3,
        "state_dict": build_classifier("small_cnn", len(classes)).state_dict(),
    }  # fmt: skip
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    write_bytes(f"{root}/teachers/office.pt", buffer.getvalue())
    return f"{root}/office", f"{root}/teachers/office.pt"


def _trial_reports(search_path: str) -> list[dict]:
    """The last result Tune received from each trial (its result.json on S3)."""
    import json

    from pyarrow import fs as pafs

    from augkd.storage.files import resolve_filesystem

    filesystem, path = resolve_filesystem(search_path)
    infos = filesystem.get_file_info(pafs.FileSelector(path, recursive=True))
    files = [i.path for i in infos if i.is_file and i.path.endswith("/result.json")]
    return [json.loads(read_bytes(f"s3://{file}").decode().splitlines()[-1]) for file in files]


@pytest.mark.slow
def test_trials_on_a_node_that_joins_later_download_each_artifact_once(
    s3_server, tmp_path, monkeypatch
):
    """A first search produces the shared stages (on node A); a second one on a fresh node B
    finds them in storage: B downloads each of them once, and its 4 trials, 2 at a time,
    read them all from B's copies."""
    import ray

    from augkd.search.run.runner import SearchOptions, run_search

    monkeypatch.chdir(tmp_path)
    root = f"{s3_server.bucket('node-copies')}/{uuid.uuid4().hex}"
    data_root, teacher_uri = _domain_and_teacher_on_s3(root)
    overrides = [
        "resources.cpu=1", "max_concurrent=2", "data.source=folders", f"data.root={data_root}",
        "data.student_domain=dslr", "data.split=[0.5, 0.25, 0.25]", "data.min_eval_images=4",
        f"teacher.checkpoint={teacher_uri}", "module1.iters_per_epoch=2", "module2.epochs=1",
        "module3.epochs=2", "scheduler.grace_period=1",
        "module3.batch_size=4",
    ]  # fmt: skip

    def search(name: str, samples: int, node: Path):
        _on_node(monkeypatch, node)  # before Ray starts: its workers inherit it
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            return run_search(
                SearchOptions(
                    space="digits", storage=f"{root}/runs", name=name, smoke_test=True,
                    tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}", num_samples=samples,
                    overrides=overrides,
                ),
                echo=lambda *a, **k: None,
            )  # fmt: skip
        finally:
            ray.shutdown()

    search("first", 1, tmp_path / "node_a")
    outcome = search("second", 4, tmp_path / "node_b")

    downloaded = _downloads(tmp_path / "node_b")
    assert len(set(downloaded)) == len(downloaded)  # each file once on this node
    stages = {d.split("/stage_cache/")[1].split("/")[0] for d in downloaded if "/stage_cache/" in d}
    assert {"domain", "module1", "encoder"} <= stages
    # (module2 and diagnostics of the first trial too: both searches start at the defaults)
    assert stages <= {"domain", "module1", "encoder", "module2", "diagnostics"}
    assert [d for d in downloaded if "/stage_cache/" not in d] == [teacher_uri]
    # the tasks before the trials fetched the shared ones (counted in their cache events):
    # the smoke test's two Module-2 grid points with their diagnostics included ...
    assert sorted(stage for stage, _ in outcome.shared.downloads) == sorted(
        ["domain", "module1", "encoder", "source", *["module2", "diagnostics"] * 2]
    )
    # ... the trials' own events add up to the rest, and every trial read the teacher, the
    # domain, Module 1 and the encoder from the node's copies
    reports = _trial_reports(outcome.search_path)
    assert len(reports) == 4
    trial_downloads = sum(r["stage_downloads"] for r in reports)
    assert len(outcome.shared.downloads) + trial_downloads == len(downloaded)
    assert all(r["stage_node_reads"] >= 4 for r in reports), reports
