"""Undecodable images inside a prepared dataset: skipped, masked and counted in training and in evaluation.

A tiny `builtin_shapes` is prepared by TFDS, then some of its TFRecord entries are rewritten by hand with
garbage, truncated or empty image bytes, as a damaged copy or a faulty writer would leave them. Each kind of
source (multi-label, composition, scene graph) reads the damaged files with its own preprocessing and with
each paper's, and must keep every slot, batch shape and count exact.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from jaxgraphs.data import pipeline, sources
from jaxgraphs.data.builders import shapes
from jaxgraphs.tasks.multilabel import MultiLabelTask

NUM_TRAIN, NUM_VALIDATION = 6, 5
CONFIG = shapes.BuiltinShapesConfig(
  name="spoiled_test", image_size=32, num_train=NUM_TRAIN, num_validation=NUM_VALIDATION, num_test=1
)
# Example index -> how its stored image bytes are spoiled.
SPOIL_TRAIN = {1: lambda png: png[: len(png) // 2], 4: lambda png: b"\x00garbage, not an image" * 3}
SPOIL_VALIDATION = {2: lambda png: b""}
KINDS = {"multilabel": "builtin_shapes/tiny", "composition": "builtin_shapes/tiny:composition"}
KINDS["scene_graph"] = "builtin_shapes/tiny:scene_graph"
# The preprocessing each paper's configs use, read from the source of that paper's dataset.
PAPER_PP = {"multilabel": "coco/2014", "composition": "ava", "scene_graph": "vg150"}


def spoil_records(builder, split: str, spoilers: dict) -> list[int]:
  """Rewrites `split`'s TFRecord files with the image of each spoiled example replaced; returns their positions.

  Positions count records in file order (the order a one-process, unshuffled read yields them).
  """
  files = sorted(builder.data_path.glob(f"{builder.name}-{split}.tfrecord-*"))
  assert files, f"no TFRecord files for {split} in {builder.data_path}"
  positions, position = {}, 0
  for path in files:
    records = list(tf.data.TFRecordDataset(str(path)).as_numpy_iterator())
    with tf.io.TFRecordWriter(str(path)) as writer:
      for record in records:
        example = tf.train.Example.FromString(record)
        index = example.features.feature["image/id"].int64_list.value[0] % 10_000_000
        if index in spoilers:
          image = example.features.feature["image"].bytes_list
          image.value[0] = spoilers[index](image.value[0])
          positions[index] = position
        writer.write(example.SerializeToString())
        position += 1
  assert sorted(positions) == sorted(spoilers)
  return sorted(positions.values())


@pytest.fixture(scope="module")
def spoiled(tmp_path_factory):
  """(data_dir, train positions, validation positions) of a prepared dataset with spoiled records."""
  data_dir = str(tmp_path_factory.mktemp("tfds"))
  builder = shapes.ensure_prepared(CONFIG, data_dir)
  return data_dir, spoil_records(builder, "train", SPOIL_TRAIN), spoil_records(builder, "validation", SPOIL_VALIDATION)


@pytest.fixture
def data_config(spoiled, monkeypatch):
  """Builds `config.data` for a source kind reading the spoiled dataset, optionally with a paper's pp."""
  data_dir = spoiled[0]

  def make(kind: str, paper_pp: bool = False):
    source = sources.SOURCES[KINDS[kind]]
    if paper_pp:
      paper = sources.SOURCES[PAPER_PP[kind]]
      source = dataclasses.replace(source, pp_train=paper.pp_train, pp_eval=paper.pp_eval)
    monkeypatch.setitem(
      sources.SOURCES,
      f"spoiled/{kind}",
      dataclasses.replace(source, prepare=lambda d: shapes.ensure_prepared(CONFIG, d)),
    )
    config = pipeline.default_data_config()
    config.source, config.data_dir = f"spoiled/{kind}", data_dir
    config.shuffle_buffer = 1  # file order, so a row's position says which example it holds
    return config

  return make


def _fixed_shapes(batch, spec, batch_size):
  """The batch holds exactly the arrays of the pipeline's spec, `batch_size` rows of its shapes and dtypes."""
  assert set(batch) == set(spec)
  for key, value in batch.items():
    assert value.shape == (batch_size,) + spec[key].shape[1:] and value.dtype == spec[key].dtype, key


def _is_fallback_image(image) -> bool:
  """The skipped slot holds the resized black placeholder: one value per channel over the whole image."""
  return bool(np.all(image == image[:1, :1]))


@pytest.mark.parametrize("paper_pp", [False, True], ids=["own_pp", "paper_pp"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_train_stream_keeps_masks_and_counts_spoiled_records(spoiled, data_config, kind, paper_pp):
  _, train_positions, _ = spoiled
  stream = pipeline.build_train_dataset(data_config(kind, paper_pp), local_batch_size=NUM_TRAIN, seed=0)
  expected = np.ones(NUM_TRAIN, np.float32)
  expected[train_positions] = 0
  for epoch in (1, 2):  # one batch = one epoch; the same records are skipped and counted again
    batch = next(stream)
    _fixed_shapes(batch, stream.batch_spec, NUM_TRAIN)
    np.testing.assert_array_equal(batch["mask"], expected)
    assert stream.num_skipped == epoch * len(SPOIL_TRAIN)
    for row in range(NUM_TRAIN):
      assert _is_fallback_image(batch["image"][row]) == (row in train_positions), row
    if "label_weights" in batch:
      assert not batch["label_weights"][train_positions].any() and batch["label_weights"][expected > 0].all()
  assert stream.position == 2 * NUM_TRAIN


@pytest.mark.parametrize("paper_pp", [False, True], ids=["own_pp", "paper_pp"])
@pytest.mark.parametrize("kind", list(KINDS))
def test_eval_keeps_masks_and_counts_spoiled_records(spoiled, data_config, kind, paper_pp):
  _, _, val_positions = spoiled
  batches, num_steps = pipeline.build_eval_dataset(
    data_config(kind, paper_pp), local_batch_size=4, process_index=0, process_count=1
  )
  expected = np.zeros(num_steps * 4, np.float32)  # rows past the split are padding
  expected[:NUM_VALIDATION] = 1
  expected[val_positions] = 0
  for _ in range(2):  # a second pass counts afresh, not on top of the first
    got = list(batches)
    assert len(got) == num_steps == 2
    for batch in got:
      _fixed_shapes(batch, batches.batch_spec, 4)
    np.testing.assert_array_equal(np.concatenate([b["mask"] for b in got]), expected)
    assert batches.num_skipped == len(SPOIL_VALIDATION)
    assert batches.num_examples == batches.num_examples_total == NUM_VALIDATION


def test_eval_count_is_complete_once_the_last_batch_is_read(spoiled, data_config):
  _, _, val_positions = spoiled
  batches, num_steps = pipeline.build_eval_dataset(
    data_config("multilabel"), local_batch_size=4, process_index=0, process_count=1
  )
  iterator = iter(batches)
  for _ in range(num_steps):  # read exactly num_steps batches and stop, without exhausting the iterator
    next(iterator)
  assert batches.num_skipped == len(SPOIL_VALIDATION)
  iterator.close()
  # A new pass starts from 0 and counts each batch as it is handed out.
  next(iter(batches))
  assert batches.num_skipped == int(val_positions[0] < 4)


def test_skipped_rows_do_not_shift_multilabel_metrics(spoiled, data_config):
  _, _, val_positions = spoiled
  batches, _ = pipeline.build_eval_dataset(
    data_config("multilabel"), local_batch_size=4, process_index=0, process_count=1
  )
  task = MultiLabelTask()
  evaluator, unmasked = task.make_evaluator(), task.make_evaluator()
  offset = 0
  for batch in batches:
    rows = np.arange(offset, offset + len(batch["mask"]))
    offset += len(rows)
    # Perfect scores for every real example; the spoiled one (whose labels are still stored) gets the opposite.
    logits = np.where(batch["labels"] > 0, 5.0, -5.0).astype(np.float32)
    logits[np.isin(rows, val_positions)] *= -1
    outputs = {k: np.asarray(v) for k, v in task.eval_outputs({"logits": logits}, batch).items()}
    evaluator.update(outputs)
    counted = np.isin(rows, np.arange(NUM_VALIDATION)).astype(np.float32)
    unmasked.update({**outputs, "mask": counted, "label_weights": np.ones_like(outputs["labels"])})
  assert evaluator.result()["mAP"] == pytest.approx(1.0)
  # Control: had the spoiled example counted, its wrong scores would have lowered the mAP.
  assert unmasked.result()["mAP"] < 0.99


def test_chunked_decode_gives_the_batches_of_one_dataset_per_example(spoiled, data_config):
  """decode_chunk_size 4 (chunks [0-3] and [4-5], each holding a spoiled record) against 1, with VG's pp (a fused
  decode_resize_long, boxes and relations); tests/test_image_decoding.py covers chunk boundaries in detail."""
  kind = "scene_graph"

  def batches(chunk_size):
    config = data_config(kind, paper_pp=True)
    config.decode_chunk_size = chunk_size
    train = pipeline.build_train_dataset(config, local_batch_size=NUM_TRAIN, seed=3)
    evaluation, _ = pipeline.build_eval_dataset(config, local_batch_size=4, process_index=0, process_count=1)
    got = [next(train), next(train), *evaluation]
    return got, train.num_skipped, evaluation.num_skipped

  (chunked, train_skipped, eval_skipped), (reference, *counts) = batches(4), batches(1)
  assert [train_skipped, eval_skipped] == counts == [2 * len(SPOIL_TRAIN), len(SPOIL_VALIDATION)]
  for got, want in zip(chunked, reference, strict=True):
    assert set(got) == set(want)
    for key in want:
      np.testing.assert_array_equal(got[key], want[key], err_msg=key)


def test_decode_chunk_size_is_resolved_by_split_size_and_checked(data_config):
  config = data_config("multilabel")
  assert config.decode_chunk_size == -1  # the default
  assert pipeline.decode_chunk_size(config, pipeline.CHUNKED_DECODE_MIN_EXAMPLES) == 1  # generated images: 1
  config.source = "coco/2014"  # photos: chunks of 64 on a large split only
  assert pipeline.decode_chunk_size(config, pipeline.CHUNKED_DECODE_MIN_EXAMPLES - 1) == 1
  assert pipeline.decode_chunk_size(config, pipeline.CHUNKED_DECODE_MIN_EXAMPLES) == 64
  config.decode_chunk_size = 16
  assert pipeline.decode_chunk_size(config, 10) == 16
  config = data_config("multilabel")
  config.decode_chunk_size = 0
  with pytest.raises(ValueError, match="config.data.decode_chunk_size must be -1 .* got 0"):
    pipeline.build_train_dataset(config, local_batch_size=2, seed=0)
