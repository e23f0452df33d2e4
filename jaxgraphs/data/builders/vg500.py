"""`vg500`: Visual Genome as multi-label recognition over its 500 most frequent object names (SSGRL's Table 4).

The paper takes "the 500 most frequent categories" of Visual Genome's 108,249 images and "randomly selects
10,000 images as the test set and the rest as the training set"; its name normalisation, frequency measure and
random draw are not published (the lists the authors shipped have 82,904 train images). Here:

* Split: the image ids of `image_data.json`, sorted, and `numpy.random.default_rng(seed).permutation` of them;
  the first `num_test` (10,000) are `test`, the rest `train`. The split is drawn before any image is read, so
  it does not depend on which files are present; a missing or broken image is skipped (and reported), never
  replaced.
* Or the authors' split: with `train_list` and `test_list` (builder config `authors_lists`: the SSGRL code's
  `train_list_500.txt` / `test_list_500.txt`, 82,904 / 10,000 lines of `ID.jpg`, copied into the manual dir),
  the splits are exactly those lists (`num_test` and `seed` unused). Listed ids that `image_data.json` lacks
  and images in neither list are left out and counted in the skip report's notes. The authors' 500-name
  vocabulary is not published, so the classes are still chosen as below, from the listed train images.
* Names: every name of every object (`names` list, or `name` in older releases), normalised: lower-cased,
  whitespace collapsed to one space, leading and trailing punctuation and spaces removed; empty names dropped.
* Vocabulary: the `num_classes` (500) names occurring in the most TRAIN images (counting an image once per
  name), ties broken alphabetically, so nothing about the test images chooses the classes. Class order = that
  ranking (most frequent first); the names are stored in the dataset's ClassLabel.
* Labels: per image the sorted vocabulary ids of its names; images with none of them keep an empty list (as
  COCO's unannotated images).

Manual files (Visual Genome 1.2/1.4, visualgenome.org): `objects.json` and `image_data.json` in the manual dir,
the images as `<image_id>.jpg` in `VG_100K/` or `VG_100K_2/` (or `images/...`). Images that are missing or do
not decode are skipped and listed in `skipped_images.json` next to the prepared dataset (see image_checks).

  python -m jaxgraphs.tools.prepare_dataset --dataset=vg500 --manual_dir=/data/visual_genome
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import re
import string

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxgraphs.data.builders import image_checks

OBJECTS_FILENAME = "objects.json"
IMAGE_DATA_FILENAME = "image_data.json"
# Folders searched for <image_id>.jpg, relative to the manual directory, in order.
IMAGE_DIRS = ("VG_100K", "VG_100K_2", "images", "images/VG_100K", "images/VG_100K_2")

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download from https://visualgenome.org/api/v0/api_home.html: objects.json (objects.json.zip), image_data.json
(image_data.json.zip) and the images (images.zip, images2.zip), and extract them so that `manual_dir` holds

  <manual_dir>/{OBJECTS_FILENAME}
  <manual_dir>/{IMAGE_DATA_FILENAME}
  <manual_dir>/VG_100K/<image_id>.jpg and <manual_dir>/VG_100K_2/<image_id>.jpg

Then run `python -m jaxgraphs.tools.prepare_dataset --dataset=vg500 --manual_dir=<manual_dir>`.
"""

_PUNCTUATION = string.punctuation + string.whitespace


def normalize_name(name: str) -> str:
  """'  Red  Car. ' -> 'red car': lower case, single spaces, no punctuation or spaces at either end."""
  return re.sub(r"\s+", " ", name.lower()).strip(_PUNCTUATION)


def image_id_of(entry: dict, source: str) -> int:
  """The image id of an objects.json or image_data.json entry ('image_id', else 'id')."""
  for key in ("image_id", "id"):
    if key in entry:
      return int(entry[key])
  raise ValueError(f"{source}: an entry has neither 'image_id' nor 'id' (keys {sorted(entry)[:8]})")


def object_names(obj: dict) -> list[str]:
  """The raw names of one object: its `names` list, or the single `name` of older releases."""
  if "names" in obj:
    return list(obj["names"])
  return [obj["name"]] if "name" in obj else []


def names_per_image(objects: list[dict], source: str = OBJECTS_FILENAME) -> dict[int, set[str]]:
  """{image id: set of normalised object names} from the parsed objects.json."""
  names: dict[int, set[str]] = {}
  for entry in objects:
    image_names = names.setdefault(image_id_of(entry, source), set())
    for obj in entry.get("objects", []):
      image_names.update(n for n in map(normalize_name, object_names(obj)) if n)
  return names


def split_ids(image_ids, num_test: int, seed: int) -> dict[str, list[int]]:
  """{'train': ids, 'test': ids}, both sorted: the first `num_test` of a seeded permutation of the sorted ids."""
  ids = np.array(sorted(set(int(i) for i in image_ids)), np.int64)
  if not 0 < num_test < len(ids):
    raise ValueError(f"num_test={num_test} must be between 1 and the number of images minus 1 ({len(ids) - 1})")
  order = np.random.default_rng(seed).permutation(len(ids))
  return {"train": sorted(ids[order[num_test:]].tolist()), "test": sorted(ids[order[:num_test]].tolist())}


def read_id_list(path: epath.Path) -> list[int]:
  """Image ids of a split list: one `ID.jpg` (or `ID`, or a path ending in it) a line; blank lines ignored."""
  ids = []
  for number, line in enumerate(path.read_text().splitlines(), 1):
    entry = line.strip().rsplit("/", 1)[-1]
    if not entry:
      continue
    stem = entry[: -len(".jpg")] if entry.lower().endswith(".jpg") else entry
    if not stem.isdigit():
      raise ValueError(f"{path}:{number}: expected an image file name such as 2345.jpg, got {line.strip()!r}")
    ids.append(int(stem))
  return ids


def listed_split(image_ids, train_ids, test_ids, notes: list[str]) -> dict[str, list[int]]:
  """{'train': ids, 'test': ids}, both sorted, from given lists; ids outside `image_ids` are dropped (noted)."""
  train, test, known = set(train_ids), set(test_ids), set(int(i) for i in image_ids)
  if both := sorted(train & test):
    raise ValueError(f"{len(both)} image ids are in both the train and the test list, e.g. {both[0]}")
  for name, ids in (("train", train), ("test", test)):
    if unknown := sorted(ids - known):
      notes.append(
        f"the {name} list has {len(unknown)} ids that {IMAGE_DATA_FILENAME} lacks (left out), e.g. {unknown[0]}"
      )
  if unlisted := sorted(known - train - test):
    notes.append(f"{len(unlisted)} images of {IMAGE_DATA_FILENAME} are in neither list (left out), e.g. {unlisted[0]}")
  return {"train": sorted(train & known), "test": sorted(test & known)}


def vocabulary(names: dict[int, set[str]], image_ids, num_classes: int) -> list[str]:
  """The `num_classes` names found in the most of `image_ids`' images, most frequent first, ties alphabetical."""
  counts = collections.Counter(name for i in image_ids for name in names.get(i, ()))
  if len(counts) < num_classes:
    raise ValueError(
      f"the training images have only {len(counts)} distinct object names, fewer than num_classes={num_classes}"
    )
  return [name for name, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:num_classes]]


def find_image(manual_dir: epath.Path, image_id: int) -> epath.Path | None:
  """<image_id>.jpg in the first of IMAGE_DIRS that has it."""
  for folder in IMAGE_DIRS:
    path = manual_dir / folder / f"{image_id}.jpg"
    if path.exists():
      return path
  return None


@dataclasses.dataclass(eq=False)
class Vg500Config(tfds.core.BuilderConfig):
  """Vocabulary size, test-split size and the seed of the split, or files that give the split."""

  num_classes: int = 500
  num_test: int = 10_000
  seed: int = 0
  # Both or neither: files of `ID.jpg` lines (relative paths are in the manual dir); they replace the seeded split.
  train_list: str = ""
  test_list: str = ""


class Vg500(image_checks.ImageCheckingBuilder):
  """Visual Genome images with multi-label targets over the 500 most frequent (training) object names."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Seeded 10,000-image test split; vocabulary from the train split's image counts."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
    Vg500Config(name="default", description="500 classes, 10,000 test images, seed 0."),
    Vg500Config(
      name="authors_lists",
      description="500 classes; the SSGRL authors' train_list_500.txt / test_list_500.txt (in the manual dir).",
      train_list="train_list_500.txt",
      test_list="test_list_500.txt",
    ),
  ]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(encoding_format="jpeg"),
          "image/filename": tfds.features.Text(),
          "image/id": np.int64,
          # Names are set from the training split while preparing (and then saved with the dataset).
          "labels": tfds.features.Sequence(tfds.features.ClassLabel(num_classes=self.builder_config.num_classes)),
        }
      ),
      homepage="https://visualgenome.org",
      citation="""@article{krishna2017visual,
  title={Visual Genome: Connecting Language and Vision Using Crowdsourced Dense Image Annotations},
  author={Krishna, Ranjay and Zhu, Yuke and Groth, Oliver and others}, journal={IJCV}, year={2017}}""",
    )

  def _read_json(self, path: epath.Path):
    if not path.exists():
      raise FileNotFoundError(f"{path} not found.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    return json.loads(path.read_text())

  def _plan_splits(self, manual_dir: epath.Path, report: image_checks.SkipReport) -> dict[str, list]:
    config = self.builder_config
    image_ids = [image_id_of(entry, IMAGE_DATA_FILENAME) for entry in self._read_json(manual_dir / IMAGE_DATA_FILENAME)]
    names = names_per_image(self._read_json(manual_dir / OBJECTS_FILENAME))
    if unknown := sorted(set(names) - set(image_ids)):
      report.notes.append(
        f"{OBJECTS_FILENAME} has {len(unknown)} image ids that {IMAGE_DATA_FILENAME} lacks (ignored), e.g. {unknown[0]}"
      )
    if config.train_list or config.test_list:
      splits = self._listed_split(manual_dir, image_ids, report)
    else:
      splits = split_ids(image_ids, config.num_test, config.seed)
    classes = vocabulary(names, splits["train"], config.num_classes)
    self.info.features["labels"].feature.names = classes
    index = {name: i for i, name in enumerate(classes)}
    plan = {}
    for split, ids in splits.items():
      found, paths = [], []
      for image_id in ids:
        path = find_image(manual_dir, image_id)
        if path is None:
          report.skip(
            split=split,
            image_id=image_id,
            file=f"{image_id}.jpg",
            reason=image_checks.MISSING,
            detail=f"not in {', '.join(IMAGE_DIRS)}",
          )
        else:
          found.append(image_id)
          paths.append(path)
      checks = self._check(report, split, found, paths)
      plan[split] = [
        (image_id, sorted(index[n] for n in names.get(image_id, ()) if n in index), checks[image_id])
        for image_id in found
        if image_id in checks
      ]
    return {split: items for split, items in plan.items() if items}

  def _listed_split(self, manual_dir: epath.Path, image_ids, report: image_checks.SkipReport) -> dict[str, list]:
    """The split of the config's train_list / test_list files."""
    config = self.builder_config
    if not (config.train_list and config.test_list):
      raise ValueError(f"vg500 config {config.name!r}: set both train_list and test_list, or neither")
    lists = []
    for name in (config.train_list, config.test_list):
      path = manual_dir / os.path.expanduser(name)  # an absolute path replaces manual_dir
      if not path.exists():
        raise FileNotFoundError(
          f"{path} not found: the vg500 config {config.name!r} takes its split from it (the SSGRL code's "
          "data/VG/train_list_500.txt and test_list_500.txt, copied into the manual dir)"
        )
      lists.append(read_id_list(path))
    return listed_split(image_ids, *lists, report.notes)

  def _generate_examples(self, records):
    for image_id, labels, check in records:
      yield (
        image_id,
        {
          "image": image_checks.jpeg_bytes(check),
          "image/filename": f"{image_id}.jpg",
          "image/id": image_id,
          "labels": labels,
        },
      )
