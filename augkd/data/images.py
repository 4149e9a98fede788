"""Decoding images: any file PIL reads (16-bit, palette, opaque alpha) into one uint8 RGB
tensor at ``image_size``, refusing what would mislead (float images, transparent pixels) in a
sentence naming the file. The loaders (augkd.data.real, augkd.data.torchvision_sets) list
their files into a ``DecodePlan`` and hand it here."""

from __future__ import annotations

import io
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pyarrow import fs as pafs

from augkd.basics.errors import DataError
from augkd.data.types import LabelledImages
from augkd.hardware.runtime import cpu_share

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp"})
EXTENSIONS_TEXT = "/".join(sorted(ext.lstrip(".") for ext in IMAGE_EXTENSIONS))
_TENSOR_CHUNK = 2048  # images resized per batch for in-memory datasets, to bound peak memory
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


# --------------------------------------------------------------------------- plans


@dataclass
class DecodePlan:
    """The files of one domain (possibly several merged), listed but not yet decoded.

    ``key`` hashes the listing (paths, sizes, mtimes) and the class names: with the image
    size it keys the decoded domain in the stage cache, so a changed file is decoded anew."""

    filesystem: pafs.FileSystem
    paths: list[str]
    """Paths inside ``filesystem``."""
    shown: list[str]
    """The same files as the user names them (local path or URI), for error messages."""
    labels: list[int]
    class_names: list[str]
    key: str


# --------------------------------------------------------------------------- decoding


_SIXTEEN_BIT = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
"""PIL's modes of 16-bit greyscale (PNG, TIFF); ``convert("RGB")`` clips them at 255,
which turns an ordinary 16-bit scan into a nearly all-white image."""


def _as_rgb(img: Image.Image, shown: str) -> Image.Image:
    """RGB as a viewer shows the image: deeper greyscale scaled to 8 bits, not clipped;
    pixels whose range cannot be known (floating point) refused."""
    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        values = np.asarray(img).astype(np.int64)
        if values.min(initial=0) < 0 or values.max(initial=0) > 65535:
            raise DataError(
                f"Image '{shown}' holds 32-bit integer pixels outside the 16-bit range, which "
                "augkd cannot map to 8 bits faithfully; convert it to an 8-bit PNG or JPEG."
            )
        grey = np.rint(values / 257.0).astype(np.uint8)  # 65535 -> 255, full scale to full
        return Image.fromarray(grey, mode="L").convert("RGB")
    if img.mode == "F":
        raise DataError(
            f"Image '{shown}' holds floating-point pixels (PIL mode F), whose range augkd "
            "cannot know; convert it to an 8-bit PNG or JPEG."
        )
    if img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info:
        alpha = np.asarray(img.convert("RGBA"))[..., 3]
        if (alpha < 255).any():  # convert("RGB") would drop it: the hidden colours would show
            raise DataError(
                f"Image '{shown}' has transparent pixels, whose colour depends on what it is "
                "shown over; flatten it onto a background (e.g. white) and save it as RGB."
            )
    return img.convert("RGB")


def _decode(data: bytes, shown: str, image_size: int) -> np.ndarray:
    """Decode one file to an RGB uint8 array [S, S, 3], or name the file that failed."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            # JPEG can decode at a reduced scale directly, which is much faster for big photos.
            img.draft("RGB", (image_size, image_size))
            rgb = _as_rgb(img, shown)
            if rgb.size != (image_size, image_size):
                # PIL's bilinear filter widens its support when shrinking, i.e. it antialiases.
                rgb = rgb.resize((image_size, image_size), Image.Resampling.BILINEAR)
            return np.array(rgb, dtype=np.uint8)  # writable copy, safe for torch.from_numpy
    except DataError:
        raise
    except _DECODE_ERRORS as err:
        raise DataError(
            f"Image '{shown}' could not be decoded ({err}); remove or replace the file."
        ) from err


def decode_plan(plan: DecodePlan, image_size: int) -> LabelledImages:
    """Fetch and decode every file of the plan once, into one preallocated uint8 tensor.

    Fetching waits on storage, so it uses a few threads per CPU of this trial's share;
    decoding itself never runs on more threads than that share (not every host thread)."""
    count = len(plan.paths)
    out = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    share = cpu_share()
    decoding = threading.BoundedSemaphore(share)

    def fetch_and_decode(index: int) -> None:
        try:
            with plan.filesystem.open_input_stream(plan.paths[index]) as stream:
                data = stream.read()
        except OSError as err:
            raise DataError(
                f"Image '{plan.shown[index]}' could not be read ({err}); check the file and "
                "the storage credentials."
            ) from err
        with decoding:
            array = _decode(data, plan.shown[index], image_size)
        out[index] = torch.from_numpy(array).permute(2, 0, 1)

    with ThreadPoolExecutor(max_workers=min(32, 4 * share)) as pool:
        for _ in pool.map(fetch_and_decode, range(count)):
            pass
    return LabelledImages(out, torch.tensor(plan.labels, dtype=torch.int64), plan.class_names)


def resize_tensor(images: torch.Tensor, image_size: int) -> torch.Tensor:
    """Resize uint8 [N, C, H, W] (C = 1 or 3) to RGB [N, 3, S, S], chunk by chunk."""
    count = images.shape[0]
    out = torch.empty((count, 3, image_size, image_size), dtype=torch.uint8)
    for start in range(0, count, _TENSOR_CHUNK):
        chunk = images[start : start + _TENSOR_CHUNK]
        if chunk.shape[-2:] != (image_size, image_size):
            resized = F.interpolate(
                chunk.float(),
                size=(image_size, image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
            chunk = resized.round_().clamp_(0, 255).to(torch.uint8)
        out[start : start + chunk.shape[0]] = chunk  # broadcasts grayscale to 3 channels
    return out
