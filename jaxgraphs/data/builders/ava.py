"""`ava`: the AVA aesthetics dataset (Murray et al., CVPR 2012) as a TFDS builder over a manual download.

Splits (the standard AVA split, as used by RGNet):

* `test` -- the ids listed in `aesthetics_image_lists/generic_test.jpgl` (19,930 in the release).
* `validation` -- `validation_size` (2,000) readable images held out of the rest: the ones with the smallest
  BLAKE2b hash of `"<holdout_seed>:<image id>"`. The choice depends only on the ids, not on the order of
  AVA.txt or the numpy version, and an image that turns out unreadable is replaced by the next-ranked id
  instead of reshuffling the holdout.
* `train` -- every other image of AVA.txt.

Listed images that are missing or do not decode, and rows with no votes, are skipped; see `image_checks`
for the report (`skipped_images.json` next to the prepared dataset).

Each example: `image` (the original JPEG bytes; grayscale and CMYK JPEGs are kept and decode to RGB),
`image/id` (int64), `image/filename` (`<id>.jpg`), `rating/counts` (int32[10], votes for 1..10),
`rating/distribution` (float32[10], counts / votes), `rating/mean` (float32, on the 1..10 scale), `label`
(ClassLabel low/high: high iff the mean rating >= 5, RGNet's rule, decided exactly on the integer counts),
`semantic_tags` (int32[2], AVA tag ids, 0 = none) and `challenge_id` (int32).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxgraphs.data.builders import image_checks
from jaxgraphs.evaluation.aesthetics_metrics import HIGH_MEAN_RATING

NUM_RATING_BINS = 10
LABEL_NAMES = ("low", "high")
RATINGS_FILE = "AVA.txt"
TEST_LIST = "aesthetics_image_lists/generic_test.jpgl"
IMAGES_DIR = "images"
# Reasons recorded in the skip report besides the image_checks ones.
NO_VOTES = "no votes"
NOT_IN_RATINGS = "listed in generic_test.jpgl but not in AVA.txt"

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
AVA is not downloadable by script. The authors' page no longer serves it; the release circulates as the
`AVA_dataset` archive (about 32 GB; e.g. on Academic Torrents). Extract it so that `manual_dir` holds:

  <manual_dir>/{RATINGS_FILE}                      index, image id, votes for 1..10, 2 tag ids, challenge id
  <manual_dir>/{TEST_LIST}   the standard test ids (the other lists may sit beside it)
  <manual_dir>/{IMAGES_DIR}/<image id>.jpg

Then run `python -m jaxgraphs.tools.prepare_dataset --dataset=ava --manual_dir=<manual_dir>`
(by default TFDS looks in <data_dir>/downloads/manual/).
"""


@dataclasses.dataclass(frozen=True)
class AvaRecord:
  """One row of AVA.txt."""

  image_id: int
  counts: tuple[int, ...]
  semantic_tags: tuple[int, int]
  challenge_id: int

  @property
  def num_votes(self) -> int:
    """Total number of votes."""
    return sum(self.counts)

  @property
  def is_high(self) -> bool:
    """Mean rating >= 5, compared exactly as sum(k * count_k) >= 5 * votes."""
    return sum(k * c for k, c in enumerate(self.counts, start=1)) >= HIGH_MEAN_RATING * self.num_votes


def parse_ava_txt(text: str, source: str = RATINGS_FILE) -> list[AvaRecord]:
  """Parses AVA.txt (15 space-separated integers a line); raises naming `source` and the line when malformed."""
  records, seen = [], set()
  for line_number, line in enumerate(text.splitlines(), start=1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 3 + NUM_RATING_BINS + 2:
      raise ValueError(
        f"{source}:{line_number}: expected 15 fields (index, image id, 10 vote counts, "
        f"2 semantic tags, challenge id), got {len(fields)}: {line!r}"
      )
    try:
      values = [int(field) for field in fields]
    except ValueError:
      raise ValueError(f"{source}:{line_number}: fields must be integers: {line!r}") from None
    image_id = values[1]
    if image_id in seen:
      raise ValueError(f"{source}:{line_number}: image id {image_id} appears twice")
    seen.add(image_id)
    records.append(
      AvaRecord(
        image_id=image_id, counts=tuple(values[2:12]), semantic_tags=(values[12], values[13]), challenge_id=values[14]
      )
    )
  return records


def read_id_list(text: str, source: str) -> list[int]:
  """Parses a `.jpgl` image list (one integer id a line), dropping repeats; raises naming `source` and line."""
  ids: dict[int, None] = {}
  for line_number, line in enumerate(text.splitlines(), start=1):
    if line.strip():
      try:
        ids[int(line)] = None
      except ValueError:
        raise ValueError(f"{source}:{line_number}: expected an integer image id, got {line!r}") from None
  return list(ids)


def holdout_ids(ids, size: int, seed: int) -> set[int]:
  """The `size` ids with the smallest BLAKE2b hash of "<seed>:<id>": a fixed-seed, order-free holdout."""
  if size > len(ids):
    raise ValueError(f"validation_size={size} exceeds the {len(ids)} readable training images")

  def rank(image_id: int) -> bytes:
    return hashlib.blake2b(f"{seed}:{image_id}".encode(), digest_size=16).digest()

  return set(sorted(ids, key=rank)[:size])


def rating_features(record: AvaRecord) -> dict:
  """The rating fields of an example (all but the image)."""
  counts = np.asarray(record.counts, np.int64)
  scores = np.arange(1, NUM_RATING_BINS + 1)
  return {
    "rating/counts": counts.astype(np.int32),
    "rating/distribution": (counts / counts.sum()).astype(np.float32),
    "rating/mean": np.float32((counts * scores).sum() / counts.sum()),
    "label": int(record.is_high),
    "semantic_tags": np.asarray(record.semantic_tags, np.int32),
    "challenge_id": np.int32(record.challenge_id),
  }


@dataclasses.dataclass(eq=False)
class AvaConfig(tfds.core.BuilderConfig):
  """AVA options: size and seed of the validation holdout drawn from the training images."""

  validation_size: int = 2000
  holdout_seed: int = 0


class Ava(image_checks.ImageCheckingBuilder):
  """AVA: ~255k photos with 10-bin rating histograms; standard train/test split plus a validation holdout."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Standard split, 2,000-image holdout, unreadable images skipped and reported."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [AvaConfig(name="default", description="Standard AVA split with a 2,000-image holdout.")]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(encoding_format="jpeg"),
          "image/id": np.int64,
          "image/filename": tfds.features.Text(),
          "rating/counts": tfds.features.Tensor(shape=(NUM_RATING_BINS,), dtype=np.int32),
          "rating/distribution": tfds.features.Tensor(shape=(NUM_RATING_BINS,), dtype=np.float32),
          "rating/mean": np.float32,
          "label": tfds.features.ClassLabel(names=LABEL_NAMES),
          "semantic_tags": tfds.features.Tensor(shape=(2,), dtype=np.int32),
          "challenge_id": np.int32,
        }
      ),
      supervised_keys=("image", "label"),
      homepage="https://doi.org/10.1109/CVPR.2012.6247954",
      citation="""@inproceedings{murray2012ava,
  title={AVA: A large-scale database for aesthetic visual analysis},
  author={Murray, Naila and Marchesotti, Luca and Perronnin, Florent},
  booktitle={CVPR}, year={2012}}""",
    )

  def _plan_splits(self, manual_dir: epath.Path, report: image_checks.SkipReport) -> dict[str, list]:
    ratings_path, test_path = manual_dir / RATINGS_FILE, manual_dir / TEST_LIST
    for path in (ratings_path, test_path):
      if not path.exists():
        raise FileNotFoundError(f"{path} not found.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    records = parse_ava_txt(ratings_path.read_text(), source=str(ratings_path))
    test_ids = read_id_list(test_path.read_text(), source=str(test_path))
    rated_ids = {record.image_id for record in records}
    for image_id in test_ids:
      if image_id not in rated_ids:
        report.skip(split="test", image_id=image_id, file=str(test_path), reason=NOT_IN_RATINGS)
    test_set = set(test_ids)
    pools = {
      "test": [r for r in records if r.image_id in test_set],
      "train": [r for r in records if r.image_id not in test_set],
    }

    readable = {}
    for split, pool in pools.items():
      for record in pool:
        if record.num_votes == 0:
          report.skip(split=split, image_id=record.image_id, file=str(ratings_path), reason=NO_VOTES)
      voted = [record for record in pool if record.num_votes > 0]
      ids = [record.image_id for record in voted]
      checks = self._check(report, split, ids, [manual_dir / IMAGES_DIR / f"{i}.jpg" for i in ids])
      readable[split] = [(record, checks[record.image_id]) for record in voted if record.image_id in checks]

    config = self.builder_config
    validation = holdout_ids(
      [record.image_id for record, _ in readable["train"]], config.validation_size, config.holdout_seed
    )
    plan = {
      "train": [item for item in readable["train"] if item[0].image_id not in validation],
      "validation": [item for item in readable["train"] if item[0].image_id in validation],
      "test": readable["test"],
    }
    # TFDS cannot write an empty split.
    return {split: items for split, items in plan.items() if items}

  def _generate_examples(self, records):
    for record, check in records:
      yield (
        record.image_id,
        {
          "image": image_checks.jpeg_bytes(check),
          "image/id": record.image_id,
          "image/filename": f"{record.image_id}.jpg",
          **rating_features(record),
        },
      )
