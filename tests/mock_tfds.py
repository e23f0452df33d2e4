"""`tfds.testing.mock_data` with examples that respect nested sequences (every field of one object list
has the same length), which TFDS's own random generator does not guarantee for COCO's `objects`."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds


def _leaf(feature, rng: np.random.Generator, n: int | None):
  """A random value for one feature; `n` is the length of the enclosing sequence, if any."""
  shape = (n,) if n is not None else ()
  if isinstance(feature, tfds.features.Image):
    h, w = rng.integers(20, 48, size=2)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
  if isinstance(feature, tfds.features.ClassLabel):
    return rng.integers(0, feature.num_classes, size=shape)
  if isinstance(feature, tfds.features.BBoxFeature):
    low = rng.uniform(0.0, 0.5, size=shape + (2,))
    high = low + rng.uniform(0.1, 0.5, size=shape + (2,))
    return np.concatenate([low, high], axis=-1).astype(np.float32)
  if isinstance(feature, tfds.features.Text):
    return np.array([b"mock.jpg"] * n) if n is not None else "mock.jpg"
  dtype = feature.np_dtype
  full = shape + tuple(1 if d is None else d for d in feature.shape)
  if dtype == np.bool_:
    return rng.random(full) < 0.3
  if np.issubdtype(dtype, np.integer):
    return rng.integers(0, 100, size=full).astype(dtype)
  return rng.random(full).astype(dtype)


def random_example(features, rng: np.random.Generator, n: int | None = None):
  """A random raw example for a FeaturesDict, one length per Sequence."""
  if isinstance(features, tfds.features.FeaturesDict):
    return {k: random_example(v, rng, n) for k, v in features.items()}
  if isinstance(features, tfds.features.Sequence):
    length = int(rng.integers(1, 5))
    inner = features.feature
    if isinstance(inner, tfds.features.FeaturesDict):
      return {k: random_example(v, rng, length) for k, v in inner.items()}
    return _leaf(inner, rng, length)
  return _leaf(features, rng, n)


def mock_data(num_examples: int, seed: int = 0):
  """Context manager: every TFDS dataset serves `num_examples` consistent random examples per split."""

  def as_dataset(builder, split, decoders=None, read_config=None, shuffle_files=False):
    del read_config, shuffle_files
    features = builder.info.features
    rng = np.random.default_rng([seed, len(str(split))])
    serialized = [features.serialize_example(random_example(features, rng)) for _ in range(num_examples)]
    read_features = features
    if isinstance(decoders, tfds.decode.PartialDecoding):  # as DatasetBuilder does: parse only the subset
      read_features, decoders = decoders.extract_features(features), decoders.decoders
    return tf.data.Dataset.from_tensor_slices(serialized).map(
      lambda s: read_features.deserialize_example(s, decoders=decoders)
    )

  return tfds.testing.mock_data(
    num_examples=num_examples, as_dataset_fn=as_dataset, policy=tfds.testing.MockPolicy.USE_CODE
  )
