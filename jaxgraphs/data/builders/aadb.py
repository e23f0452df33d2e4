"""`aadb`: the Aesthetics and Attributes Database (Kong et al., ECCV 2016) as a TFDS builder over a manual
download.

Splits follow the release's label files in `imgListFiles_label/`: `train` (8,458 images) from
`imgListTrainRegression_score.txt`, `validation` (500) from `imgListValidationRegression_score.txt` and
`test` (1,000) from `imgListTestNewRegression_score.txt` (the corrected test set; the older
`imgListTestRegression_*` files are ignored). Each line is `<filename> <score>`, the score in [0, 1].

Images are looked up by filename in the config's folders, in order: train and validation in
`datasetImages_originalSize/`, test in `AADB_newtest_originalSize/`, then `AADB_newtest/`, then
`datasetImages_originalSize/`. Some copies of the new test folder name each file `<score:.3f>_<filename>`;
that name is tried too. To build from other folders (e.g. the 256x256 `datasetImages_warp256/`), pass an
`AadbConfig` with another name and `images_dirs` / `test_images_dirs`.

Each example: `image` (the original JPEG bytes), `image/filename`, `score` (float32; the metric is
Spearman's rho on it), `label` (ClassLabel low/high: high iff score >= `high_score_threshold`, 0.5 by default,
the middle of the scale -- a convenience, the paper reports only the regression) and `attributes`: the
eleven attribute scores (float32; in [-1, 1] in the release, not checked) from
`imgList<Split>Regression_<Attribute>.txt`. An attribute whose file is absent, or that lacks the image, is
NaN, and the skip report's `notes` say which.

Images that are missing or do not decode are skipped; see `image_checks` for the report
(`skipped_images.json` next to the prepared dataset).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from jaxgraphs.data.builders import image_checks

LABEL_NAMES = ("low", "high")
LABELS_DIR = "imgListFiles_label"
SPLIT_TAGS = {"train": "Train", "validation": "Validation", "test": "TestNew"}
# Feature key -> the spellings of its file suffix (the release spells the first one 'BalacingElements').
ATTRIBUTE_FILES = {
  "balancing_elements": ("BalacingElements", "BalancingElements"),
  "color_harmony": ("ColorHarmony",),
  "content": ("Content",),
  "depth_of_field": ("DoF",),
  "light": ("Light",),
  "motion_blur": ("MotionBlur",),
  "object": ("Object",),
  "repetition": ("Repetition",),
  "rule_of_thirds": ("RuleOfThirds",),
  "symmetry": ("Symmetry",),
  "vivid_color": ("VividColor",),
}

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
AADB is not downloadable by script: get the label files (imgListFiles_label.zip), the original-size images
(datasetImages_originalSize.zip) and the new test images (AADB_newtest_originalSize.zip) from the links in
the authors' repository (github.com/aimerykong/deepImageAestheticsAnalysis), and extract them so that
`manual_dir` holds:

  <manual_dir>/{LABELS_DIR}/imgList{{Train,Validation,TestNew}}Regression_score.txt
  <manual_dir>/{LABELS_DIR}/imgList<Split>Regression_<Attribute>.txt     (optional, 11 attributes)
  <manual_dir>/datasetImages_originalSize/<filename>                         (train and validation)
  <manual_dir>/AADB_newtest_originalSize/<filename>                          (test)

Then run `python -m jaxgraphs.tools.prepare_dataset --dataset=aadb --manual_dir=<manual_dir>`
(by default TFDS looks in <data_dir>/downloads/manual/).
"""


def label_file(split: str, attribute: str) -> str:
  """Name of the label file of a split ('train', 'validation', 'test') for `attribute` ('score', ...)."""
  return f"imgList{SPLIT_TAGS[split]}Regression_{attribute}.txt"


def parse_label_file(text: str, source: str, value_range: tuple[float, float] | None = None) -> dict[str, float]:
  """Parses `<filename> <value>` lines into {filename: value}, in file order; raises naming source:line."""
  values: dict[str, float] = {}
  for line_number, line in enumerate(text.splitlines(), start=1):
    fields = line.split()
    if not fields:
      continue
    where = f"{source}:{line_number}"
    if len(fields) != 2:
      raise ValueError(f"{where}: expected '<filename> <value>', got {line!r}")
    filename, value = fields
    try:
      value = float(value)
    except ValueError:
      raise ValueError(f"{where}: value {value!r} is not a number") from None
    if not math.isfinite(value) or (value_range and not value_range[0] <= value <= value_range[1]):
      raise ValueError(f"{where}: value {value} outside {value_range or 'the finite numbers'}")
    if filename in values:
      raise ValueError(f"{where}: {filename} appears twice")
    values[filename] = value
  return values


def find_image(manual_dir: epath.Path, folders, filename: str, score: float) -> epath.Path | None:
  """First existing `<folder>/<filename>` or `<folder>/<score:.3f>_<filename>` over `folders`, else None."""
  for folder in folders:
    for name in (filename, f"{score:.3f}_{filename}"):
      path = manual_dir / folder / name
      if path.exists():
        return path
  return None


@dataclasses.dataclass(frozen=True)
class AadbRecord:
  """One labelled image of a split."""

  filename: str
  score: float
  attributes: dict[str, float]


@dataclasses.dataclass(eq=False)
class AadbConfig(tfds.core.BuilderConfig):
  """AADB options: the image folders searched (in order) and the score threshold of the binary label."""

  images_dirs: tuple[str, ...] = ("datasetImages_originalSize",)
  test_images_dirs: tuple[str, ...] = ("AADB_newtest_originalSize", "AADB_newtest", "datasetImages_originalSize")
  high_score_threshold: float = 0.5


class Aadb(image_checks.ImageCheckingBuilder):
  """AADB: 10k Flickr photos with an aesthetic score in [0, 1] and eleven attribute scores."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Train / validation / TestNew; unreadable images skipped and reported."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [AadbConfig(name="default", description="Original-size images, TestNew as test.")]

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(encoding_format="jpeg"),
          "image/filename": tfds.features.Text(),
          "score": np.float32,
          "label": tfds.features.ClassLabel(names=LABEL_NAMES),
          "attributes": tfds.features.FeaturesDict({name: np.float32 for name in ATTRIBUTE_FILES}),
        }
      ),
      supervised_keys=("image", "score"),
      homepage="https://github.com/aimerykong/deepImageAestheticsAnalysis",
      citation="""@inproceedings{kong2016photo,
  title={Photo Aesthetics Ranking Network with Attributes and Content Adaptation},
  author={Kong, Shu and Shen, Xiaohui and Lin, Zhe and Mech, Radomir and Fowlkes, Charless},
  booktitle={ECCV}, year={2016}}""",
    )

  def _read_records(self, labels_dir: epath.Path, split: str, report: image_checks.SkipReport):
    """The split's records: scores, and attributes where their files have them (NaN elsewhere)."""
    score_path = labels_dir / label_file(split, "score")
    if not score_path.exists():
      raise FileNotFoundError(f"{score_path} not found.\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
    scores = parse_label_file(score_path.read_text(), str(score_path), (0.0, 1.0))
    attributes = {filename: {} for filename in scores}
    absent = []
    for name, spellings in ATTRIBUTE_FILES.items():
      path = next((p for s in spellings if (p := labels_dir / label_file(split, s)).exists()), None)
      values = {} if path is None else parse_label_file(path.read_text(), str(path))
      if path is None:
        absent.append(name)
      elif unlabelled := [f for f in scores if f not in values]:
        report.notes.append(f"{split}: {path.name} lacks {len(unlabelled)} images (NaN), e.g. {unlabelled[0]}")
      for filename in scores:
        attributes[filename][name] = values.get(filename, math.nan)
    if absent:
      report.notes.append(f"{split}: no label file for attributes {absent} (NaN)")
    return [AadbRecord(f, score, attributes[f]) for f, score in scores.items()]

  def _plan_splits(self, manual_dir: epath.Path, report: image_checks.SkipReport) -> dict[str, list]:
    config = self.builder_config
    plan = {}
    for split in SPLIT_TAGS:
      records = self._read_records(manual_dir / LABELS_DIR, split, report)
      folders = config.test_images_dirs if split == "test" else config.images_dirs
      found, paths = [], []
      for record in records:
        path = find_image(manual_dir, folders, record.filename, record.score)
        if path is None:
          report.skip(
            split=split,
            image_id=record.filename,
            file=record.filename,
            reason=image_checks.MISSING,
            detail=f"not in {', '.join(folders)}",
          )
        else:
          found.append(record)
          paths.append(path)
      checks = self._check(report, split, [record.filename for record in found], paths)
      plan[split] = [(record, checks[record.filename]) for record in found if record.filename in checks]
    return {split: items for split, items in plan.items() if items}

  def _generate_examples(self, records):
    threshold = self.builder_config.high_score_threshold
    for record, check in records:
      yield (
        record.filename,
        {
          "image": image_checks.jpeg_bytes(check),
          "image/filename": record.filename,
          "score": np.float32(record.score),
          "label": int(record.score >= threshold),
          "attributes": {name: np.float32(value) for name, value in record.attributes.items()},
        },
      )
