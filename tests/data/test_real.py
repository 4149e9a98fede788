"""Real-dataset loaders: tiny on-disk fixtures in each format, decoded for real."""

from __future__ import annotations

import bz2
import struct
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from augkd.basics.errors import DataError
from augkd.data.real import REAL_SOURCES, load_image_folders, load_list_file
from augkd.data.torchvision_sets import load_torchvision

CLASSES = ["cat", "bird", "dog"]  # deliberately unsorted
COLOURS = {"bird": (10, 200, 30), "cat": (220, 40, 90), "dog": (60, 90, 250)}


def _write_image(path: Path, colour: tuple[int, int, int], fmt: str = "PNG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (24, 20), colour).save(path, format=fmt)


def _make_domain(
    domain_dir: Path, classes: list[str] = CLASSES, per_class: int = 3, ext: str = "png"
) -> None:
    fmt = {"png": "PNG", "jpg": "JPEG", "bmp": "BMP"}[ext]
    for name in classes:
        for i in range(per_class):
            _write_image(domain_dir / name / f"img{i}.{ext}", COLOURS[name], fmt)


def test_image_folders_merge_domains_and_sort_classes(tmp_path: Path) -> None:
    _make_domain(tmp_path / "amazon", per_class=3)
    _make_domain(tmp_path / "webcam", per_class=2, ext="bmp")
    (tmp_path / "amazon" / "cat" / "notes.txt").write_text("not an image")

    data = load_image_folders(tmp_path, ["amazon", "webcam"], image_size=16)

    assert data.class_names == ["bird", "cat", "dog"]
    assert len(data) == 3 * 3 + 3 * 2
    assert torch.bincount(data.labels).tolist() == [5, 5, 5]
    assert data.labels.tolist() == [0] * 3 + [1] * 3 + [2] * 3 + [0] * 2 + [1] * 2 + [2] * 2
    for label, name in enumerate(data.class_names):
        pixel = data.images[data.labels == label][:, :, 8, 8]
        assert (pixel == torch.tensor(COLOURS[name], dtype=torch.uint8)).all()


def test_images_are_resized_uint8_rgb(tmp_path: Path) -> None:
    domain = tmp_path / "art"
    _make_domain(domain, classes=["bird", "cat"], per_class=1, ext="jpg")
    gray = Image.new("L", (30, 18), 128)
    gray.save(domain / "bird" / "gray.PNG")  # upper-case extension, grayscale mode
    palette = Image.new("P", (12, 40), 0)
    palette.putpalette([255, 0, 0] * 256)
    palette.save(domain / "cat" / "pal.gif")

    data = load_image_folders(tmp_path, ["art"], image_size=8)

    assert data.images.dtype == torch.uint8
    assert data.images.shape == (4, 3, 8, 8)
    assert data.labels.dtype == torch.int64
    assert data.labels.tolist() == [0, 0, 1, 1]
    gray_img = data.images[0]  # bird: gray.PNG sorts before img0.jpg
    assert (gray_img == 128).all()
    red = data.images[3]  # cat: pal.gif after img0.jpg
    assert (red[0] == 255).all() and (red[1:] == 0).all()
    jpeg_bird = data.images[1].float().mean(dim=(1, 2))
    assert torch.allclose(jpeg_bird, torch.tensor(COLOURS["bird"], dtype=torch.float), atol=6)


def test_office31_images_subfolder_is_accepted(tmp_path: Path) -> None:
    _make_domain(tmp_path / "dslr" / "images", per_class=2)

    data = load_image_folders(tmp_path, ["dslr"], image_size=12)

    assert data.class_names == ["bird", "cat", "dog"]
    assert data.images.shape == (6, 3, 12, 12)


def test_missing_root_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=r"Data path '.*nowhere' does not exist; check data\.root"):
        load_image_folders(missing, ["amazon"], image_size=8)
    with pytest.raises(DataError, match="nowhere"):
        load_list_file(missing / "list.txt", image_size=8)


def test_missing_domain_lists_existing_domains(tmp_path: Path) -> None:
    _make_domain(tmp_path / "amazon", per_class=1)
    _make_domain(tmp_path / "webcam", per_class=1)
    with pytest.raises(DataError, match=r"'.*dslr' does not exist.*amazon, webcam"):
        load_image_folders(tmp_path, ["amazon", "dslr"], image_size=8)


def test_corrupt_image_is_named(tmp_path: Path) -> None:
    _make_domain(tmp_path / "amazon", per_class=2)
    bad = tmp_path / "amazon" / "dog" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg" * 4)
    with pytest.raises(DataError, match=r"broken\.jpg' could not be decoded.*remove or replace"):
        load_image_folders(tmp_path, ["amazon"], image_size=8)


def test_empty_class_folder_is_named(tmp_path: Path) -> None:
    _make_domain(tmp_path / "amazon", per_class=1)
    (tmp_path / "amazon" / "eel").mkdir()
    (tmp_path / "amazon" / "eel" / "readme.txt").write_text("no images here")
    with pytest.raises(DataError, match=r"Class folder '.*eel' holds no"):
        load_image_folders(tmp_path, ["amazon"], image_size=8)


def test_domain_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "amazon").mkdir()
    with pytest.raises(DataError, match=r"No images found under '.*amazon'"):
        load_image_folders(tmp_path, ["amazon"], image_size=8)


def test_domains_with_different_classes_are_refused(tmp_path: Path) -> None:
    _make_domain(tmp_path / "amazon", classes=["bird", "cat"], per_class=1)
    _make_domain(tmp_path / "webcam", classes=["bird", "dog"], per_class=1)
    with pytest.raises(DataError, match=r"Domain 'webcam' has different.*missing: cat; extra: dog"):
        load_image_folders(tmp_path, ["amazon", "webcam"], image_size=8)


def test_list_file_reads_paths_and_labels(tmp_path: Path) -> None:
    train = tmp_path / "train"
    _make_domain(train, classes=["bird", "dog"], per_class=2)
    outside = tmp_path / "elsewhere" / "x.png"
    _write_image(outside, COLOURS["bird"])
    lines = [
        "dog/img0.png 1",
        "",
        "bird/img0.png 0",
        "dog/img1.png   1",
        "bird/img1.png\t0",
    ]
    (train / "image_list.txt").write_text("\n".join(lines) + "\n")

    data = load_list_file(train / "image_list.txt", image_size=10)

    assert data.labels.tolist() == [1, 0, 1, 0]
    assert data.class_names == ["bird", "dog"]  # from the folder of each label's images
    assert data.images.shape == (4, 3, 10, 10)
    assert data.images[0, :, 5, 5].tolist() == list(COLOURS["dog"])
    assert data.images[1, :, 5, 5].tolist() == list(COLOURS["bird"])

    # Paths relative to an explicit root, an absolute path, and given class names.
    other = tmp_path / "lists" / "l.txt"
    other.parent.mkdir()
    other.write_text(f"train/dog/img0.png 2\n{outside} 0\n")
    named = load_list_file(other, image_size=10, root=tmp_path, class_names=["a", "b", "c"])
    assert named.labels.tolist() == [2, 0]
    assert named.class_names == ["a", "b", "c"]


def test_list_file_label_without_images_is_refused(tmp_path: Path) -> None:
    """Label 1 with no images used to become an empty class, and every class lost its
    folder name (class_0, class_1, class_2)."""
    _make_domain(tmp_path, classes=["bird", "dog"], per_class=1)
    (tmp_path / "list.txt").write_text("dog/img0.png 2\nbird/img0.png 0\n")
    with pytest.raises(DataError) as refused:
        load_list_file(tmp_path / "list.txt", image_size=10)
    assert str(refused.value) == (
        f"List file '{tmp_path / 'list.txt'}' has no images for label 1 (its labels run from 0 "
        "to 2); list images of every label, or renumber the labels without gaps."
    )


def test_list_file_bad_line_names_line_number(tmp_path: Path) -> None:
    _make_domain(tmp_path, classes=["cat"], per_class=1)
    list_path = tmp_path / "list.txt"
    list_path.write_text("cat/img0.png 0\n\ncat/img0.png zero\n")
    with pytest.raises(DataError, match=r"list\.txt' line 3 is malformed"):
        load_list_file(list_path, image_size=8)

    list_path.write_text("cat/img0.png 0\ncat/missing.png 0\n")
    with pytest.raises(DataError, match=r"missing\.png' listed in '.*' line 2 does not exist"):
        load_list_file(list_path, image_size=8)


def test_list_file_too_few_class_names_is_refused(tmp_path: Path) -> None:
    _make_domain(tmp_path, classes=["cat"], per_class=1)
    (tmp_path / "list.txt").write_text("cat/img0.png 4\n")
    with pytest.raises(DataError, match="uses label 4 but only 2 class names"):
        load_list_file(tmp_path / "list.txt", image_size=8, class_names=["a", "b"])


def test_empty_list_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "list.txt").write_text("\n\n")
    with pytest.raises(DataError, match="No images found in list file"):
        load_list_file(tmp_path / "list.txt", image_size=8)


def _write_idx(path: Path, array: np.ndarray, magic: int) -> None:
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _make_mnist(root: Path) -> tuple[np.ndarray, np.ndarray]:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 28, 28), dtype=np.uint8)
    images[:, :14, :] = 255  # a bright top half survives resizing
    images[:, 14:, :] = 0
    labels = np.array([3, 1, 4, 1, 5], dtype=np.uint8)
    for prefix in ("train", "t10k"):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images, 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", labels, 2049)
    return images, labels


def test_mnist_format_loads_without_download(tmp_path: Path) -> None:
    _, labels = _make_mnist(tmp_path)

    data = load_torchvision("mnist", tmp_path, image_size=14, split="test")

    assert data.images.shape == (5, 3, 14, 14)
    assert data.images.dtype == torch.uint8
    assert data.labels.tolist() == labels.tolist()
    assert data.class_names == [str(i) for i in range(10)]
    assert (data.images[:, :, :6] == 255).all()
    assert (data.images[:, :, 8:] == 0).all()
    assert torch.equal(data.images[:, 0], data.images[:, 2])  # grayscale repeated

    same = REAL_SOURCES["mnist"](tmp_path, 28)
    assert same.images.shape == (5, 3, 28, 28)


def test_missing_torchvision_dataset_says_to_download(tmp_path: Path) -> None:
    for name in ("mnist", "usps", "svhn"):
        with pytest.raises(DataError, match=rf"{name} dataset was not found.*data\.download=true"):
            load_torchvision(name, tmp_path / "empty", image_size=8)
    assert not (tmp_path / "empty").exists()  # nothing was downloaded or created
    with pytest.raises(DataError, match="Unknown torchvision dataset 'cifar'"):
        load_torchvision("cifar", tmp_path, image_size=8)
    with pytest.raises(DataError, match="Unknown split 'extra' for mnist"):
        load_torchvision("mnist", tmp_path, image_size=8, split="extra")


def test_usps_format_loads(tmp_path: Path) -> None:
    # libsvm lines: '<label 1..10> 1:v 2:v ... 256:v' with v in [-1, 1], bz2-compressed.
    rows = []
    for label, value in ((1, -1.0), (10, 1.0), (5, 0.0)):
        pixels = " ".join(f"{i + 1}:{value}" for i in range(256))
        rows.append(f"{label} {pixels}")
    with bz2.open(tmp_path / "usps.bz2", "wt") as fp:
        fp.write("\n".join(rows) + "\n")

    data = load_torchvision("usps", tmp_path, image_size=8)

    assert data.labels.tolist() == [0, 9, 4]
    assert data.images.shape == (3, 3, 8, 8)
    assert (data.images[0] == 0).all()
    assert (data.images[1] == 255).all()
    assert (data.images[2] == 127).all()


def test_svhn_format_loads(tmp_path: Path) -> None:
    count = 4
    x = np.zeros((32, 32, 3, count), dtype=np.uint8)
    for i in range(count):
        x[:, :, 0, i] = 40 * i
        x[:, :, 1, i] = 200
        x[:, :, 2, i] = 7
    y = np.array([[10], [1], [2], [9]], dtype=np.uint8)
    scipy.io.savemat(tmp_path / "test_32x32.mat", {"X": x, "y": y})

    data = load_torchvision("svhn", tmp_path, image_size=16, split="test")

    assert data.labels.tolist() == [0, 1, 2, 9]
    assert data.images.shape == (count, 3, 16, 16)
    for i in range(count):
        assert data.images[i, :, 3, 3].tolist() == [40 * i, 200, 7]


def test_sixteen_bit_greyscale_png_decodes_as_it_looks(tmp_path: Path) -> None:
    """PIL's convert("RGB") clipped 16-bit values at 255: mid-grey became white."""
    grey = np.full((20, 24), 128 * 257, dtype=np.uint16)  # mid-grey at 16 bits
    grey[:, :12] = 0
    path = tmp_path / "scans" / "digit" / "a.png"
    path.parent.mkdir(parents=True)
    Image.fromarray(grey).save(path)
    assert Image.open(path).mode == "I;16"
    data = load_image_folders(tmp_path, ["scans"], image_size=24)
    assert data.images[0, :, 10, 20].tolist() == [128, 128, 128]
    assert data.images[0, :, 10, 2].tolist() == [0, 0, 0]


def test_floating_point_pixels_are_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "digit" / "a.tif"
    path.parent.mkdir(parents=True)
    Image.fromarray(np.full((8, 8), 0.5, dtype=np.float32)).save(path)
    (tmp_path / "list.txt").write_text("digit/a.tif 0\n")
    with pytest.raises(DataError) as refused:
        load_list_file(tmp_path / "list.txt", image_size=8)
    assert str(refused.value) == (
        f"Image '{path}' holds floating-point pixels (PIL mode F), whose range augkd cannot "
        "know; convert it to an 8-bit PNG or JPEG."
    )


def test_transparent_pixels_are_refused_and_an_opaque_alpha_is_kept(tmp_path: Path) -> None:
    pixels = np.zeros((8, 8, 4), dtype=np.uint8)
    pixels[..., 0] = 200  # red under the alpha
    pixels[..., 3] = 255
    opaque = tmp_path / "opaque" / "pens" / "digit" / "a.png"
    opaque.parent.mkdir(parents=True)
    Image.fromarray(pixels, mode="RGBA").save(opaque)
    data = load_image_folders(tmp_path / "opaque", ["pens"], image_size=8)
    assert data.images[0, :, 4, 4].tolist() == [200, 0, 0]
    pixels[:4, ..., 3] = 0  # the top half transparent: its red would show, hidden in the file
    clear = tmp_path / "clear" / "pens" / "digit" / "a.png"
    clear.parent.mkdir(parents=True)
    Image.fromarray(pixels, mode="RGBA").save(clear)
    with pytest.raises(DataError, match="has transparent pixels") as refused:
        load_image_folders(tmp_path / "clear", ["pens"], image_size=8)
    assert str(clear) in str(refused.value) and "flatten it onto a background" in str(refused.value)
