"""Tests of jaxgraphs/data/builders/ava.py on a fake AVA tree in the real file formats (12 images)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

import fake_images
from jaxgraphs.data.builders import ava, image_checks

# image id -> votes for ratings 1..10, with the mean rating worked out by hand.
VOTES = {
  101: ([0, 0, 0, 0, 2, 0, 0, 0, 0, 0], 5.0),  # exactly 5: high
  102: ([0, 0, 0, 1, 1, 0, 0, 0, 0, 0], 4.5),
  103: ([0, 1, 0, 0, 0, 0, 0, 0, 0, 0], 2.0),  # garbage file
  104: ([0, 0, 0, 0, 0, 0, 0, 0, 0, 3], 10.0),  # CMYK JPEG
  105: ([0, 0, 1, 0, 0, 0, 0, 0, 0, 0], 3.0),  # truncated JPEG
  106: ([1, 0, 0, 0, 0, 0, 0, 0, 0, 1], 5.5),
  107: ([0, 0, 0, 0, 0, 1, 0, 0, 0, 0], 6.0),  # file missing
  108: ([3, 0, 0, 0, 0, 0, 0, 0, 0, 0], 1.0),  # grayscale JPEG
  109: ([0, 0, 0, 0, 1, 1, 1, 1, 0, 0], 6.5),  # a PNG named .jpg
  110: ([0] * 10, None),  # no votes
  111: ([0, 0, 0, 5, 4, 0, 0, 0, 0, 0], 40 / 9),
  112: ([0, 0, 2, 0, 0, 0, 0, 0, 0, 1], 16 / 3),
}
HIGH = {101, 104, 106, 107, 109, 112}
TAGS = {image_id: (image_id % 7, 0 if image_id % 2 else 15) for image_id in VOTES}
TEST_LISTED = [101, 102, 103, 104, 999]  # 999 has no row in AVA.txt
READABLE_TEST = {101, 102, 104}
READABLE_TRAIN = {106, 108, 109, 111, 112}
VALIDATION_SIZE = 2


def make_ava_tree(root):
  """Writes AVA.txt, generic_test.jpgl and images/ for VOTES; returns {id: bytes} of the valid JPEGs."""
  lines = [
    " ".join(map(str, [index, image_id, *votes, *TAGS[image_id], 1000 + index]))
    for index, (image_id, (votes, _)) in enumerate(VOTES.items(), start=1)
  ]
  (root / "AVA.txt").write_text("\n".join(lines) + "\n")
  (root / "aesthetics_image_lists").mkdir()
  (root / "aesthetics_image_lists" / "generic_test.jpgl").write_text("\n".join(map(str, TEST_LISTED)) + "\n")
  images = root / "images"
  images.mkdir()
  jpegs = {}
  for image_id in (101, 102, 106, 111, 112):
    jpegs[image_id] = fake_images.write_jpeg(images / f"{image_id}.jpg", seed=image_id)
  jpegs[104] = fake_images.write_jpeg(images / "104.jpg", seed=104, mode="CMYK")
  jpegs[108] = fake_images.write_jpeg(images / "108.jpg", seed=108, mode="L")
  fake_images.write_garbage(images / "103.jpg")
  fake_images.write_truncated_jpeg(images / "105.jpg", seed=105)
  fake_images.write_png(images / "109.jpg", seed=109)
  fake_images.write_jpeg(images / "110.jpg", seed=110)
  return jpegs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The fake tree prepared once with a 2-image holdout: (builder, {split: [raw examples]}, jpegs)."""
  manual_dir = tmp_path_factory.mktemp("ava_manual")
  jpegs = make_ava_tree(manual_dir)
  config = ava.AvaConfig(name="tiny", validation_size=VALIDATION_SIZE)
  builder = ava.Ava(config=config, data_dir=str(tmp_path_factory.mktemp("ava_data")))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  splits = {}
  for split in builder.info.splits:
    dataset = builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})
    splits[split] = list(tfds.as_numpy(dataset))
  return builder, splits, jpegs


def ids_of(examples):
  return {int(example["image/id"]) for example in examples}


def test_split_membership(prepared):
  _, splits, _ = prepared
  assert ids_of(splits["test"]) == READABLE_TEST
  assert len(splits["validation"]) == VALIDATION_SIZE
  assert ids_of(splits["validation"]) == ava.holdout_ids(sorted(READABLE_TRAIN), VALIDATION_SIZE, seed=0)
  assert ids_of(splits["train"]) == READABLE_TRAIN - ids_of(splits["validation"])
  assert ids_of(splits["train"]) | ids_of(splits["validation"]) == READABLE_TRAIN
  assert len(splits["train"]) + len(splits["validation"]) == len(READABLE_TRAIN)  # disjoint


def test_split_info_counts(prepared):
  builder, _, _ = prepared
  sizes = {name: info.num_examples for name, info in builder.info.splits.items()}
  assert sizes == {"train": 3, "validation": 2, "test": 3}


def test_ratings_and_labels(prepared):
  _, splits, _ = prepared
  examples = [example for split in splits.values() for example in split]
  assert len(examples) == 8
  for example in examples:
    image_id = int(example["image/id"])
    votes, mean = VOTES[image_id]
    np.testing.assert_array_equal(example["rating/counts"], votes)
    assert example["rating/counts"].dtype == np.int32
    np.testing.assert_allclose(example["rating/distribution"], np.array(votes) / sum(votes), rtol=1e-6)
    assert example["rating/distribution"].sum() == pytest.approx(1.0, abs=1e-6)
    assert example["rating/mean"] == pytest.approx(mean, rel=1e-6)
    assert example["label"] == (1 if image_id in HIGH else 0)
    np.testing.assert_array_equal(example["semantic_tags"], TAGS[image_id])
    assert example["image/filename"].decode() == f"{image_id}.jpg"
  by_id = {int(e["image/id"]): e for e in examples}
  assert by_id[101]["challenge_id"] == 1001 and by_id[112]["challenge_id"] == 1012


def test_valid_jpegs_are_stored_byte_for_byte(prepared):
  _, splits, jpegs = prepared
  stored = {int(e["image/id"]): e["image"] for split in splits.values() for e in split}
  for image_id, data in jpegs.items():
    assert stored[image_id] == data, image_id
  assert stored[109][:2] == b"\xff\xd8"  # the PNG came back as a JPEG


def test_grayscale_cmyk_and_reencoded_decode_to_rgb(prepared):
  builder, _, _ = prepared
  images = {}
  for split in ("train", "validation", "test"):
    for example in tfds.as_numpy(builder.as_dataset(split=split)):
      images[int(example["image/id"])] = example["image"]
  assert all(image.shape == (16, 16, 3) and image.dtype == np.uint8 for image in images.values())
  gray = images[108].astype(int)
  assert np.abs(gray[..., 0] - gray[..., 1]).max() <= 1  # channels equal: a gray image
  png_pixels = fake_images._pixels(109).astype(int)
  assert np.abs(images[109].astype(int) - png_pixels).mean() < 8  # JPEG round trip of the PNG


def test_skip_report(prepared):
  builder, _, _ = prepared
  report = image_checks.read_skip_report(builder)
  reasons = {entry["id"]: entry["reason"] for entry in report["skipped"]}
  assert reasons == {
    999: ava.NOT_IN_RATINGS,
    103: image_checks.NOT_AN_IMAGE,
    105: image_checks.DECODE_ERROR,
    107: image_checks.MISSING,
    110: ava.NO_VOTES,
  }
  assert report["num_skipped"] == 5
  assert report["skipped_by_reason"][image_checks.MISSING] == 1
  truncated = next(entry for entry in report["skipped"] if entry["id"] == 105)
  assert "truncated" in truncated["detail"].lower() and truncated["file"].endswith("images/105.jpg")
  assert {entry["id"]: entry["split"] for entry in report["skipped"]}[103] == "test"
  assert [(entry["id"], entry["format"]) for entry in report["reencoded"]] == [(109, "PNG")]
  assert (builder.data_path / image_checks.REPORT_FILENAME).exists()
  assert json.loads((builder.data_path / "skipped_images.json").read_text()) == report


def test_registered_by_import(tmp_path):
  builder = tfds.builder("ava", data_dir=str(tmp_path))
  assert isinstance(builder, ava.Ava)
  assert builder.builder_config.validation_size == 2000
  assert "generic_test.jpgl" in builder.MANUAL_DOWNLOAD_INSTRUCTIONS


def test_holdout_is_order_free_and_stable():
  ids = list(range(1000, 1200))
  held = ava.holdout_ids(ids, 20, seed=0)
  assert len(held) == 20 and held == ava.holdout_ids(ids[::-1], 20, seed=0)
  assert held != ava.holdout_ids(ids, 20, seed=1)
  # Losing one held-out id swaps in exactly one replacement; the other 19 stay.
  lost = min(held)
  replaced = ava.holdout_ids([i for i in ids if i != lost], 20, seed=0)
  assert len(held & replaced) == 19
  with pytest.raises(ValueError, match="validation_size=300 exceeds the 200"):
    ava.holdout_ids(ids, 300, seed=0)


def test_parse_errors_name_file_and_line():
  good = "1 5 0 0 0 0 1 0 0 0 0 0 0 0 9"
  with pytest.raises(ValueError, match=r"AVA.txt:2: expected 15 fields"):
    ava.parse_ava_txt(good + "\n1 6 0 0\n")
  with pytest.raises(ValueError, match=r"AVA.txt:2: image id 5 appears twice"):
    ava.parse_ava_txt(good + "\n" + good + "\n")
  with pytest.raises(ValueError, match=r"list.jpgl:2: expected an integer"):
    ava.read_id_list("12\nabc\n", source="list.jpgl")


def test_missing_ratings_file_names_it(tmp_path):
  (tmp_path / "manual").mkdir()
  (tmp_path / "manual" / "unrelated.txt").write_text("x")
  builder = ava.Ava(config=ava.AvaConfig(name="tiny", validation_size=1), data_dir=str(tmp_path / "data"))
  with pytest.raises(FileNotFoundError, match="AVA.txt not found"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path / "manual")))
