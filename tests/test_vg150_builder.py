"""The vg150 TFDS builder on a tiny fake VG-150 written in the real file formats."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from jaxgraphs.data import scene_graphs
from jaxgraphs.data.builders import vg150

OBJECT_NAMES = [f"object{i:03d}" for i in range(1, 151)]
PREDICATE_NAMES = [f"predicate{i:02d}" for i in range(1, 51)]

# One h5 row per image, in h5 order: (image id, split flag, [(label, cx, cy, w, h) at 1024], [(s, o, predicate)]
# with s, o local here; the writer turns them into global indices).
IMAGES = [
  (10, 0, [(5, 100, 200, 51, 40), (7, 5, 30, 11, 20), (9, 512, 300, 100, 60)], [(0, 1, 3), (2, 0, 8)]),
  (11, 0, [], []),  # no boxes: dropped
  (12, 0, [(1, 300, 300, 40, 40), (2, 350, 350, 40, 40)], []),  # no relations: dropped from train
  (13, 0, [(4, 200, 200, 20, 30), (6, 220, 210, 31, 31)], [(0, 1, 20), (0, 1, 31), (1, 0, 50)]),
  (14, 0, [(150, 700, 740, 200, 100), (3, 600, 600, 50, 50)], [(1, 0, 1)]),
  (15, 0, [(8, 100, 100, 60, 60), (8, 150, 150, 60, 60)], [(0, 1, 22)]),
  (16, 2, [(2, 400, 300, 100, 100), (5, 410, 310, 20, 20)], [(1, 0, 29)]),
  (17, 2, [(1, 50, 50, 10, 10)], []),  # no relations: dropped from test
  (18, 2, [(11, 200, 100, 81, 41), (12, 240, 120, 30, 30)], [(0, 1, 30), (1, 0, 48)]),
]
# (width, height) of each JPEG and what image_data.json claims; image 15's entry is wrong (half size).
JPEG_SIZES = {
  10: (64, 48),
  11: (64, 48),
  12: (48, 64),
  13: (64, 48),
  14: (64, 48),
  15: (80, 60),
  16: (64, 64),
  17: (32, 32),
  18: (64, 32),
}
JSON_SIZES = {**JPEG_SIZES, 15: (40, 30)}
PNG_IMAGE_ID = 16  # stored as PNG bytes under a .jpg name: must be re-encoded
GRAY_IMAGE_ID = 13  # a grayscale JPEG: kept as it is, decoded to 3 channels
NUM_VAL = 2


def _write_fake_vg150(root):
  """Writes VG-SGG.h5, VG-SGG-dicts.json, image_data.json (with a corrupt id) and the images into `root`."""
  labels, boxes, relationships, predicates = [], [], [], []
  first_box, last_box, first_rel, last_rel = [], [], [], []
  for _, _, objects, relations in IMAGES:
    start = len(labels)
    first_box.append(start if objects else -1)
    last_box.append(start + len(objects) - 1 if objects else -1)
    first_rel.append(len(predicates) if relations else -1)
    last_rel.append(len(predicates) + len(relations) - 1 if relations else -1)
    for label, *box in objects:
      labels.append([label])
      boxes.append(box)
    for s, o, p in relations:
      relationships.append([start + s, start + o])
      predicates.append([p])
  with h5py.File(root / "VG-SGG.h5", "w") as h5:
    h5["labels"] = np.asarray(labels, np.int64)
    h5["boxes_1024"] = np.asarray(boxes, np.int32)
    h5["boxes_512"] = np.asarray(boxes, np.int32) // 2
    h5["img_to_first_box"] = np.asarray(first_box, np.int32)
    h5["img_to_last_box"] = np.asarray(last_box, np.int32)
    h5["relationships"] = np.asarray(relationships, np.int32)
    h5["predicates"] = np.asarray(predicates, np.int64)
    h5["img_to_first_rel"] = np.asarray(first_rel, np.int32)
    h5["img_to_last_rel"] = np.asarray(last_rel, np.int32)
    h5["split"] = np.asarray([flag for _, flag, _, _ in IMAGES], np.int32)

  # Real dicts list names alphabetically with indices in that order; shuffle the json order to be sure the
  # builder orders by index, not by position.
  label_to_idx = {name: i + 1 for i, name in enumerate(OBJECT_NAMES)}
  predicate_to_idx = {name: i + 1 for i, name in enumerate(PREDICATE_NAMES)}
  dicts = {
    "label_to_idx": dict(reversed(label_to_idx.items())),
    "idx_to_label": {str(i): n for n, i in label_to_idx.items()},
    "predicate_to_idx": dict(reversed(predicate_to_idx.items())),
    "idx_to_predicate": {str(i): n for n, i in predicate_to_idx.items()},
    "object_count": {n: 1 for n in OBJECT_NAMES},
    "predicate_count": {n: 1 for n in PREDICATE_NAMES},
  }
  (root / "VG-SGG-dicts.json").write_text(json.dumps(dicts))

  records = [{"image_id": i, "width": JSON_SIZES[i][0], "height": JSON_SIZES[i][1], "url": ""} for i, *_ in IMAGES]
  records.insert(2, {"image_id": 1592, "width": 10, "height": 10, "url": ""})  # corrupt: no h5 row
  (root / "image_data.json").write_text(json.dumps(records))

  images = root / "images"
  images.mkdir()
  rng = np.random.default_rng(0)
  for image_id, (width, height) in JPEG_SIZES.items():
    pixels = rng.integers(0, 255, size=(height, width, 3), dtype=np.uint8)
    if image_id == GRAY_IMAGE_ID:
      pixels = pixels[..., 0]
    Image.fromarray(pixels).save(images / f"{image_id}.jpg", format="PNG" if image_id == PNG_IMAGE_ID else "JPEG")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The fake VG-150 prepared once with a 2-image validation split; yields (builder, manual_dir)."""
  root = tmp_path_factory.mktemp("vg150")
  manual_dir = root / "manual"
  manual_dir.mkdir()
  _write_fake_vg150(manual_dir)
  config = vg150.Vg150Config(name="test_val2", num_val_images=NUM_VAL)
  builder = vg150.Vg150(config=config, data_dir=str(root / "data"))
  builder.download_and_prepare(
    download_config=tfds.download.DownloadConfig(
      manual_dir=str(manual_dir), compute_stats=tfds.download.ComputeStatsMode.SKIP
    )
  )
  return builder, manual_dir


def _split(builder, name, **kwargs):
  """All examples of a split as numpy dicts, in stored order."""
  return list(tfds.as_numpy(builder.as_dataset(split=name, shuffle_files=False, **kwargs)))


def test_import_registers_vg150():
  assert "vg150" in tfds.list_builders(with_community_datasets=False)
  assert tfds.builder_cls("vg150") is vg150.Vg150


def test_split_membership_order_and_filters(prepared):
  builder, _ = prepared
  ids = {name: [int(ex["image/id"]) for ex in _split(builder, name)] for name in ("train", "val", "test")}
  # Filtered train rows in h5 order: 10, 13, 14, 15 (11 has no boxes, 12 no relations, 1592 is corrupt);
  # val = the first two of them. Test: 16, 18 (17 has no relations).
  assert ids == {"val": [10, 13], "train": [14, 15], "test": [16, 18]}
  assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 2, "val": 2, "test": 2}


def test_boxes_in_pixels_and_normalised(prepared):
  builder, _ = prepared
  example = _split(builder, "val")[0]  # image 10, JPEG 64 x 48: scale 64 / 1024 = 1 / 16
  assert (example["image/width"], example["image/height"]) == (64, 48)
  # cx, cy, w, h = (100, 200, 51, 40) -> x1 = int(100 - 25.5) = 74, y1 = 180, x2 = 125, y2 = 220;
  # (5, 30, 11, 20) -> x1 = int(-0.5) = 0 (truncation toward zero), y1 = 20, x2 = 11, y2 = 40;
  # (512, 300, 100, 60) -> 462, 270, 562, 330.
  corners_1024 = np.array([[74, 180, 125, 220], [0, 20, 11, 40], [462, 270, 562, 330]], np.float64)
  np.testing.assert_allclose(example["objects"]["box_pixels"], corners_1024 / 16, rtol=1e-6)
  np.testing.assert_array_equal(np.rint(example["objects"]["box_pixels"] * 1024 / 64), corners_1024)
  # ymin, xmin, ymax, xmax normalised by (48, 64); y2 = 330 / 16 = 20.6 < 48, nothing clipped here.
  expected_bbox = np.stack(
    [
      corners_1024[:, 1] / 16 / 48,
      corners_1024[:, 0] / 16 / 64,
      corners_1024[:, 3] / 16 / 48,
      corners_1024[:, 2] / 16 / 64,
    ],
    axis=1,
  )
  np.testing.assert_allclose(example["objects"]["bbox"], expected_bbox, rtol=1e-6)


def test_box_past_the_short_side_is_clipped_only_in_bbox(prepared):
  builder, _ = prepared
  # Image 14 is 64 x 48, i.e. 1024 x 768 at box scale; box (700, 740, 200, 100) -> y2 = 790 > 768.
  example = _split(builder, "train")[0]
  assert example["objects"]["box_pixels"][0, 3] == pytest.approx(790 / 16)
  assert example["objects"]["bbox"][0, 2] == 1.0


def test_labels_relations_and_class_names(prepared):
  builder, _ = prepared
  features = builder.info.features
  object_names = features["objects"]["label"].names
  predicate_names = features["relations"]["predicate"].names
  assert len(object_names) == 151 and len(predicate_names) == 51
  assert object_names[0] == predicate_names[0] == "__background__"
  assert object_names[150] == "object150" and predicate_names[50] == "predicate50"
  image_13 = _split(builder, "val")[1]
  np.testing.assert_array_equal(image_13["objects"]["label"], [4, 6])
  # Local indices; both predicates of the pair (0, 1) are kept.
  np.testing.assert_array_equal(image_13["relations"]["subject"], [0, 0, 1])
  np.testing.assert_array_equal(image_13["relations"]["object"], [1, 1, 0])
  np.testing.assert_array_equal(image_13["relations"]["predicate"], [20, 31, 50])
  image_18 = _split(builder, "test")[1]  # global object indices 16, 17 -> local 0, 1
  np.testing.assert_array_equal(image_18["relations"]["subject"], [0, 1])
  np.testing.assert_array_equal(image_18["relations"]["object"], [1, 0])
  np.testing.assert_array_equal(image_18["relations"]["predicate"], [30, 48])
  assert image_18["image/filename"] == b"18.jpg"


def test_jpeg_size_overrides_wrong_image_data_size(prepared):
  builder, _ = prepared
  image_15 = _split(builder, "train")[1]  # image_data.json: 40 x 30; JPEG: 80 x 60
  assert (image_15["image/width"], image_15["image/height"]) == (80, 60)
  assert image_15["image"].shape == (60, 80, 3)
  # (100, 100, 60, 60) -> 70, 70, 130, 130 at 1024 -> x 80 / 1024.
  np.testing.assert_allclose(image_15["objects"]["box_pixels"][0], np.array([70, 70, 130, 130]) * 80 / 1024, rtol=1e-6)
  assert builder.info.metadata["image_size_mismatches"] == [[15, 40, 30, 80, 60]]


def test_jpeg_bytes_kept_and_odd_files_reencoded(prepared):
  builder, manual_dir = prepared
  raw = _split(builder, "val", decoders={"image": tfds.decode.SkipDecoding()})
  assert raw[0]["image"] == (manual_dir / "images" / "10.jpg").read_bytes()
  assert builder.info.metadata["reencoded_images"] == [PNG_IMAGE_ID]
  png_example = _split(builder, "test")[0]
  assert png_example["image"].shape == (64, 64, 3)
  gray_example = _split(builder, "val")[1]
  assert gray_example["image/id"] == GRAY_IMAGE_ID and gray_example["image"].shape == (48, 64, 3)
  assert raw[1]["image"] == (manual_dir / "images" / f"{GRAY_IMAGE_ID}.jpg").read_bytes()


def test_metadata_counts(prepared):
  builder, _ = prepared
  metadata = builder.info.metadata
  assert metadata["h5_file"] == "VG-SGG.h5" and metadata["num_val_images"] == NUM_VAL
  val_predicates = np.asarray(metadata["val_predicate_counts"])
  assert val_predicates.sum() == 5 and val_predicates[[3, 8, 20, 31, 50]].tolist() == [1, 1, 1, 1, 1]
  train_objects = np.asarray(metadata["train_object_counts"])
  assert train_objects.sum() == 4 and train_objects[[3, 8, 150]].tolist() == [1, 2, 1]
  # Train images 14: (3 -> 150, predicate 1); 15: (8 -> 8, predicate 22).
  assert metadata["train_triplets"] == [[3, 150, 1], [8, 8, 22]]


def test_prepared_dataset_reloads_names_and_metadata(prepared):
  builder, _ = prepared
  data_dir = builder.data_path.parent.parent.parent  # <data_dir>/vg150/<config>/<version>
  reloaded = vg150.Vg150(config=builder.builder_config, data_dir=str(data_dir))
  assert reloaded.data_path == builder.data_path and reloaded.is_prepared()
  assert reloaded.info.features["relations"]["predicate"].names == builder.info.features["relations"]["predicate"].names
  assert reloaded.info.features["objects"]["label"].names[1] == "object001"
  assert reloaded.info.metadata["image_size_mismatches"] == [[15, 40, 30, 80, 60]]
  assert reloaded.info.splits["val"].num_examples == NUM_VAL


def test_sgdet_training_ops_on_prepared_examples(prepared):
  builder, _ = prepared

  def sgdet_train_relations(example):
    relations = scene_graphs.keep_overlapping_relations(example["relations"], example["objects"]["box_pixels"])
    seed = tf.stack([0, tf.cast(example["image/id"], tf.int32)])
    return {**example, "relations": scene_graphs.sample_one_predicate_per_pair(relations, seed)}

  dataset = (
    builder.as_dataset(split="val", decoders={"image": tfds.decode.SkipDecoding()})
    .map(sgdet_train_relations)
    .filter(lambda ex: tf.size(ex["relations"]["predicate"]) > 0)
    .map(lambda ex: scene_graphs.pad_scene_graph(ex, max_objects=4, max_relations=3))
  )
  examples = list(tfds.as_numpy(dataset))
  # Image 10's related boxes are disjoint ([74, 180, 125, 220] vs [0, 20, 11, 40] and [462, 270, 562, 330] at
  # 1024), so it leaves; image 13's boxes [190, 185, 210, 215] and [204, 194, 235, 225] overlap.
  assert [int(ex["image/id"]) for ex in examples] == [13]
  relations = examples[0]["relations"]
  np.testing.assert_array_equal(relations["mask"], [True, True, False])
  np.testing.assert_array_equal(relations["subject"][:2], [0, 1])
  np.testing.assert_array_equal(relations["object"][:2], [1, 0])
  assert relations["predicate"][0] in (20, 31) and relations["predicate"][1] == 50
  assert examples[0]["num_cut_objects"] == 0 and examples[0]["num_cut_relations"] == 0


def test_center_to_corner_matches_neural_motifs_inplace_update():
  boxes = np.array([[100, 200, 51, 40], [5, 30, 11, 20], [7, 9, 3, 5]], np.int32)
  # neural-motifs: all_boxes[:, :2] = all_boxes[:, :2] - all_boxes[:, 2:] / 2; all_boxes[:, 2:] += ...
  reference = boxes.copy()
  reference[:, :2] = reference[:, :2] - reference[:, 2:] / 2
  reference[:, 2:] = reference[:, :2] + reference[:, 2:]
  corner = vg150.center_to_corner(boxes)
  np.testing.assert_array_equal(corner, reference)
  assert corner.dtype == np.int32
  np.testing.assert_array_equal(corner[2], [5, 6, 8, 11])  # 7 - 1.5 = 5.5 -> 5; 9 - 2.5 = 6.5 -> 6


def test_bad_inputs_give_clear_errors(tmp_path):
  with pytest.raises(FileNotFoundError, match="VG-SGG.h5, VG-SGG-with-attri.h5"):
    vg150.locate_manual_files(tmp_path)
  (tmp_path / "image_data.json").write_text(json.dumps([{"image_id": 1, "width": 5, "height": 5}]))
  with pytest.raises(ValueError, match="image_data.json must list the images in h5 order"):
    vg150.read_image_records(tmp_path / "image_data.json", num_rows=2)
  with pytest.raises(ValueError, match="num_val_images=3"):
    vg150.split_rows(np.zeros(3), np.zeros(3), np.zeros(3), num_val_images=3)
  (tmp_path / "dicts.json").write_text(json.dumps({"label_to_idx": {"a": 1}, "predicate_to_idx": {"b": 1}}))
  with pytest.raises(ValueError, match="'label_to_idx' must give the indices 1..150"):
    vg150.read_class_names(tmp_path / "dicts.json")


def _truncated_jpeg(path):
  """The JPEG at `path` cut to half its bytes: PIL opens it and fails only while decoding."""
  data = path.read_bytes()
  path.write_bytes(data[: len(data) // 2])


def _not_an_image(path):
  path.write_bytes(b"<html>404 Not Found</html>\n")


@pytest.mark.parametrize(
  "image_id, spoil, reason",
  [
    (14, _not_an_image, "not an image (27 bytes PIL cannot identify)"),
    (18, _truncated_jpeg, "decode error (OSError: image file is truncated"),
  ],
)
def test_undecodable_image_stops_the_build_naming_its_id_and_path(tmp_path, image_id, spoil, reason):
  manual_dir = tmp_path / "manual"
  manual_dir.mkdir()
  _write_fake_vg150(manual_dir)
  path = manual_dir / "images" / f"{image_id}.jpg"
  spoil(path)
  # Image 11 has no boxes, so it is in no split: a broken file there is never read and must not matter.
  _not_an_image(manual_dir / "images" / "11.jpg")
  builder = vg150.Vg150(config=vg150.Vg150Config(name="test_val2", num_val_images=NUM_VAL), data_dir=str(tmp_path))
  with pytest.raises(ValueError) as error:
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  message = str(error.value)
  row = [i for i, *_ in IMAGES].index(image_id)
  assert "vg150: 1 of 6 images cannot be decoded" in message
  assert f"image {image_id} (h5 row {row}, {path}): {reason}" in message
  assert "\n" not in message and "11.jpg" not in message
  assert not builder.is_prepared()
