"""Tests of jaxgraphs/data/builders/aadb.py on a fake AADB tree in the release's file layout (10 images)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import tensorflow_datasets as tfds

import fake_images
from jaxgraphs.data.builders import aadb, image_checks

# split -> {filename: score}, as in imgList<Split>Regression_score.txt.
SCORES = {
  "train": {
    "farm1_1_11_aa_b.jpg": 0.7,
    "farm1_2_22_bb_b.jpg": 0.5,
    "farm2_3_33_cc_b.jpg": 0.2,
    "farm2_4_44_dd_b.jpg": 0.6,  # truncated
    "farm3_5_55_ee_b.jpg": 0.4,  # missing
    "farm3_6_66_ff_b.jpg": 0.45,
  },  # grayscale
  "validation": {"farm4_7_77_gg_b.jpg": 0.9, "farm4_8_88_hh_b.jpg": 0.3},  # the second is garbage
  "test": {"farm5_9_99_ii_b.jpg": 0.35, "farm5_10_1010_jj_b.jpg": 0.8},
}
READABLE = {
  "train": {"farm1_1_11_aa_b.jpg", "farm1_2_22_bb_b.jpg", "farm2_3_33_cc_b.jpg", "farm3_6_66_ff_b.jpg"},
  "validation": {"farm4_7_77_gg_b.jpg"},
  "test": {"farm5_9_99_ii_b.jpg", "farm5_10_1010_jj_b.jpg"},
}
ATTRIBUTE_NAMES = list(aadb.ATTRIBUTE_FILES)


def attribute_value(filename: str, index: int) -> float:
  """The fake value of attribute `index` for an image: distinct, in [-1, 1]."""
  return round(((len(filename) * 7 + index * 13) % 21) / 10 - 1, 1)


def make_aadb_tree(root):
  """Writes the label files and image folders; returns {filename: bytes} of the valid JPEGs."""
  labels = root / aadb.LABELS_DIR
  labels.mkdir()
  for split, scores in SCORES.items():
    (labels / aadb.label_file(split, "score")).write_text("".join(f"{f} {s}\n" for f, s in scores.items()))
  # Attributes for train (one image left out of one file) and test; none for validation.
  for index, (name, spellings) in enumerate(aadb.ATTRIBUTE_FILES.items()):
    for split in ("train", "test"):
      names = [f for f in SCORES[split] if not (name == "light" and f == "farm3_6_66_ff_b.jpg")]
      lines = "".join(f"{f} {attribute_value(f, index)}\n" for f in names)
      (labels / aadb.label_file(split, spellings[0])).write_text(lines)
  train_dir, new_test, new_test_prefixed = (
    root / "datasetImages_originalSize",
    root / "AADB_newtest_originalSize",
    root / "AADB_newtest",
  )
  for folder in (train_dir, new_test, new_test_prefixed):
    folder.mkdir()
  jpegs = {}
  for seed, filename in enumerate(
    ["farm1_1_11_aa_b.jpg", "farm1_2_22_bb_b.jpg", "farm2_3_33_cc_b.jpg", "farm4_7_77_gg_b.jpg"]
  ):
    jpegs[filename] = fake_images.write_jpeg(train_dir / filename, seed=seed)
  jpegs["farm3_6_66_ff_b.jpg"] = fake_images.write_jpeg(train_dir / "farm3_6_66_ff_b.jpg", seed=5, mode="L")
  fake_images.write_truncated_jpeg(train_dir / "farm2_4_44_dd_b.jpg", seed=6)
  fake_images.write_garbage(train_dir / "farm4_8_88_hh_b.jpg")
  # One test image under the score-prefixed name of some AADB_newtest copies, one under its plain name.
  jpegs["farm5_9_99_ii_b.jpg"] = fake_images.write_jpeg(new_test_prefixed / "0.350_farm5_9_99_ii_b.jpg", seed=7)
  jpegs["farm5_10_1010_jj_b.jpg"] = fake_images.write_jpeg(new_test / "farm5_10_1010_jj_b.jpg", seed=8)
  return jpegs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The fake tree prepared once: (builder, {split: [raw examples]}, jpegs)."""
  manual_dir = tmp_path_factory.mktemp("aadb_manual")
  jpegs = make_aadb_tree(manual_dir)
  builder = aadb.Aadb(data_dir=str(tmp_path_factory.mktemp("aadb_data")))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  splits = {}
  for split in builder.info.splits:
    dataset = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    splits[split] = list(tfds.as_numpy(dataset))
  return builder, splits, jpegs


def names_of(examples):
  return {example["image/filename"].decode() for example in examples}


def test_splits_hold_the_readable_listed_images(prepared):
  _, splits, _ = prepared
  assert set(splits) == {"train", "validation", "test"}
  for split, expected in READABLE.items():
    assert names_of(splits[split]) == expected, split


def test_scores_and_labels(prepared):
  _, splits, _ = prepared
  for split, examples in splits.items():
    for example in examples:
      score = SCORES[split][example["image/filename"].decode()]
      assert example["score"] == pytest.approx(score, abs=1e-7)
      assert example["score"].dtype == np.float32
      assert example["label"] == (1 if score >= 0.5 else 0)  # 0.5 itself is high


def test_attributes_with_nan_where_unlabelled(prepared):
  _, splits, _ = prepared
  for split in ("train", "test"):
    for example in splits[split]:
      filename = example["image/filename"].decode()
      for index, name in enumerate(ATTRIBUTE_NAMES):
        value = example["attributes"][name]
        if name == "light" and filename == "farm3_6_66_ff_b.jpg":
          assert math.isnan(value)
        else:
          assert value == pytest.approx(attribute_value(filename, index), abs=1e-6), (filename, name)
  for example in splits["validation"]:
    assert all(math.isnan(example["attributes"][name]) for name in ATTRIBUTE_NAMES)


def test_valid_jpegs_are_stored_byte_for_byte(prepared):
  _, splits, jpegs = prepared
  stored = {example["image/filename"].decode(): example["image"] for split in splits.values() for example in split}
  assert stored == jpegs


def test_skip_report(prepared):
  builder, _, _ = prepared
  report = image_checks.read_skip_report(builder)
  assert report["num_skipped"] == 3
  skipped = {entry["id"]: (entry["split"], entry["reason"]) for entry in report["skipped"]}
  assert skipped == {
    "farm2_4_44_dd_b.jpg": ("train", image_checks.DECODE_ERROR),
    "farm3_5_55_ee_b.jpg": ("train", image_checks.MISSING),
    "farm4_8_88_hh_b.jpg": ("validation", image_checks.NOT_AN_IMAGE),
  }
  assert report["reencoded"] == []
  notes = " ".join(report["notes"])
  assert "validation: no label file for attributes" in notes
  assert "imgListTrainRegression_Light.txt lacks 1 images" in notes


def test_grayscale_decodes_to_rgb(prepared):
  builder, _, _ = prepared
  example = next(
    e for e in tfds.as_numpy(builder.as_dataset(split="train")) if e["image/filename"] == b"farm3_6_66_ff_b.jpg"
  )
  assert example["image"].shape == (16, 16, 3)


def test_registered_by_import(tmp_path):
  builder = tfds.builder("aadb", data_dir=str(tmp_path))
  assert isinstance(builder, aadb.Aadb)
  assert builder.builder_config.images_dirs == ("datasetImages_originalSize",)
  assert builder.info.features["attributes"].keys() == set(ATTRIBUTE_NAMES)


def test_label_file_errors_name_file_and_line():
  with pytest.raises(ValueError, match=r"s.txt:2: value 1.5 outside \(0.0, 1.0\)"):
    aadb.parse_label_file("a.jpg 0.5\nb.jpg 1.5\n", "s.txt", (0.0, 1.0))
  with pytest.raises(ValueError, match=r"s.txt:1: expected '<filename> <value>'"):
    aadb.parse_label_file("a.jpg\n", "s.txt")
  with pytest.raises(ValueError, match=r"s.txt:2: a.jpg appears twice"):
    aadb.parse_label_file("a.jpg 0.1\na.jpg 0.2\n", "s.txt")


def test_missing_score_file_names_it(tmp_path):
  (tmp_path / "manual" / aadb.LABELS_DIR).mkdir(parents=True)
  builder = aadb.Aadb(data_dir=str(tmp_path / "data"))
  with pytest.raises(FileNotFoundError, match="imgListTrainRegression_score.txt not found"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual")))
