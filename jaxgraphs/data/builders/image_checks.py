"""Shared by the manual-download image builders: decode every listed image before writing it, skip the
ones that are missing or broken, and write what was skipped to a JSON report next to the prepared dataset.

Public image archives (AVA above all) hold a few truncated or non-image files. A record whose image cannot
be decoded would fail a training run hours later, inside tf.data; here it is caught while preparing, left
out, and named with its reason in `<data_dir>/<name>/<config>/<version>/skipped_images.json`.

Valid JPEGs are stored byte for byte. Images in another format (a PNG or GIF saved as `.jpg`) are converted
once to an RGB JPEG, because `tf.image.decode_image` returns a 4-D tensor for GIFs; they are listed under
`reencoded` in the same report. Grayscale and CMYK JPEGs are kept as they are: TF decodes both to RGB.
"""

from __future__ import annotations

import abc
import concurrent.futures
import contextlib
import dataclasses
import inspect
import io
import json
import os
from collections.abc import Sequence

import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from PIL import Image, ImageFile, UnidentifiedImageError
from tensorflow_datasets.core.utils import tqdm_utils

REPORT_FILENAME = "skipped_images.json"
# PIL names a JPEG with extra MPF pictures (written by many cameras) "MPO"; TF decodes its first picture.
JPEG_FORMATS = frozenset({"JPEG", "MPO"})
REENCODE_QUALITY = 95

# Reasons recorded in the report.
MISSING = "missing"
EMPTY = "empty file"
NOT_AN_IMAGE = "not an image"
DECODE_ERROR = "decode error"


@dataclasses.dataclass(frozen=True)
class ImageCheck:
  """Outcome of fully decoding one image file: its PIL format and mode, or why it cannot be used."""

  path: str
  format: str | None = None
  mode: str | None = None
  reason: str | None = None
  detail: str = ""

  @property
  def readable(self) -> bool:
    """True when the file decoded without error."""
    return self.reason is None

  @property
  def is_jpeg(self) -> bool:
    """True when the bytes are a JPEG and can be stored as they are."""
    return self.format in JPEG_FORMATS


@contextlib.contextmanager
def _strict_truncation():
  """PIL accepts truncated files when another module set LOAD_TRUNCATED_IMAGES; refuse them while checking."""
  previous = ImageFile.LOAD_TRUNCATED_IMAGES
  ImageFile.LOAD_TRUNCATED_IMAGES = False
  try:
    yield
  finally:
    ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _check_one(path: epath.Path) -> ImageCheck:
  """Reads and decodes one file (call inside `_strict_truncation`)."""
  name = os.fspath(path)
  try:
    data = path.read_bytes()
  except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
    return ImageCheck(name, reason=MISSING)
  if not data:
    return ImageCheck(name, reason=EMPTY)
  try:
    with Image.open(io.BytesIO(data)) as image:
      image.load()
      return ImageCheck(name, format=image.format, mode=image.mode)
  except UnidentifiedImageError:
    return ImageCheck(name, reason=NOT_AN_IMAGE, detail=f"{len(data)} bytes PIL cannot identify")
  except Exception as e:  # pylint: disable=broad-except  # any decoder failure means: skip this image
    return ImageCheck(name, reason=DECODE_ERROR, detail=f"{type(e).__name__}: {e}")


def check_image_files(
  paths: Sequence[os.PathLike | str], num_threads: int = 8, description: str = "Checking images"
) -> list[ImageCheck]:
  """Decodes every file with PIL (threads: the decoder releases the GIL); one ImageCheck per path, in order."""
  paths = [epath.Path(p) for p in paths]
  with _strict_truncation(), concurrent.futures.ThreadPoolExecutor(max(1, num_threads)) as pool:
    checks = pool.map(_check_one, paths)
    return list(tqdm_utils.tqdm(checks, total=len(paths), desc=description, unit=" images", leave=False))


def jpeg_bytes(check: ImageCheck) -> bytes:
  """The bytes to store for a readable image: the file itself for a JPEG, else an RGB JPEG of its first frame."""
  if not check.readable:
    raise ValueError(f"{check.path} is not readable ({check.reason}); it should have been skipped")
  data = epath.Path(check.path).read_bytes()
  if check.is_jpeg:
    return data
  with Image.open(io.BytesIO(data)) as image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=REENCODE_QUALITY)
  return buffer.getvalue()


@dataclasses.dataclass
class SkipReport:
  """What a builder left out (and converted) while preparing, written as JSON next to the prepared data."""

  dataset: str
  skipped: list[dict] = dataclasses.field(default_factory=list)
  reencoded: list[dict] = dataclasses.field(default_factory=list)
  notes: list[str] = dataclasses.field(default_factory=list)

  def skip(self, *, split: str, image_id, file: str, reason: str, detail: str = "") -> None:
    """Records one example that is not written."""
    self.skipped.append({"split": split, "id": image_id, "file": file, "reason": reason, "detail": detail})

  def add_checks(self, split: str, ids: Sequence, checks: Sequence[ImageCheck]) -> list[int]:
    """Records the unreadable and the non-JPEG images of `checks`; returns the indices of readable ones."""
    readable = []
    for index, (image_id, check) in enumerate(zip(ids, checks, strict=True)):
      if not check.readable:
        self.skip(split=split, image_id=image_id, file=check.path, reason=check.reason, detail=check.detail)
        continue
      if not check.is_jpeg:
        self.reencoded.append({"split": split, "id": image_id, "file": check.path, "format": check.format})
      readable.append(index)
    return readable

  def counts(self) -> dict[str, int]:
    """Number of skipped examples per reason."""
    counts: dict[str, int] = {}
    for entry in self.skipped:
      counts[entry["reason"]] = counts.get(entry["reason"], 0) + 1
    return dict(sorted(counts.items()))

  def as_dict(self) -> dict:
    """The JSON document: totals first, then every skipped and re-encoded example."""
    return {
      "dataset": self.dataset,
      "num_skipped": len(self.skipped),
      "skipped_by_reason": self.counts(),
      "num_reencoded": len(self.reencoded),
      "notes": self.notes,
      "skipped": self.skipped,
      "reencoded": self.reencoded,
    }

  def write(self, directory: epath.PathLike) -> epath.Path:
    """Writes `skipped_images.json` into `directory` and logs the totals; returns the file's path."""
    path = epath.Path(directory) / REPORT_FILENAME
    path.write_text(json.dumps(self.as_dict(), indent=1) + "\n")
    # `directory` is TFDS's temporary one while preparing: name the file, not the path that will vanish.
    logging.info(
      "%s: skipped %d images %s, re-encoded %d as JPEG; listed in %s next to the prepared data",
      self.dataset,
      len(self.skipped),
      self.counts(),
      len(self.reencoded),
      REPORT_FILENAME,
    )
    for note in self.notes:
      logging.warning("%s: %s", self.dataset, note)
    return path


def read_skip_report(builder: tfds.core.DatasetBuilder) -> dict:
  """The skip report of a prepared dataset, as written by `SkipReport.write`."""
  path = epath.Path(builder.data_dir) / REPORT_FILENAME
  if not path.exists():
    raise FileNotFoundError(f"{path} not found: prepare {builder.name} with download_and_prepare first")
  return json.loads(path.read_text())


class ImageCheckingBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Base of manual-download builders that decode each image before writing it and report the skipped.

  Subclasses implement `_plan_splits` (records per split, images already checked) and
  `_generate_examples(records)`.
  """

  # Threads decoding images in parallel while the splits are planned.
  CHECK_THREADS = 8

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """The subclass's file; TFDS 4.9.10's own lookup imports the undeclared `importlib_resources`."""
    return epath.Path(inspect.getfile(cls))

  @abc.abstractmethod
  def _plan_splits(self, manual_dir: epath.Path, report: SkipReport) -> dict[str, list]:
    """Reads the label files, checks the images, records skips in `report`; returns split -> records."""

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Plans every split (checking all images first) and keeps the report for `_download_and_prepare`."""
    self._skip_report = SkipReport(self.name)
    plan = self._plan_splits(epath.Path(dl_manager.manual_dir), self._skip_report)
    return {split: self._generate_examples(records) for split, records in plan.items()}

  def _download_and_prepare(self, dl_manager, download_config) -> None:
    """Generates the splits, then writes the skip report into the (temporary) dataset directory."""
    super()._download_and_prepare(dl_manager, download_config)
    report = getattr(self, "_skip_report", None)
    if report is not None:  # None when no split was generated (max_examples_per_split=0)
      report.write(self.data_dir)

  def _check(self, report: SkipReport, split: str, ids: Sequence, paths: Sequence) -> dict:
    """Checks the image of every id; records the unreadable ones; returns {id: ImageCheck} of the readable."""
    checks = check_image_files(paths, self.CHECK_THREADS, description=f"Checking {self.name} {split} images")
    readable = report.add_checks(split, ids, checks)
    return {ids[index]: checks[index] for index in readable}
