"""Input pipeline: batch contract, bad images, determinism, exact resumption, per-process eval padding, sources.

Most tests read a tiny TFDS dataset prepared from Pillow-written files (one of every awkward kind) whose
example i has the multi-hot labels of i's binary digits, so a batch row tells which example it holds.
COCO and VOC go through `tfds.testing.mock_data` with hand-written raw examples.
"""

import dataclasses
import io
import math

import ml_collections
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from jaxgraphs.data import pipeline, sources, transforms

NUM_BITS = 8
TRAIN_SIZE, VAL_START, VAL_SIZE = 20, 100, 11
BAD_TRAIN = {3, 6}  # truncated JPEG, garbage bytes
BAD_VAL = {104}
PP = "decode|resize(8)|flip_lr|value_range(0, 1)"
PP_EVAL = "decode|resize(8)|value_range(0, 1)"


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
  buf = io.BytesIO()
  image.save(buf, fmt, **kwargs)
  return buf.getvalue()


def image_file(i: int) -> bytes:
  """Example i's file: mostly small RGB JPEG/PNGs, plus every awkward case the pipeline must survive."""
  rgb = np.random.default_rng(i).integers(0, 256, (9 + i % 4, 11 + i % 3, 3), dtype=np.uint8)
  kinds = {
    3: lambda: _encode(Image.fromarray(rgb), "JPEG")[:150],  # truncated
    6: lambda: b"\x00not an image at all" * 5,
    104: lambda: b"",
    5: lambda: _encode(Image.fromarray(rgb[..., 0]), "PNG"),  # grayscale
    7: lambda: _encode(Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA"), "PNG"),
    9: lambda: _encode(Image.fromarray(rgb).convert("P", palette=Image.ADAPTIVE, colors=4), "PNG"),
    10: lambda: _encode(Image.fromarray(rgb).convert("CMYK"), "JPEG"),
    11: lambda: _encode(Image.fromarray(rgb[:1, :1]), "PNG"),  # 1 x 1
  }
  return kinds.get(i, lambda: _encode(Image.fromarray(rgb), "JPEG" if i % 2 else "PNG"))()


def label_bits(i: int) -> list[int]:
  return [c for c in range(NUM_BITS) if (i >> c) & 1]


def example_ids(batch) -> np.ndarray:
  """The example index each row holds, read back from its labels."""
  return (batch["labels"] @ (2 ** np.arange(NUM_BITS))).astype(int)


class JaxgraphsPipelineTestImages(tfds.core.GeneratorBasedBuilder):
  """Tiny dataset for these tests: example i is labelled with the binary digits of i."""

  VERSION = tfds.core.Version("1.0.0")

  def _info(self):
    label = tfds.features.ClassLabel(num_classes=NUM_BITS)
    return tfds.core.DatasetInfo(
      builder=self,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(),
          "image/filename": tfds.features.Text(),
          "labels": tfds.features.Sequence(label),
          "objects": tfds.features.Sequence({"bbox": tfds.features.BBoxFeature(), "label": label}),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    return {"train": self._generate_examples(0, TRAIN_SIZE), "validation": self._generate_examples(VAL_START, VAL_SIZE)}

  def _generate_examples(self, start, count):
    for i in range(start, start + count):
      labels = label_bits(i)
      # Object k spans x in [0.1 k, 0.1 k + 0.05]: flips and padding are visible per row.
      boxes = np.float32([[0.2, 0.1 * k, 0.6, 0.1 * k + 0.05] for k in range(len(labels))]).reshape(-1, 4)
      yield (
        i,
        {
          "image": image_file(i),
          "image/filename": f"{i}.img",
          "labels": labels,
          "objects": {"bbox": boxes, "label": labels},
        },
      )


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  path = str(tmp_path_factory.mktemp("tfds"))
  JaxgraphsPipelineTestImages(data_dir=path).download_and_prepare()
  return path


@pytest.fixture
def cfg(data_dir, monkeypatch):
  monkeypatch.setitem(
    sources.SOURCES,
    "test_images",
    sources.Source(
      "jaxgraphs_pipeline_test_images",
      sources.class_label_example,
      lambda: tuple("abcdefgh"),
      "train",
      "validation",
      PP,
      PP_EVAL,
    ),
  )
  config = pipeline.default_data_config()
  config.source = "test_images"
  config.data_dir = data_dir
  config.shuffle_buffer = 64
  return config


def take(iterator, num_batches):
  return [next(iterator) for _ in range(num_batches)]


def stacked(batches, key):
  return np.concatenate([b[key] for b in batches])


# ---- train stream ------------------------------------------------------------------------------------
def test_train_batch_keys_dtypes_and_shapes(cfg):
  batch = next(pipeline.build_train_dataset(cfg, local_batch_size=4, seed=0))
  assert set(batch) == {"image", "labels", "label_weights", "mask"}
  assert batch["image"].shape == (4, 8, 8, 3) and batch["image"].dtype == np.float32
  assert batch["labels"].shape == batch["label_weights"].shape == (4, NUM_BITS)
  assert batch["mask"].shape == (4,)
  assert all(v.dtype == np.float32 for v in batch.values())
  assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0


def test_bad_images_are_masked_counted_and_good_awkward_ones_kept(cfg):
  stream = pipeline.build_train_dataset(cfg, local_batch_size=4, seed=0)
  epoch = take(stream, TRAIN_SIZE // 4)
  ids, mask, weights = stacked(epoch, "labels"), stacked(epoch, "mask"), stacked(epoch, "label_weights")
  ids = example_ids({"labels": ids})
  assert sorted(ids) == list(range(TRAIN_SIZE))  # every example has its slot, bad ones included
  for i, m, w in zip(ids, mask, weights):
    expected = 0.0 if i in BAD_TRAIN else 1.0
    assert m == expected, i
    np.testing.assert_array_equal(w, np.full(NUM_BITS, expected))
  assert stream.num_skipped == len(BAD_TRAIN)
  assert stream.position == TRAIN_SIZE
  # Example 0 has no labels: kept as an all-zero row that counts.
  row = list(ids).index(0)
  assert mask[row] == 1 and not epoch[row // 4]["labels"][row % 4].any()


def test_each_epoch_is_a_new_permutation(cfg):
  ids = example_ids(
    {"labels": stacked(take(pipeline.build_train_dataset(cfg, local_batch_size=5, seed=3), 12), "labels")}
  )
  epochs = ids.reshape(3, TRAIN_SIZE)
  for order in epochs:
    assert sorted(order) == list(range(TRAIN_SIZE))
  assert not np.array_equal(epochs[0], epochs[1]) and not np.array_equal(epochs[1], epochs[2])
  assert not np.array_equal(epochs[0], np.sort(epochs[0]))  # actually shuffled


def test_same_seed_same_batches_other_seed_other_batches(cfg):
  first = take(pipeline.build_train_dataset(cfg, local_batch_size=4, seed=7), 6)
  again = take(pipeline.build_train_dataset(cfg, local_batch_size=4, seed=7), 6)
  other = take(pipeline.build_train_dataset(cfg, local_batch_size=4, seed=8), 6)
  for key in first[0]:
    np.testing.assert_array_equal(stacked(first, key), stacked(again, key))
  assert not np.array_equal(stacked(first, "labels"), stacked(other, "labels"))


def test_resuming_at_start_example_gives_exactly_the_rest_of_the_stream(cfg):
  full = take(pipeline.build_train_dataset(cfg, local_batch_size=4, seed=1), 12)
  for start in (13, 20, 28):  # mid-batch, an epoch boundary, inside the second epoch
    resumed_iterator = pipeline.build_train_dataset(cfg, local_batch_size=4, seed=1, start_example=start)
    resumed = take(resumed_iterator, (48 - start) // 4)
    count = len(resumed) * 4
    for key in ("image", "labels", "label_weights", "mask"):
      np.testing.assert_array_equal(stacked(resumed, key), stacked(full, key)[start : start + count])
    assert resumed_iterator.position == start + count


def test_processes_read_disjoint_halves(cfg):
  seen = []
  for index in range(2):
    stream = pipeline.build_train_dataset(cfg, local_batch_size=5, seed=0, process_index=index, process_count=2)
    assert stream.num_examples == TRAIN_SIZE // 2
    seen.append(set(example_ids({"labels": stacked(take(stream, 2), "labels")})))
  assert seen[0].isdisjoint(seen[1]) and seen[0] | seen[1] == set(range(TRAIN_SIZE))


def test_boxes_are_padded_masked_truncated_and_flipped(cfg):
  cfg.max_boxes = 2
  cfg.pp_train = "decode|resize(8)|flip_lr(1.0)|value_range(0, 1)"
  stream = pipeline.build_train_dataset(cfg, local_batch_size=TRAIN_SIZE, seed=0)
  batch = next(stream)
  assert batch["boxes"].shape == (TRAIN_SIZE, 2, 4) and batch["box_mask"].shape == batch["box_labels"].shape
  for i, boxes, box_mask, box_labels, mask in zip(
    example_ids(batch), batch["boxes"], batch["box_mask"], batch["box_labels"], batch["mask"]
  ):
    labels = label_bits(i)[:2]
    n = len(labels)
    np.testing.assert_array_equal(box_mask, [float(k < n) * mask for k in range(2)])
    np.testing.assert_array_equal(box_labels[:n], labels)
    flipped = [[0.2, 1 - 0.1 * k - 0.05, 0.6, 1 - 0.1 * k] for k in range(n)]
    np.testing.assert_allclose(boxes[:n], np.float32(flipped).reshape(-1, 4), atol=1e-6)
    assert not boxes[n:].any()
  assert stream.num_truncated == sum(len(label_bits(i)) > 2 for i in range(TRAIN_SIZE))


# ---- evaluation --------------------------------------------------------------------------------------
@pytest.mark.parametrize("batch_size, processes", [(5, 2), (3, 3), (16, 2)])
def test_eval_counts_every_example_exactly_once_across_processes(cfg, batch_size, processes):
  counted, steps, skipped = [], set(), 0
  for index in range(processes):
    batches, num_steps = pipeline.build_eval_dataset(
      cfg, "validation", local_batch_size=batch_size, process_index=index, process_count=processes
    )
    steps.add(num_steps)
    got = list(batches)
    assert len(got) == num_steps == len(batches)
    for batch in got:
      assert batch["mask"].shape == (batch_size,) and batch["image"].shape == (batch_size, 8, 8, 3)
      real = batch["mask"] == 1
      counted += list(example_ids(batch)[real])
      assert not batch["label_weights"][~real].any()  # padding and skipped rows carry no weight
    skipped += batches.num_skipped
  assert len(steps) == 1  # every process runs the same number of steps (no collective deadlock)
  assert steps.pop() == math.ceil(math.ceil(VAL_SIZE / processes) / batch_size)
  assert skipped == len(BAD_VAL)
  assert sorted(counted) == sorted(set(range(VAL_START, VAL_START + VAL_SIZE)) - BAD_VAL)


def test_eval_skipped_image_is_counted_and_a_second_pass_is_identical(cfg):
  batches, _ = pipeline.build_eval_dataset(cfg, local_batch_size=4, process_index=0, process_count=1)
  first, second = list(batches), list(batches)
  for a, b in zip(first, second):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  assert batches.num_skipped == len(BAD_VAL)
  assert batches.num_examples == batches.num_examples_total == VAL_SIZE


def test_eval_with_a_process_that_has_fewer_batches_gets_fully_masked_ones(cfg):
  # 11 examples over 2 processes with batch 5: parts of 6 and 5 -> 2 steps each, the second part padded.
  batches, num_steps = pipeline.build_eval_dataset(cfg, local_batch_size=5, process_index=1, process_count=2)
  got = list(batches)
  assert num_steps == 2 and got[1]["mask"].sum() == 0 and not got[1]["image"].any()


# ---- errors ------------------------------------------------------------------------------------------
def test_unknown_source_names_the_config_key_and_the_valid_sources(cfg):
  cfg.source = "coco/2017"
  with pytest.raises(ValueError, match=r"config.data.source: unknown source 'coco/2017'; valid sources: .*coco/2014"):
    pipeline.build_train_dataset(cfg, local_batch_size=2, seed=0)


def test_pp_without_decode_or_without_fixed_size_fails_at_build_time(cfg):
  cfg.pp_train = "resize(8)|value_range(0, 1)"
  with pytest.raises(ValueError, match=r"config.data.pp_train: .* must start with 'decode'"):
    pipeline.build_train_dataset(cfg, local_batch_size=2, seed=0)
  cfg.pp_train = "decode|value_range(0, 1)"
  with pytest.raises(ValueError, match=r"config.data.pp_train: .* fixed-size"):
    pipeline.build_train_dataset(cfg, local_batch_size=2, seed=0)


# ---- real sources through tfds.testing.mock_data -------------------------------------------------------
def _jpeg() -> bytes:
  return _encode(Image.fromarray(np.full((12, 16, 3), 90, np.uint8)), "JPEG")


def _mock(raw_examples):
  """mock_data whose examples are `raw_examples`, serialised with the dataset's real features."""

  def as_dataset(builder, split, decoders=None, read_config=None, shuffle_files=False):
    del split, read_config, shuffle_files
    features = builder.info.features
    serialized = [features.serialize_example(ex) for ex in raw_examples]
    return tf.data.Dataset.from_tensor_slices(serialized).map(
      lambda s: features.deserialize_example(s, decoders=decoders)
    )

  # The default random examples cannot go through SkipDecoding: TFDS draws a different length for each
  # field of a Sequence (objects/bbox vs objects/label) and fails to encode them.
  return tfds.testing.mock_data(
    num_examples=len(raw_examples), as_dataset_fn=as_dataset, policy=tfds.testing.MockPolicy.USE_CODE
  )


def _objects(labels, **extra):
  n = len(labels)
  return {
    "bbox": np.tile(np.float32([[0.1, 0.2, 0.5, 0.6]]), (n, 1)).reshape(-1, 4),
    "label": labels,
    **{k: v(n) for k, v in extra.items()},
  }


def _eval_rows(source, **overrides):
  config = pipeline.default_data_config()
  config.source = source
  config.pp_eval = "decode|resize(8)|value_range(0, 1)"
  config.update(overrides)
  batches, _ = pipeline.build_eval_dataset(config, local_batch_size=8, process_index=0, process_count=1)
  batch = next(iter(batches))
  real = batch["mask"] == 1
  return batch["labels"][real], batch["label_weights"][real]


def test_coco_labels_are_multi_hot_and_unannotated_images_are_zero_rows():
  coco = [([0, 0, 79], 1), ([], 2), ([5, 17, 5], 3)]
  raw = [
    {
      "image": _jpeg(),
      "image/filename": f"{i}.jpg",
      "image/id": i,
      "objects": _objects(
        labels, area=lambda n: np.ones(n, np.int64), id=lambda n: np.arange(n), is_crowd=lambda n: np.zeros(n, bool)
      ),
    }
    for labels, i in coco
  ]
  with _mock(raw):
    labels, weights = _eval_rows("coco/2014")
  expected = np.zeros((3, 80), np.float32)
  expected[0, [0, 79]] = 1
  expected[2, [5, 17]] = 1
  np.testing.assert_array_equal(labels, expected)
  np.testing.assert_array_equal(weights, np.ones((3, 80)))


VOC = [  # (all object labels, labels of non-difficult objects)
  ([0, 5, 5], [0, 5]),
  ([3, 3, 14], [3]),  # class 14 only difficult
  ([7], []),  # every object difficult
]


def _voc_raw():
  return [
    {
      "image": _jpeg(),
      "image/filename": f"{i:06d}.jpg",
      "labels": sorted(set(all_)),
      "labels_no_difficult": sorted(set(easy)),
      "objects": _objects(
        all_,
        is_difficult=lambda n: np.zeros(n, bool),
        is_truncated=lambda n: np.zeros(n, bool),
        pose=lambda n: np.zeros(n, np.int64),
      ),
    }
    for i, (all_, easy) in enumerate(VOC)
  ]


@pytest.mark.parametrize("mode", ["ignore", "negative"])
def test_voc_difficult_only_classes_are_ignored_or_negative(mode):
  with _mock(_voc_raw()):
    labels, weights = _eval_rows("voc/2007", voc_difficult=mode)
  expected_labels = np.zeros((3, 20), np.float32)
  expected_weights = np.ones((3, 20), np.float32)
  for row, (all_, easy) in enumerate(VOC):
    expected_labels[row, easy] = 1
    if mode == "ignore":
      expected_weights[row, sorted(set(all_) - set(easy))] = 0
  np.testing.assert_array_equal(labels, expected_labels)
  np.testing.assert_array_equal(weights, expected_weights)


def test_bad_voc_difficult_value_names_the_key():
  with _mock(_voc_raw()), pytest.raises(ValueError, match="config.data.voc_difficult must be one of"):
    _eval_rows("voc/2007", voc_difficult="drop")


def test_dataset_info_resolves_source_defaults():
  config = pipeline.default_data_config()
  config.source = "voc/2007"
  info = pipeline.dataset_info(config)
  assert (info.num_classes, info.class_names[:2], info.train_split, info.eval_split) == (
    20,
    ("aeroplane", "bicycle"),
    "train+validation",
    "test",
  )
  config.source, config.eval_split = "coco/2014", "validation[:100]"
  info = pipeline.dataset_info(config)
  assert info.num_classes == 80 and info.class_names[9] == "traffic light" and info.eval_split == "validation[:100]"
  assert info.pp_train.startswith("decode|resize(640)|random_crop_choice")


def test_builtin_shapes_reads_as_multi_label(tmp_path, monkeypatch):
  from jaxgraphs.data.builders import shapes

  tiny = shapes.BuiltinShapesConfig(name="pipeline_test", image_size=32, num_train=2, num_validation=5, num_test=1)
  monkeypatch.setitem(
    sources.SOURCES,
    "builtin_shapes/pipeline_test",
    dataclasses.replace(
      sources.SOURCES["builtin_shapes/small"], prepare=lambda data_dir: shapes.ensure_prepared(tiny, data_dir)
    ),
  )
  config = pipeline.default_data_config()
  config.source, config.data_dir = "builtin_shapes/pipeline_test", str(tmp_path)
  assert pipeline.dataset_info(config).class_names == shapes.CATEGORY_NAMES
  batches, num_steps = pipeline.build_eval_dataset(config, local_batch_size=8, process_index=0, process_count=1)
  batch = next(iter(batches))
  assert num_steps == 1 and batch["image"].shape == (8, 64, 64, 3) and batch["mask"].tolist() == [1] * 5 + [0] * 3
  expected = np.zeros((5, len(shapes.CATEGORY_NAMES)), np.float32)
  for i in range(5):
    expected[i, shapes.generate_example(shapes.example_rng(0, "validation", i), 32)["labels"]] = 1
  # Rows come in file order; compare them as a multiset.
  assert sorted(map(tuple, batch["labels"][:5])) == sorted(map(tuple, expected))


# ---- normalisation on the device ---------------------------------------------------------------------
def test_normalisation_moves_to_the_device_only_when_nothing_after_it_computes_pixels():
  names = lambda spec: [op.name for op in pipeline.defer_normalization(transforms.build_ops(spec))]
  assert names(sources.SSGRL_PP_TRAIN) == ["decode", "resize", "random_crop_choice", "resize"]
  assert names("decode|resize(8)|normalize_imagenet|flip_lr") == ["decode", "resize", "flip_lr"]
  # Padding pads uint8 with the mean colour; cropping or resizing after the normalisation keeps it on the host.
  assert "normalize_imagenet" not in names(sources.VG150_PP_TRAIN)
  assert "normalize_imagenet" in names("decode|normalize_imagenet|resize(8)")
  assert "normalize_imagenet" in names("decode|normalize_imagenet|random_crop(8)")
  assert names(PP) == ["decode", "resize", "flip_lr", "value_range"]


def test_a_uint8_batch_normalised_on_the_device_equals_the_host_normalised_batch(cfg):
  from jaxgraphs.data.image_statistics import network_images

  cfg.pp_eval = "decode|resize(8)|normalize_imagenet"
  host_cfg = ml_collections.ConfigDict(cfg.to_dict())
  host_cfg.normalize_on_device = False
  device, _ = pipeline.build_eval_dataset(cfg, local_batch_size=4, process_index=0, process_count=1)
  host, _ = pipeline.build_eval_dataset(host_cfg, local_batch_size=4, process_index=0, process_count=1)
  device, host = next(iter(device)), next(iter(host))
  assert device["image"].dtype == np.uint8 and host["image"].dtype == np.float32
  np.testing.assert_allclose(np.asarray(network_images(device["image"])), host["image"], rtol=0, atol=1e-6)
  assert host["image"].std() > 0.1  # real pixels, not an all-zero batch


def test_padding_a_uint8_batch_with_the_mean_colour_normalises_to_the_host_zeros(cfg):
  from jaxgraphs.data.image_statistics import network_images

  cfg.pp_eval = "decode|resize_long(6)|normalize_imagenet|pad_bottom_right(8)"
  host_cfg = ml_collections.ConfigDict(cfg.to_dict())
  host_cfg.normalize_on_device = False
  device, _ = pipeline.build_eval_dataset(cfg, local_batch_size=4, process_index=0, process_count=1)
  host, _ = pipeline.build_eval_dataset(host_cfg, local_batch_size=4, process_index=0, process_count=1)
  device, host = np.asarray(network_images(next(iter(device))["image"])), next(iter(host))["image"]
  np.testing.assert_array_equal(host[:, 6:], 0)  # at least the two padded rows
  padded = np.all(host == 0, axis=-1)
  np.testing.assert_allclose(device[padded], 0, atol=0.01)
  np.testing.assert_allclose(device[~padded], host[~padded], atol=1e-6)
