"""Tests of jaxgraphs/data/builders/vg500.py on a fake Visual Genome tree (10 images, a 3-class vocabulary)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow_datasets as tfds

import fake_images
from jaxgraphs.data.builders import image_checks, vg500

# image id -> object names as written in objects.json (messy on purpose); image 110 uses the old 'name' key.
OBJECT_NAMES = {
  101: [["Tree"], ["man", "Person"], ["tree."]],
  102: [["tree"], ["sky"]],
  103: [["  sky "], ["MAN"]],
  104: [["dog"], ["tree"]],
  105: [["dog"]],
  106: [["sky"], ["?"]],
  107: [],
  108: [["Dog"], ["man"]],
  109: [["sky"]],  # missing image
  110: "tree",  # broken image
}
IMAGE_IDS = sorted(OBJECT_NAMES)
NUM_TEST, NUM_CLASSES, SEED = 3, 3, 0


def make_vg_tree(root):
  """Writes image_data.json, objects.json and the images; returns {image id: JPEG bytes} of the valid ones."""
  (root / vg500.IMAGE_DATA_FILENAME).write_text(
    json.dumps([{"image_id": i, "width": 16, "height": 16, "url": f"https://example.org/{i}.jpg"} for i in IMAGE_IDS])
  )
  objects = []
  for image_id, names in OBJECT_NAMES.items():
    if isinstance(names, str):
      objects.append({"id": image_id, "objects": [{"id": 1, "name": names}]})
    else:
      objects.append({"image_id": image_id, "objects": [{"object_id": k, "names": n} for k, n in enumerate(names)]})
  (root / vg500.OBJECTS_FILENAME).write_text(json.dumps(objects))
  (root / "VG_100K").mkdir()
  (root / "VG_100K_2").mkdir()
  jpegs = {}
  for seed, image_id in enumerate(IMAGE_IDS):
    if image_id == 109:
      continue
    folder = root / ("VG_100K" if image_id % 2 else "VG_100K_2")
    if image_id == 110:
      fake_images.write_garbage(folder / f"{image_id}.jpg")
    else:
      jpegs[image_id] = fake_images.write_jpeg(folder / f"{image_id}.jpg", seed=seed)
  return jpegs


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
  """The fake tree prepared once: (builder, {split: [raw examples]}, jpegs)."""
  manual_dir = tmp_path_factory.mktemp("vg_manual")
  jpegs = make_vg_tree(manual_dir)
  config = vg500.Vg500Config(name="unit_test", num_classes=NUM_CLASSES, num_test=NUM_TEST, seed=SEED)
  data_dir = str(tmp_path_factory.mktemp("vg500_data"))
  builder = vg500.Vg500(config=config, data_dir=data_dir)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  splits = {
    split: list(tfds.as_numpy(builder.as_dataset(split=split, decoders={"image": tfds.decode.SkipDecoding()})))
    for split in builder.info.splits
  }
  return builder, splits, jpegs, data_dir


def expected_split():
  order = np.random.default_rng(SEED).permutation(len(IMAGE_IDS))
  return {
    "test": sorted(IMAGE_IDS[i] for i in order[:NUM_TEST]),
    "train": sorted(IMAGE_IDS[i] for i in order[NUM_TEST:]),
  }


def normalized(image_id):
  names = OBJECT_NAMES[image_id]
  flat = [names] if isinstance(names, str) else [n for group in names for n in group]
  return {n.lower().strip(" .?") for n in flat} - {""}


def test_name_normalisation():
  assert vg500.normalize_name("  Red \t Car. ") == "red car"
  assert vg500.normalize_name("?!") == ""
  assert vg500.normalize_name("t-shirt") == "t-shirt"


def test_split_is_a_seeded_permutation_and_keeps_unreadable_images_out(prepared):
  _, splits, jpegs, _ = prepared
  split = vg500.split_ids(IMAGE_IDS, NUM_TEST, SEED)
  assert split == expected_split() and not set(split["test"]) & set(split["train"])
  for name, examples in splits.items():
    ids = sorted(int(e["image/id"]) for e in examples)
    assert ids == [i for i in split[name] if i in jpegs], name
  with pytest.raises(ValueError, match="num_test=10 must be between 1 and"):
    vg500.split_ids(IMAGE_IDS, 10, SEED)


def test_vocabulary_counts_training_images_only_and_labels_follow_it(prepared):
  builder, splits, _, _ = prepared
  train = expected_split()["train"]
  counts = {}
  for image_id in train:
    for name in normalized(image_id):
      counts[name] = counts.get(name, 0) + 1
  want = [n for n, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:NUM_CLASSES]]
  names = builder.info.features["labels"].feature.names
  assert names == want
  for examples in splits.values():
    for example in examples:
      image_id = int(example["image/id"])
      assert sorted(example["labels"].tolist()) == sorted(names.index(n) for n in normalized(image_id) if n in want)
      assert example["image/filename"].decode() == f"{image_id}.jpg"


def test_class_names_survive_reloading_the_prepared_dataset(prepared):
  builder, _, _, data_dir = prepared
  config = vg500.Vg500Config(name="unit_test", num_classes=NUM_CLASSES, num_test=NUM_TEST, seed=SEED)
  again = vg500.Vg500(config=config, data_dir=data_dir)
  assert again.info.features["labels"].feature.names == builder.info.features["labels"].feature.names


def test_jpegs_stored_byte_for_byte_and_skips_reported(prepared):
  builder, splits, jpegs, _ = prepared
  stored = {int(e["image/id"]): e["image"] for examples in splits.values() for e in examples}
  assert stored == jpegs
  report = image_checks.read_skip_report(builder)
  assert {entry["id"]: entry["reason"] for entry in report["skipped"]} == {
    109: image_checks.MISSING,
    110: image_checks.NOT_AN_IMAGE,
  }


def test_missing_manual_files_name_the_download(tmp_path):
  builder = vg500.Vg500(data_dir=str(tmp_path / "data"))
  with pytest.raises(FileNotFoundError, match="(?s)image_data.json not found.*visualgenome.org"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path)))


@pytest.mark.slow  # compiles a whole model's train step (20-40 s with a cold cache)
def test_ssgrl_vg500_config_trains_a_step_and_evaluates_on_the_prepared_fake_tree(prepared, tmp_path, monkeypatch):
  import dataclasses

  from jaxgraphs.data import label_graph, pipeline, sources
  from jaxgraphs.tools.word_vectors import class_names_from_tfds, save_word_vectors
  from training_helpers import config_file, one_step_and_evaluation

  builder, splits, _, data_dir = prepared
  names = tuple(builder.info.features["labels"].feature.names)
  # The real `vg500` source, pointed at the 3-class builder config of this fake tree.
  monkeypatch.setitem(
    sources.SOURCES,
    "vg500/unit_test",
    dataclasses.replace(
      sources.SOURCES["vg500"],
      tfds_name="vg500/unit_test",
      class_names_fn=sources._prepared_label_names("vg500/unit_test"),  # pylint: disable=protected-access
      prepare=sources._manual_builder("vg500/unit_test"),
    ),
  )  # pylint: disable=protected-access
  config = config_file("ssgrl_vg500")
  assert (config.data.source, config.data.train_split, config.data.eval_split) == ("vg500", "train", "test")
  config.data.source, config.data.data_dir = "vg500/unit_test", data_dir
  config.model.backbone, config.model.backbone_kwargs = "resnet18", {"width": 4}
  config.model.joint_dim = config.model.attention_hidden_dim = 16
  config.model.adjacency_cache_dir = str(tmp_path / "adjacency")
  config.batch_size, config.total_steps, config.data.shuffle_buffer = 2, 1, 4
  # 64 px: layer4 is 2 x 2 at stride 32, 1 x 1 after SSGRL's 2 x 2 average pool.
  config.data.pp_train = "decode|resize(80)|random_crop_choice((80, 72))|resize(64)|flip_lr|normalize_imagenet"
  config.data.pp_eval = "decode|resize(80)|center_crop(64)|normalize_imagenet"
  config.checkpoint.async_save = False

  info = pipeline.dataset_info(config.data)
  assert info.class_names == names and info.num_classes == NUM_CLASSES
  assert class_names_from_tfds("vg500/unit_test", data_dir) == list(names)
  config.model.word_vectors = str(tmp_path / "words.npy")
  save_word_vectors(
    config.model.word_vectors,
    np.random.default_rng(0).normal(size=(NUM_CLASSES, 300)).astype(np.float32),
    {"class_names": list(names)},
  )

  _, metrics, results, _ = one_step_and_evaluation(config)
  assert np.isfinite(float(metrics["loss"])) and len(results["per_class_AP"]) == NUM_CLASSES
  # The label graph is counted on the train split: A[i, j] = P(j | i), hand-counted from the fake tree.
  train_labels = [set(e["labels"].tolist()) for e in splits["train"]]
  counts = np.array(
    [[sum(i in s and j in s for s in train_labels) for j in range(NUM_CLASSES)] for i in range(NUM_CLASSES)], float
  )
  want = np.where(np.eye(NUM_CLASSES) > 0, 1.0, counts / np.maximum(np.diag(counts)[:, None], 1))
  np.testing.assert_allclose(
    want,
    np.asarray(
      label_graph.tfds_cooccurrence_adjacency(
        "vg500/unit_test", "train", cache_dir=str(tmp_path / "adjacency"), data_dir=data_dir
      )
    ),
  )


def test_read_id_list_takes_file_names_paths_and_bare_ids(tmp_path):
  path = tmp_path / "list.txt"
  path.write_text("101.jpg\n\n  VG_100K/102.jpg \n103\n")
  assert vg500.read_id_list(vg500.epath.Path(path)) == [101, 102, 103]
  path.write_text("101.jpg\nabc.jpg\n")
  with pytest.raises(ValueError, match=r"list.txt:2: expected an image file name such as 2345.jpg, got 'abc.jpg'"):
    vg500.read_id_list(vg500.epath.Path(path))
  with pytest.raises(ValueError, match="1 image ids are in both the train and the test list, e.g. 102"):
    vg500.listed_split(IMAGE_IDS, [101, 102], [102, 103], [])


def test_authors_lists_give_the_split_and_the_training_vocabulary(tmp_path):
  manual_dir = tmp_path / "manual"
  manual_dir.mkdir()
  jpegs = make_vg_tree(manual_dir)
  # 107 is in neither list and 999 is not in image_data.json: both left out; 110 (broken) and 109 (missing)
  # are skipped as in the seeded split.
  (manual_dir / "train_list_500.txt").write_text("101.jpg\n102.jpg\n104.jpg\n105.jpg\n108.jpg\n110.jpg\n999.jpg\n")
  (manual_dir / "test_list_500.txt").write_text("103.jpg\n106.jpg\n109.jpg\n")
  config = vg500.Vg500Config(
    name="unit_lists", num_classes=NUM_CLASSES, train_list="train_list_500.txt", test_list="test_list_500.txt"
  )
  builder = vg500.Vg500(config=config, data_dir=str(tmp_path / "data"))
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  ids = {
    split: sorted(int(e["image/id"]) for e in tfds.as_numpy(builder.as_dataset(split=split)))
    for split in builder.info.splits
  }
  assert ids == {"train": [101, 102, 104, 105, 108], "test": [103, 106]}
  assert all(i in jpegs for i in ids["train"] + ids["test"])
  # The vocabulary counts the listed train images (110's names too: names are counted before images are read).
  counts = {}
  for image_id in (101, 102, 104, 105, 108, 110):
    for name in normalized(image_id):
      counts[name] = counts.get(name, 0) + 1
  want = [n for n, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:NUM_CLASSES]]
  assert builder.info.features["labels"].feature.names == want
  notes = image_checks.read_skip_report(builder)["notes"]
  assert any("train list has 1 ids" in note and "999" in note for note in notes)
  assert any("1 images of image_data.json are in neither list" in note and "107" in note for note in notes)


def test_authors_lists_config_needs_both_files(tmp_path):
  make_vg_tree(tmp_path)
  (tmp_path / "train_list_500.txt").write_text("101.jpg\n")
  builder = vg500.Vg500(config="authors_lists", data_dir=str(tmp_path / "data"))
  with pytest.raises(FileNotFoundError, match="test_list_500.txt not found"):
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path)))
  half = vg500.Vg500Config(name="unit_half", train_list="train_list_500.txt")
  with pytest.raises(ValueError, match="set both train_list and test_list, or neither"):
    vg500.Vg500(config=half, data_dir=str(tmp_path / "data")).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=str(tmp_path))
    )
