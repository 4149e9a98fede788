"""Datasets on an S3-compatible server (moto, through AWS_ENDPOINT_URL): listed and decoded
once into a uint8 stage artifact keyed by the listing, shared by every later load."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pytest
import torch
from PIL import Image

from augkd.basics.config import DataConfig
from augkd.basics.errors import DataError
from augkd.data import load_domain
from augkd.data.real import load_image_folders, load_list_file
from augkd.data.torchvision_sets import load_torchvision
from augkd.storage.cache import StageCache
from augkd.storage.files import write_bytes

COLOURS = {"bird": (10, 200, 30), "cat": (220, 40, 90)}


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 14), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _upload_domain(root: str, local: Path, domain: str, per_class: int = 2) -> None:
    """The same images to S3 and to a local folder."""
    for name, colour in COLOURS.items():
        for i in range(per_class):
            data = _png(colour)
            write_bytes(f"{root}/{domain}/{name}/img{i}.png", data)
            path = local / domain / name / f"img{i}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)


@pytest.fixture
def s3_root(s3_server) -> str:
    return f"{s3_server.bucket('datasets')}/{uuid.uuid4().hex}"


def test_s3_folders_decode_like_local_ones_once_then_come_from_the_cache(s3_root, tmp_path):
    _upload_domain(s3_root, tmp_path, "dslr")
    config = DataConfig(source="folders", root=s3_root, student_domain="dslr", image_size=12)

    first_cache = StageCache(f"{s3_root}/stage_cache")
    remote = load_domain(config, "dslr", first_cache)
    local = load_image_folders(tmp_path, ["dslr"], image_size=12)
    assert remote.class_names == local.class_names == ["bird", "cat"]
    assert torch.equal(remote.images, local.images) and remote.images.dtype == torch.uint8
    assert torch.equal(remote.labels, local.labels)
    assert [(e.stage, e.hit) for e in first_cache.events] == [("domain", False)]

    again = StageCache(f"{s3_root}/stage_cache")
    assert torch.equal(load_domain(config, "dslr", again).images, remote.images)
    assert [(e.stage, e.hit) for e in again.events] == [("domain", True)]

    # a changed file changes the listing, hence the key: decoded anew, not served stale
    write_bytes(f"{s3_root}/dslr/cat/img0.png", _png((1, 2, 3)))
    changed = StageCache(f"{s3_root}/stage_cache")
    assert load_domain(config, "dslr", changed).images[2, :, 6, 6].tolist() == [1, 2, 3]
    assert [(e.stage, e.hit) for e in changed.events] == [("domain", False)]


def test_s3_list_file_reads_relative_paths(s3_root, tmp_path):
    _upload_domain(s3_root, tmp_path, "validation", per_class=1)
    write_bytes(f"{s3_root}/validation/image_list.txt", b"cat/img0.png 1\nbird/img0.png 0\n")
    data = load_list_file(f"{s3_root}/validation/image_list.txt", image_size=8)
    assert data.labels.tolist() == [1, 0] and data.class_names == ["bird", "cat"]
    assert data.images[0, :, 4, 4].tolist() == list(COLOURS["cat"])


def test_missing_s3_data_is_named(s3_root, tmp_path):
    with pytest.raises(DataError, match=rf"Data path '{s3_root}/nowhere' does not exist"):
        load_image_folders(f"{s3_root}/nowhere", ["dslr"], image_size=8)
    _upload_domain(s3_root, tmp_path, "amazon", per_class=1)
    with pytest.raises(DataError, match=r"dslr' does not exist; domains found .* amazon"):
        load_image_folders(s3_root, ["dslr"], image_size=8)
    write_bytes(f"{s3_root}/validation/list.txt", b"cat/nope.png 0\n")
    with pytest.raises(DataError, match=r"nope\.png' listed in .* line 1 does not exist"):
        load_list_file(f"{s3_root}/validation/list.txt", image_size=8)


def test_torchvision_formats_need_a_local_root():
    with pytest.raises(DataError, match=r"data\.root 's3://b/mnist' is a URI.*local folder"):
        load_torchvision("mnist", "s3://b/mnist", image_size=8)
