"""Tests of jaxgraphs/data/builders/image_checks.py: which files pass, the reasons, the stored bytes."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

import fake_images
from jaxgraphs.data.builders import image_checks


@pytest.fixture
def files(tmp_path):
  """One file of each kind the checks tell apart."""
  paths = {
    name: tmp_path / f"{name}.jpg"
    for name in ("rgb", "gray", "cmyk", "png", "truncated", "garbage", "empty", "missing")
  }
  fake_images.write_jpeg(paths["rgb"], seed=1)
  fake_images.write_jpeg(paths["gray"], seed=2, mode="L")
  fake_images.write_jpeg(paths["cmyk"], seed=3, mode="CMYK")
  fake_images.write_png(paths["png"], seed=4)
  fake_images.write_truncated_jpeg(paths["truncated"], seed=5)
  fake_images.write_garbage(paths["garbage"])
  paths["empty"].write_bytes(b"")
  return paths


def test_reasons_in_input_order(files):
  checks = image_checks.check_image_files(list(files.values()), num_threads=3)
  assert [c.path for c in checks] == [str(p) for p in files.values()]
  got = {name: (c.format, c.mode, c.reason) for name, c in zip(files, checks)}
  assert got == {
    "rgb": ("JPEG", "RGB", None),
    "gray": ("JPEG", "L", None),
    "cmyk": ("JPEG", "CMYK", None),
    "png": ("PNG", "RGB", None),
    "truncated": (None, None, image_checks.DECODE_ERROR),
    "garbage": (None, None, image_checks.NOT_AN_IMAGE),
    "empty": (None, None, image_checks.EMPTY),
    "missing": (None, None, image_checks.MISSING),
  }


def test_truncated_caught_even_if_pil_told_to_accept_it(files):
  ImageFile.LOAD_TRUNCATED_IMAGES = True  # as some libraries set it globally
  try:
    (check,) = image_checks.check_image_files([files["truncated"]])
    assert check.reason == image_checks.DECODE_ERROR and "truncated" in check.detail.lower()
    assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # restored
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = False


def test_jpeg_bytes_keeps_jpegs_and_converts_others(files):
  rgb, png, garbage = image_checks.check_image_files([files["rgb"], files["png"], files["garbage"]])
  assert image_checks.jpeg_bytes(rgb) == files["rgb"].read_bytes()
  converted = Image.open(io.BytesIO(image_checks.jpeg_bytes(png)))
  assert converted.format == "JPEG" and converted.mode == "RGB"
  assert np.abs(np.asarray(converted, int) - fake_images._pixels(4).astype(int)).mean() < 8
  with pytest.raises(ValueError, match="not readable"):
    image_checks.jpeg_bytes(garbage)


def test_report_counts_and_readable_indices(files, tmp_path):
  names = list(files)
  report = image_checks.SkipReport("fake")
  readable = report.add_checks("train", names, image_checks.check_image_files(list(files.values())))
  assert [names[i] for i in readable] == ["rgb", "gray", "cmyk", "png"]
  assert report.counts() == {
    image_checks.DECODE_ERROR: 1,
    image_checks.EMPTY: 1,
    image_checks.MISSING: 1,
    image_checks.NOT_AN_IMAGE: 1,
  }
  assert [entry["id"] for entry in report.reencoded] == ["png"]
  path = report.write(tmp_path)
  assert path.name == image_checks.REPORT_FILENAME and '"num_skipped": 4' in path.read_text()
