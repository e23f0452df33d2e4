"""What a model may ask of its data beyond the class names: class word vectors and the label co-occurrence graph.

A model factory lists its needs (`jaxgraphs.models.data_requests`), e.g. SSGRL's
{'word_vectors': {...}, 'label_adjacency': {...}}; `provide` computes them here and returns the dataset info
with the arrays filled in, so that models never read files or datasets themselves.

Word vectors. A request's `source` is the .npy written by `python -m jaxgraphs.tools.word_vectors` (GloVe), or
"builtin": a fixed table with no semantics, one random vector per word drawn from a generator seeded by the
word's SHA-256 (spread 0.4, about GloVe 840B's), a class name getting the mean over its words like the GloVe
path. For builtin_shapes ("red circle", "blue star", ...) it gives classes of one colour or one shape a shared
component, which is all the structure GloVe could add there; on real datasets it is only for tests.

Label adjacency. A[i, j] = P(j | i), counted on the train split's positive labels once and cached beside the
dataset (or in the request's `cache_dir`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Any, Mapping, Sequence

import numpy as np

from jaxgraphs.errors import ConfigError

BUILTIN_WORD_VECTORS = "builtin"
BUILTIN_WORD_SCALE = 0.4
# VOC writes these names as one token, which GloVe does not know.
DEFAULT_ALIASES = {"diningtable": "dining table", "pottedplant": "potted plant", "tvmonitor": "tv monitor"}
MAKE_COMMAND = "python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset={dataset} --out={out}"


def class_words(name: str, aliases: dict[str, str] | None = None) -> list[str]:
  """Lower-cased GloVe words of one class name, after alias expansion."""
  aliases = DEFAULT_ALIASES if aliases is None else aliases
  phrase = aliases.get(name.lower(), name)
  return phrase.lower().replace("_", " ").split()


def _word_vector(word: str, dim: int) -> np.ndarray:
  seed = int.from_bytes(hashlib.sha256(word.encode("utf-8")).digest()[:8], "little")
  return np.random.default_rng(seed).normal(0.0, BUILTIN_WORD_SCALE, dim).astype(np.float32)


def builtin_word_vectors(class_names: Sequence[str], dim: int = 300) -> np.ndarray:
  """(C, dim) float32: per class the mean of fixed random vectors, one per word, each seeded by its word."""
  rows = []
  for name in class_names:
    words = class_words(name)
    if not words:
      raise ValueError(f"class name {name!r} has no words for the builtin word vectors")
    rows.append(np.mean([_word_vector(word, dim) for word in words], axis=0))
  return np.stack(rows).astype(np.float32)


def load_word_vectors(
  path: str, num_classes: int, dim: int = 300, class_names: Sequence[str] | None = None, dataset: str | None = None
) -> np.ndarray:
  """Loads the (num_classes, dim) float32 vectors made by the word_vectors tool, with errors saying how to fix
  the file."""
  if not os.path.exists(path):
    command = MAKE_COMMAND.format(dataset=dataset or "<tfds name, e.g. coco/2014>", out=path)
    raise FileNotFoundError(f"word vectors {path} do not exist; make them with: {command}")
  vectors = np.load(path)
  if vectors.shape != (num_classes, dim):
    raise ValueError(
      f"word vectors {path} have shape {vectors.shape}, expected {(num_classes, dim)} "
      f"({num_classes} classes, {dim}-d vectors)"
    )
  if not np.isfinite(vectors).all():
    raise ValueError(f"word vectors {path} contain NaN or Inf")
  json_path = os.path.splitext(path)[0] + ".json"
  if class_names is not None and os.path.exists(json_path):
    with open(json_path) as f:
      stored = json.load(f).get("class_names")
    if stored is not None and list(stored) != list(class_names):
      first = next(i for i, (a, b) in enumerate(zip(stored, class_names)) if a != b)
      raise ValueError(
        f"word vectors {path} were made for other classes ({json_path}): class {first} is "
        f"{stored[first]!r} there, {class_names[first]!r} here"
      )
  return vectors.astype(np.float32)


def class_word_vectors(request: Mapping[str, Any], info) -> np.ndarray:
  """The word vectors of `request` = {'source': 'builtin' or a .npy path, 'dim': int, 'key': config key}."""
  source, dim, key = request["source"], int(request["dim"]), request["key"]
  if not source:
    raise ConfigError(
      f"{key} is empty; give the .npy made by `python -m jaxgraphs.tools.word_vectors "
      f"--dataset={info.tfds_name} ...` or '{BUILTIN_WORD_VECTORS}'"
    )
  if source == BUILTIN_WORD_VECTORS:
    return builtin_word_vectors(info.class_names, dim)
  try:
    return load_word_vectors(os.path.expanduser(source), info.num_classes, dim, info.class_names, info.tfds_name)
  except (FileNotFoundError, ValueError) as error:
    raise ConfigError(f"{key}: {error}") from None


def train_adjacency(request: Mapping[str, Any], info, data_config) -> np.ndarray:
  """The co-occurrence adjacency of the train split (request = {'cache_dir': str or ''})."""
  from jaxgraphs.data import label_graph, sources

  sources.get_source(data_config.source).builder(data_config.data_dir, data_config.download)  # makes generated ones
  label_key = info.positive_label_key
  try:
    adjacency = label_graph.tfds_cooccurrence_adjacency(
      info.tfds_name,
      info.train_split,
      cache_dir=request.get("cache_dir") or None,
      label_key=label_key,
      data_dir=data_config.data_dir,
    )
  except AssertionError as error:  # TFDS's "could not find data" of an unprepared dataset (and no cached counts)
    raise ConfigError(
      f"config.data.source: the label graph is counted on {info.tfds_name}:{info.train_split}, "
      f"which is not prepared ({error}); run `python -m jaxgraphs.tools.prepare_dataset "
      f"--dataset={info.tfds_name}` first"
    ) from None
  if adjacency.shape != (info.num_classes,) * 2:
    raise ValueError(
      f"{info.tfds_name}:{info.train_split} label feature {label_key!r} has "
      f"{len(adjacency)} classes, the source names {info.num_classes}"
    )
  return adjacency


def provide(info, requests: Mapping[str, Mapping[str, Any]], data_config):
  """`info` (pipeline.DatasetInfo) with the requested 'word_vectors' / 'label_adjacency' filled in."""
  unknown = sorted(set(requests) - {"word_vectors", "label_adjacency"})
  if unknown:
    raise ValueError(f"the model asks the data for {unknown}, which jaxgraphs.data.label_priors cannot provide")
  filled = {}
  if "word_vectors" in requests:
    filled["word_vectors"] = class_word_vectors(requests["word_vectors"], info)
  if "label_adjacency" in requests:
    filled["label_adjacency"] = train_adjacency(requests["label_adjacency"], info, data_config)
  return dataclasses.replace(info, **filled)
