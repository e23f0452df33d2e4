"""Robust decoding: every awkward file written by Pillow becomes Pillow's RGB pixels, or is skipped and flagged."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from jaxgraphs.data import image_decoding

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (9, 14, 3), dtype=np.uint8)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buf = io.BytesIO()
  image.save(buf, fmt, **kwargs)
  return buf.getvalue()


def pillow_rgb(data: bytes) -> np.ndarray:
  return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def palette_image() -> Image.Image:
  return Image.fromarray(RGB).convert("P", palette=Image.ADAPTIVE, colors=8)


GOOD_FILES = {
  "rgb_jpeg": lambda: encode(Image.fromarray(RGB), "JPEG", quality=90),
  "rgb_png": lambda: encode(Image.fromarray(RGB), "PNG"),
  "grayscale_png": lambda: encode(Image.fromarray(RGB[..., 0]), "PNG"),
  "grayscale_jpeg": lambda: encode(Image.fromarray(RGB[..., 0]), "JPEG"),
  "gray_alpha_png": lambda: encode(Image.fromarray(RGB[..., :2].copy(), "LA"), "PNG"),
  "rgba_png": lambda: encode(Image.fromarray(np.dstack([RGB, RGB[..., :1]]), "RGBA"), "PNG"),
  "palette_png": lambda: encode(palette_image(), "PNG"),
  "palette_png_transparent": lambda: encode(palette_image(), "PNG", transparency=2),
  "cmyk_jpeg": lambda: encode(Image.fromarray(RGB).convert("CMYK"), "JPEG", quality=90),
  "one_pixel_jpeg": lambda: encode(Image.fromarray(RGB[:1, :1]), "JPEG"),
  "one_pixel_png": lambda: encode(Image.fromarray(RGB[:1, :1]), "PNG"),
  "gif": lambda: encode(Image.fromarray(RGB), "GIF"),
  "bmp": lambda: encode(Image.fromarray(RGB), "BMP"),
}

BAD_FILES = {
  "truncated_jpeg": lambda: GOOD_FILES["rgb_jpeg"]()[:200],
  "truncated_png": lambda: GOOD_FILES["rgb_png"]()[:100],
  "garbage": lambda: RNG.integers(0, 256, 300, dtype=np.uint8).tobytes(),
  "empty": lambda: b"",
  "tiff": lambda: encode(Image.fromarray(RGB), "TIFF"),  # a real image in a format TF cannot read
}


@pytest.mark.parametrize("name", sorted(GOOD_FILES))
def test_decode_rgb_equals_pillow_convert_rgb(name):
  data = GOOD_FILES[name]()
  decoded = image_decoding.decode_rgb(tf.constant(data)).numpy()
  np.testing.assert_array_equal(decoded, pillow_rgb(data))
  assert decoded.dtype == np.uint8 and decoded.shape[-1] == 3


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_decode_rgb_raises_on_bad_files(name):
  with pytest.raises(tf.errors.InvalidArgumentError):
    image_decoding.decode_rgb(tf.constant(BAD_FILES[name]()))


def test_to_rgb_converts_decoded_arrays_of_1_to_4_channels():
  for channels, expected in [
    (1, np.repeat(RGB[..., :1], 3, -1)),
    (2, np.repeat(RGB[..., :1], 3, -1)),
    (3, RGB),
    (4, RGB),
  ]:
    image = np.dstack([RGB, RGB[..., :1]])[..., :channels]
    np.testing.assert_array_equal(image_decoding.decode_rgb(tf.constant(image)).numpy(), expected)
    # Unknown channel count (as inside a tf.function with a dynamic input).
    dynamic = tf.function(image_decoding.to_rgb, input_signature=[tf.TensorSpec([None, None, None], tf.uint8)])
    np.testing.assert_array_equal(dynamic(tf.constant(image)).numpy(), expected)


def test_decode_rgb_rejects_other_dtypes():
  with pytest.raises(TypeError, match="float32"):
    image_decoding.decode_rgb(tf.zeros([2, 2, 3], tf.float32))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 64])
def test_decode_with_fallback_keeps_every_position_and_flags_failures(chunk_size):
  names = [
    "rgb_jpeg",
    "truncated_jpeg",
    "grayscale_png",
    "garbage",
    "cmyk_jpeg",
    "empty",
    "one_pixel_png",
    "truncated_png",
    "rgba_png",
  ]
  files = [{**GOOD_FILES, **BAD_FILES}[n]() for n in names]
  ds = tf.data.Dataset.from_tensor_slices({"image": files, "position": tf.range(len(files))})
  decode = lambda ex: {**ex, "image": image_decoding.decode_rgb(ex["image"])}  # noqa: E731
  out = list(
    image_decoding.decode_with_fallback(ds, decode, num_parallel_calls=4, chunk_size=chunk_size).as_numpy_iterator()
  )
  assert [int(ex["position"]) for ex in out] == list(range(len(files)))  # nothing dropped, order kept
  for name, data, ex in zip(names, files, out):
    if name in BAD_FILES:
      assert ex[image_decoding.SKIPPED_KEY], name
      np.testing.assert_array_equal(ex["image"], np.zeros((1, 1, 3), np.uint8))
    else:
      assert not ex[image_decoding.SKIPPED_KEY], name
      np.testing.assert_array_equal(ex["image"], pillow_rgb(data))


def test_decode_with_fallback_rejects_a_bad_chunk_size():
  ds = tf.data.Dataset.from_tensor_slices({"image": [b""]})
  with pytest.raises(ValueError, match="chunk_size must be a positive int, got 0"):
    image_decoding.decode_with_fallback(ds, lambda ex: ex, chunk_size=0)


def test_decode_workers_cap_autotune_at_the_usable_cores_and_max_workers(monkeypatch):
  assert image_decoding.decode_workers(3) == 3  # an explicit count is kept
  monkeypatch.setattr(image_decoding.os, "sched_getaffinity", lambda pid: set(range(96)), raising=False)
  assert image_decoding.decode_workers(tf.data.AUTOTUNE) == image_decoding.MAX_WORKERS == 16
  monkeypatch.setattr(image_decoding.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
  assert image_decoding.decode_workers(tf.data.AUTOTUNE) == 2
