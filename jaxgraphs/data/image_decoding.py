"""Decoding any common image file to RGB uint8, and the tf.data stage that skips the ones that fail.

What TensorFlow 2.21's decoders do with each awkward case (checked on files written by Pillow, see
tests/test_image_decoding.py):

* grayscale, grayscale+alpha, 16-bit grayscale PNG: `channels=3` replicates the gray channel (16-bit is
  scaled to 8 bits).
* RGBA PNG, palette PNG (with or without a transparent index): `channels=3` expands the palette and drops
  alpha without compositing -- the same pixels as Pillow's `Image.convert("RGB")`.
* CMYK / YCCK JPEG: converted to RGB by TensorFlow's JPEG decoder, equal to Pillow's conversion.
* JPEG in general: `dct_method="INTEGER_ACCURATE"` (libjpeg's ISLOW, Pillow's default) gives exactly
  Pillow's pixels; TensorFlow's default (IFAST) is up to ~17 levels off, so JPEGs go through
  `tf.io.decode_jpeg` rather than `tf.io.decode_image`.
* GIF: the first frame (`expand_animations=False`); BMP and WebP decode; 1x1 images decode.
* truncated JPEG or PNG, garbage bytes, empty strings, TIFF and other formats: the op raises
  `InvalidArgumentError`. A graph cannot catch that, and inside `Dataset.map` it ends the whole iterator.

Skipping design. `decode_with_fallback` keeps every example in its place: a good image passes through with
`SKIPPED_KEY` False; a failing one is replaced by a black 1x1 RGB image with `SKIPPED_KEY` True, its other
fields kept. A batch therefore always covers the same stream positions (exact resumption, and every process
yields the same number of batches), and the flag travels with the batch to the host, where the pipeline counts
it (`num_skipped` of its iterator), names the file in the log, and masks the example out of the loss and the
metrics.

tf.data can only catch a failure by dropping the element (`ignore_errors`), so the stream is cut into chunks of
`chunk_size` consecutive examples, each decoded in a small dataset of its own:

1. every example of the chunk is decoded, failures dropped, each success tagged with its place j in the chunk;
2. only if one failed, the chunk is decoded again example by example, each in a one-element dataset that falls
   back to the placeholder (`ignore_errors`, then the fallback concatenated after it, first element kept);
3. a scan keeps the successes of step 1 up to the first missing place and takes the rest from step 2.

A parallel deterministic `interleave` runs the chunks concurrently, in order. A chunk's dataset instantiates its
functions once, so the cost is paid per chunk rather than per image: RGNet's 300-px input on 2 cores (in-memory
JPEGs, three rounds each) went from 520-700 img/s with one dataset per image to 780-890 with chunks of 64 (780-970
with a plain map that would crash on a corrupt file); chunks of 32 gave 640-850, of 128 the same as 64. Step 2
decodes a chunk twice, which only happens to a chunk that holds an undecodable file. Memory: each worker holds up
to a chunk of decoded images until the batch reads them (VG's 1024x768 JPEGs on 2 cores: peak RSS 1.0 -> 1.5 GB),
so with AUTOTUNE the workers are capped at MAX_WORKERS = 16, about 2.6 GB of 1024x768 images at most; a smaller
`chunk_size` trades speed for memory (32: 1.24 GB, 16: 1.16 GB peak on 2 cores, and 12% / 30% slower). The pipeline
passes only the decoding half of a fused decode + resize op (`transforms`, `.stages`) and resizes in its ordinary
parallel map.

The pipeline takes the chunk size from `config.data.decode_chunk_size`; its default, -1, gives a process's split of
at least 2048 examples its source's chunk (64 for photo datasets, 1 for the generated ones, whose small images
decode in microseconds, so that the chunks' extra per-element steps cost more than they save) and smaller splits
one example per dataset: a chunked pipeline's functions take about 0.2 s longer to instantiate at each new
iterator.
"""

from __future__ import annotations

import os
from typing import Callable

import tensorflow as tf

SKIPPED_KEY = "_skipped"  # bool per example: True where the image could not be decoded
CHUNK_SIZE = 64  # examples decoded in one dataset by decode_with_fallback (see above)
MAX_WORKERS = 16  # chunks decoded at once when num_parallel_calls is AUTOTUNE (bounds the memory, see above)


def to_rgb(image: tf.Tensor) -> tf.Tensor:
  """Converts a uint8 (H, W, C) image with C in {1, 2, 3, 4} (gray, gray+alpha, RGB, RGBA) to RGB."""
  channels = image.shape[-1]
  if channels == 3:
    return image
  if channels in (1, 2):
    return tf.repeat(image[..., :1], 3, axis=-1)
  if channels == 4:
    return image[..., :3]
  if channels is None:
    num = tf.shape(image)[-1]
    rgb = tf.switch_case(
      tf.clip_by_value(num - 1, 0, 3),
      [
        lambda: tf.repeat(image[..., :1], 3, axis=-1),
        lambda: tf.repeat(image[..., :1], 3, axis=-1),
        lambda: image[..., :3],
        lambda: image[..., :3],
      ],
    )
    return tf.ensure_shape(rgb, [None, None, 3])
  raise ValueError(f"image must have 1 to 4 channels, got shape {image.shape}")


def decode_rgb(image: tf.Tensor) -> tf.Tensor:
  """Decodes JPEG/PNG/GIF/BMP/WebP bytes (or converts a uint8 array) to uint8 RGB (H, W, 3); raises if corrupt."""
  if image.dtype == tf.uint8:
    if image.shape.rank != 3:
      raise ValueError(f"a decoded image must be (H, W, C) uint8, got shape {image.shape}")
    return to_rgb(image)
  if image.dtype != tf.string:
    raise TypeError(f"image must be encoded bytes (tf.string) or uint8 pixels, got {image.dtype.name}")
  rgb = tf.cond(
    tf.io.is_jpeg(image),
    lambda: tf.io.decode_jpeg(image, channels=3, dct_method="INTEGER_ACCURATE"),
    lambda: tf.io.decode_image(image, channels=3, expand_animations=False),
  )
  return tf.ensure_shape(rgb, [None, None, 3])


def decode_workers(num_parallel_calls: int) -> int:
  """Chunks decode_with_fallback decodes at once: num_parallel_calls, or for AUTOTUNE the usable cores up to
  MAX_WORKERS."""
  if num_parallel_calls != tf.data.AUTOTUNE:
    return num_parallel_calls
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
  return max(1, min(cores, MAX_WORKERS))


def decode_with_fallback(
  ds: tf.data.Dataset,
  decode_fn: Callable[[dict], dict],
  *,
  image_key: str = "image",
  num_parallel_calls: int = tf.data.AUTOTUNE,
  chunk_size: int = CHUNK_SIZE,
) -> tf.data.Dataset:
  """Applies `decode_fn` to every example; a failing one stays, with a black 1x1 image and SKIPPED_KEY True."""
  if not (isinstance(chunk_size, int) and chunk_size > 0):
    raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")

  @tf.autograph.experimental.do_not_convert
  def decoded(example):
    return {**decode_fn(example), SKIPPED_KEY: tf.constant(False)}

  @tf.autograph.experimental.do_not_convert
  def fallback(example):
    # Run decode_fn on a valid uint8 image so the fallback has exactly the structure of a success.
    placeholder = {**example, image_key: tf.zeros([1, 1, 3], tf.uint8)}
    return {**decode_fn(placeholder), SKIPPED_KEY: tf.constant(True)}

  @tf.autograph.experimental.do_not_convert
  def one_example(example):
    single = tf.data.Dataset.from_tensors(example)
    attempt = single.map(decoded).ignore_errors(log_warning=False)
    return attempt.concatenate(single.map(fallback)).take(1)

  @tf.autograph.experimental.do_not_convert
  def in_order(expected, item):
    place, example = item
    keep = tf.equal(place, expected)
    return expected + tf.cast(keep, tf.int64), (keep, example)

  @tf.autograph.experimental.do_not_convert
  def one_chunk(window):
    examples = tf.data.Dataset.zip(window)
    cardinality = examples.cardinality()  # a window knows its length; the last one may be short
    size = tf.where(cardinality >= 0, cardinality, tf.constant(chunk_size, tf.int64))
    attempt = examples.enumerate().map(lambda j, ex: (j, decoded(ex))).ignore_errors(log_warning=False)
    # Opened only when `attempt` ends before `size` examples were kept, i.e. after a failure.
    retry = examples.flat_map(one_example).enumerate()
    kept = attempt.concatenate(retry).scan(tf.constant(0, tf.int64), in_order).filter(lambda keep, _: keep)
    return kept.map(lambda _, example: example).take(size)

  workers = decode_workers(num_parallel_calls)
  if chunk_size == 1:  # one dataset per example: the retry path alone
    return ds.interleave(one_example, cycle_length=workers, num_parallel_calls=workers, deterministic=True)
  return ds.window(chunk_size).interleave(
    one_chunk, cycle_length=workers, block_length=chunk_size, num_parallel_calls=workers, deterministic=True
  )
