"""Tiny image files for builder tests: valid JPEGs in several modes, a PNG named .jpg, broken files."""

from __future__ import annotations

import io
import pathlib

import numpy as np
from PIL import Image

SIZE = 16


def _pixels(seed: int) -> np.ndarray:
  """A smooth 16x16 RGB ramp that differs per seed (smooth, so JPEG round trips stay close)."""
  y, x = np.mgrid[0:SIZE, 0:SIZE]
  offset = seed % 16
  rgb = np.stack([x * 14 + offset, y * 14 + offset, 128 + (x - y) * 4 + offset], axis=-1)
  return rgb.astype(np.uint8)


def jpeg_bytes(seed: int, mode: str = "RGB") -> bytes:
  """A 16x16 JPEG in PIL mode `mode` ('RGB', 'L' grayscale, 'CMYK')."""
  buffer = io.BytesIO()
  Image.fromarray(_pixels(seed)).convert(mode).save(buffer, format="JPEG", quality=90)
  return buffer.getvalue()


def write_jpeg(path: pathlib.Path, seed: int, mode: str = "RGB") -> bytes:
  """Writes a valid JPEG and returns its bytes."""
  data = jpeg_bytes(seed, mode)
  path.write_bytes(data)
  return data


def write_png(path: pathlib.Path, seed: int) -> np.ndarray:
  """Writes a PNG (under whatever name `path` has) and returns its pixels."""
  pixels = _pixels(seed)
  Image.fromarray(pixels).save(path, format="PNG")
  return pixels


def write_truncated_jpeg(path: pathlib.Path, seed: int) -> None:
  """Writes the first half of a valid JPEG: the header parses, decoding fails."""
  data = jpeg_bytes(seed)
  path.write_bytes(data[: len(data) // 2])


def write_garbage(path: pathlib.Path) -> None:
  """Writes bytes that are no image at all."""
  path.write_bytes(b"<html>not an image</html>" * 4)
