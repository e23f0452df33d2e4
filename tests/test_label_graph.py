"""Label co-occurrence adjacency: hand-counted toy labels, a streamed TFDS pass (mock data), the cache."""

import json
import logging

import numpy as np
import pytest

from jaxgraphs.data import label_graph
from jaxgraphs.data.label_graph import (
  adjacency_from_counts,
  cache_stem,
  cooccurrence_adjacency,
  cooccurrence_counts,
  default_label_key,
  multi_hot,
)

# Five classes, four images; class 3 never appears, class 4 appears once.
TOY_LABELS = [[0, 1], [0, 2, 2], [2, 1, 0], [1, 4]]
TOY_ADJACENCY = np.array(
  [
    [1, 2 / 3, 2 / 3, 0, 0],  # 3 images with 0: 2 with 1, 2 with 2
    [2 / 3, 1, 1 / 3, 0, 1 / 3],  # 3 images with 1: 2 with 0, 1 with 2, 1 with 4
    [1, 1 / 2, 1, 0, 0],  # 2 images with 2: both with 0, 1 with 1
    [0, 0, 0, 1, 0],  # absent class: identity row, no NaN
    [0, 1, 0, 0, 1],  # 1 image with 4: with 1
  ],
  np.float32,
)


def test_multi_hot_ignores_repeats_and_allows_empty_images():
  got = multi_hot(TOY_LABELS + [[]], num_classes=5)
  assert got.dtype == np.uint8 and got.shape == (5, 5)
  np.testing.assert_array_equal(got[1], [1, 0, 1, 0, 0])
  np.testing.assert_array_equal(got[4], 0)


def test_counts_and_adjacency_match_hand_counts():
  labels = multi_hot(TOY_LABELS, num_classes=5)
  counts = cooccurrence_counts(labels)
  np.testing.assert_array_equal(np.diag(counts), [3, 3, 2, 0, 1])
  assert counts[0, 1] == 2 and counts[1, 2] == 1 and counts[1, 4] == 1
  adjacency = cooccurrence_adjacency(labels)
  assert adjacency.dtype == np.float32 and np.isfinite(adjacency).all()
  np.testing.assert_allclose(adjacency, TOY_ADJACENCY, rtol=1e-6)


def test_adjacency_is_not_symmetric_and_empty_label_rows_change_nothing():
  labels = multi_hot(TOY_LABELS, num_classes=5)
  with_empty = np.concatenate([labels, np.zeros((3, 5), np.uint8)])
  np.testing.assert_array_equal(cooccurrence_adjacency(with_empty), cooccurrence_adjacency(labels))
  adjacency = cooccurrence_adjacency(labels.astype(bool))
  assert adjacency[2, 0] == 1 and adjacency[0, 2] == pytest.approx(2 / 3)


def test_bad_labels_raise():
  with pytest.raises(ValueError, match="multi-hot"):
    cooccurrence_counts(np.array([[0, 2]]))
  with pytest.raises(ValueError, match=r"shape \(3,\)"):
    cooccurrence_counts(np.array([0, 1, 1]))
  with pytest.raises(ValueError, match=r"image 1: class ids \[5\] outside \[0, 5\)"):
    multi_hot([[0], [5]], num_classes=5)


def test_default_label_keys():
  assert default_label_key("coco/2014") == "objects/label"
  assert default_label_key("voc/2007:5.0.0") == "labels"
  assert default_label_key("builtin_shapes") == "labels"


def test_cache_stem_keys_on_dataset_version_and_split():
  stems = {
    cache_stem("coco/2014", "1.1.0", split, "objects/label")
    for split in ("train", "train[:90%]", "train[90%:]", "validation")
  }
  assert len(stems) == 4
  assert cache_stem("coco/2014", "1.1.0", "train", "objects/label") != cache_stem(
    "coco/2014", "1.2.0", "train", "objects/label"
  )
  assert all("/" not in stem and "[" not in stem for stem in stems)


@pytest.mark.parametrize("dataset", ["coco/2014", "voc/2007"])
def test_streamed_tfds_counts_match_numpy(dataset, caplog):
  tfds = pytest.importorskip("tensorflow_datasets")
  key = default_label_key(dataset)
  caplog.set_level(logging.INFO, logger="absl")
  with tfds.testing.mock_data(num_examples=7):
    counts, num_images = label_graph.tfds_cooccurrence_counts(dataset, "train", batch_size=3, log_every=2)
    builder = tfds.builder(dataset)
    num_classes = label_graph.class_label_feature(builder.info.features, key).num_classes
    parts = key.split("/")
    spec = {parts[0]: {parts[1]: True}} if len(parts) == 2 else {key: True}
    lists = []
    for example in tfds.as_numpy(builder.as_dataset(split="train", decoders=tfds.decode.PartialDecoding(spec))):
      for part in parts:
        example = example[part]
      lists.append(example)
  assert num_images == 7
  np.testing.assert_array_equal(counts, cooccurrence_counts(multi_hot(lists, num_classes)))
  assert any("6 images" in message for message in caplog.messages)


def test_tfds_adjacency_is_cached(tmp_path, monkeypatch):
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=5):
    first = label_graph.tfds_cooccurrence_adjacency("coco/2014", "train", cache_dir=str(tmp_path))
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and files[0].endswith("_cooccurrence.json") and files[1].endswith(".npy")
    metadata = json.loads((tmp_path / files[0]).read_text())
    assert metadata["dataset"] == "coco/2014" and metadata["split"] == "train" and metadata["num_images"] == 5
    assert metadata["version"] == str(tfds.builder("coco/2014").info.version)

    def must_not_recount(*args, **kwargs):
      raise AssertionError("the cached counts were not used")

    monkeypatch.setattr(label_graph, "tfds_cooccurrence_counts", must_not_recount)
    second = label_graph.tfds_cooccurrence_adjacency("coco/2014", "train", cache_dir=str(tmp_path))
    with pytest.raises(AssertionError, match="not used"):
      label_graph.tfds_cooccurrence_adjacency("coco/2014", "validation", cache_dir=str(tmp_path))
  np.testing.assert_array_equal(first, second)
  assert first.shape == (80, 80) and np.all(np.diag(first) == 1) and np.isfinite(first).all()
  np.testing.assert_array_equal(first, adjacency_from_counts(np.load(tmp_path / files[1])))
