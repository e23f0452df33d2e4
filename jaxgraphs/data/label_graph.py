"""Label co-occurrence graph of SSGRL: A[i, j] = P(class j present | class i present), counted on training labels.

Definition (the SSGRL group's later code): A[i, j] = #images with both i and j / #images with i,
diagonal 1, no threshold. A class without any training image gets the row e_i (1 on the diagonal, 0 elsewhere)
instead of 0/0 (docs/paper_details.md, SSGRL label graph and word vectors). Counts come from a multi-hot NumPy
matrix or from one pass over a TFDS split that decodes only the label feature; the pass is cached as a .npy of pair
counts plus a .json describing it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Iterable, Sequence

import numpy as np
from absl import logging

# Where each TFDS family keeps the per-image class list (a sequence of ClassLabel ids).
DEFAULT_LABEL_KEYS = {"coco": "objects/label", "voc": "labels"}


def default_label_key(dataset: str) -> str:
  """The label feature path of a TFDS dataset name such as 'coco/2014' ('labels' when the family is unknown)."""
  return DEFAULT_LABEL_KEYS.get(dataset.split("/")[0].split(":")[0], "labels")


def class_label_feature(features, label_key: str):
  """Walks 'a/b' through a TFDS FeaturesDict to its ClassLabel, looking through Sequence wrappers."""
  feature = features
  for part in label_key.split("/"):
    try:
      feature = feature[part]
    except (KeyError, TypeError) as error:
      raise KeyError(f"label_key={label_key!r}: the dataset has no feature {part!r}") from error
  while not hasattr(feature, "num_classes") and hasattr(feature, "feature"):
    feature = feature.feature
  if not hasattr(feature, "num_classes"):
    raise TypeError(f"label_key={label_key!r} is a {type(feature).__name__}, not a ClassLabel (or a sequence of them)")
  return feature


def multi_hot(label_lists: Iterable[Sequence[int]], num_classes: int) -> np.ndarray:
  """Per-image lists of class ids (repeats allowed) -> (M, C) uint8 multi-hot matrix."""
  rows = []
  for index, labels in enumerate(label_lists):
    labels = np.asarray(labels, np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
      raise ValueError(f"image {index}: class ids {labels.tolist()} outside [0, {num_classes})")
    row = np.zeros(num_classes, np.uint8)
    row[labels] = 1
    rows.append(row)
  return np.stack(rows) if rows else np.zeros((0, num_classes), np.uint8)


def cooccurrence_counts(labels: np.ndarray) -> np.ndarray:
  """(M, C) multi-hot -> (C, C) int64 counts: [i, j] = #images with both i and j, [i, i] = #images with i."""
  labels = np.asarray(labels)
  if labels.ndim != 2:
    raise ValueError(f"labels must be a (num_images, num_classes) multi-hot matrix, got shape {labels.shape}")
  if not np.isin(labels, (0, 1)).all():
    raise ValueError(f"labels must be multi-hot (0/1 or bool); got values {np.unique(labels)[:10].tolist()}")
  labels = labels.astype(np.int64)
  return labels.T @ labels


def adjacency_from_counts(counts: np.ndarray) -> np.ndarray:
  """(C, C) pair counts -> float32 conditional probabilities with diagonal 1; classes never seen give e_i rows."""
  counts = np.asarray(counts, np.float64)
  class_counts = np.diag(counts)
  adjacency = np.divide(counts, class_counts[:, None], out=np.zeros_like(counts), where=class_counts[:, None] > 0)
  np.fill_diagonal(adjacency, 1.0)
  return adjacency.astype(np.float32)


def cooccurrence_adjacency(labels: np.ndarray) -> np.ndarray:
  """(M, C) multi-hot training labels -> (C, C) float32 SSGRL adjacency."""
  return adjacency_from_counts(cooccurrence_counts(labels))


def tfds_cooccurrence_counts(
  dataset: str,
  split: str,
  label_key: str | None = None,
  data_dir: str | None = None,
  batch_size: int = 1024,
  log_every: int = 10_000,
) -> tuple[np.ndarray, int]:
  """One pass over a TFDS split decoding only its labels -> ((C, C) int64 pair counts, number of images)."""
  import tensorflow as tf
  import tensorflow_datasets as tfds

  label_key = label_key or default_label_key(dataset)
  builder = tfds.builder(dataset, data_dir=data_dir)
  num_classes = class_label_feature(builder.info.features, label_key).num_classes
  parts = label_key.split("/")
  spec: dict | bool = True
  for part in reversed(parts):
    spec = {part: spec}
  ds = builder.as_dataset(split=split, decoders=tfds.decode.PartialDecoding(spec), shuffle_files=False)

  def to_multi_hot(example):
    for part in parts:
      example = example[part]
    hits = tf.reduce_sum(tf.one_hot(tf.reshape(example, [-1]), num_classes, dtype=tf.int32), axis=0)
    return tf.cast(hits > 0, tf.int32)

  ds = ds.map(to_multi_hot, num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size).prefetch(2)
  counts = np.zeros((num_classes, num_classes), np.int64)
  num_images, next_log, start = 0, log_every, time.time()
  for batch in tfds.as_numpy(ds):
    batch = batch.astype(np.int64)
    counts += batch.T @ batch
    num_images += len(batch)
    if num_images >= next_log:
      logging.info(
        "label co-occurrence %s[%s]: %d images (%.0f images/s)",
        dataset,
        split,
        num_images,
        num_images / max(time.time() - start, 1e-9),
      )
      next_log += log_every
  logging.info("label co-occurrence %s[%s]: done, %d images, %d classes", dataset, split, num_images, num_classes)
  return counts, num_images


def cache_stem(dataset: str, version: str, split: str, label_key: str) -> str:
  """File name stem keyed by dataset, version, split and label key (a hash keeps distinct slices apart)."""
  readable = re.sub(r"[^A-Za-z0-9.]+", "-", f"{dataset}_{version}_{split}").strip("-")
  digest = hashlib.sha1(f"{dataset}|{version}|{split}|{label_key}".encode()).hexdigest()[:8]
  return f"{readable}_{digest}_cooccurrence"


def tfds_cooccurrence_adjacency(
  dataset: str, split: str, cache_dir: str | None = None, label_key: str | None = None, data_dir: str | None = None
) -> np.ndarray:
  """SSGRL adjacency of a TFDS split, counted once and cached in `cache_dir` (default: the dataset's directory)."""
  import tensorflow_datasets as tfds

  label_key = label_key or default_label_key(dataset)
  builder = tfds.builder(dataset, data_dir=data_dir)
  version = str(builder.info.version)
  cache_dir = cache_dir or builder.data_dir
  stem = os.path.join(cache_dir, cache_stem(dataset, version, split, label_key))
  description = {"dataset": dataset, "version": version, "split": split, "label_key": label_key}
  if os.path.exists(stem + ".npy") and os.path.exists(stem + ".json"):
    with open(stem + ".json") as f:
      cached = json.load(f)
    if {k: cached.get(k) for k in description} == description:
      logging.info("label co-occurrence: using cached %s.npy", stem)
      return adjacency_from_counts(np.load(stem + ".npy"))
    logging.warning("label co-occurrence: %s.json describes %s, not %s; recounting", stem, cached, description)

  counts, num_images = tfds_cooccurrence_counts(dataset, split, label_key, data_dir)
  os.makedirs(cache_dir, exist_ok=True)
  metadata = dict(description, num_images=num_images, num_classes=len(counts), class_counts=np.diag(counts).tolist())
  # Write-then-rename so an interrupted pass never leaves a half-written cache behind.
  np.save(stem + ".tmp.npy", counts)
  with open(stem + ".tmp.json", "w") as f:
    json.dump(metadata, f, indent=1)
  os.replace(stem + ".tmp.npy", stem + ".npy")
  os.replace(stem + ".tmp.json", stem + ".json")
  return adjacency_from_counts(counts)
