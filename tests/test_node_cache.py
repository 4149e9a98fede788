"""Node copies (augkd.node_cache): each artifact in object storage is downloaded once per node,
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

from augkd.cache import StageCache
from augkd.locations import NODE_CACHE_ENV, node_cache_dir
from augkd.storage import read_bytes, uri_is_file, write_bytes


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
    assert _downloads(node) == [f"{s3_root.removeprefix('s3://')}/module1/k.pt"]


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
    with caplog.at_level(logging.WARNING, logger="augkd.node_cache"):
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


def test_the_default_node_folder_is_under_the_users_cache(monkeypatch, tmp_path):
    monkeypatch.delenv(NODE_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert node_cache_dir() == tmp_path / "augkd" / "nodes"
