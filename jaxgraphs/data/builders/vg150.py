"""`vg150`: Visual Genome VG-150 scene graphs from the split files of Xu et al. (2017), as neural-motifs reads them.

Splits and filters follow neural-motifs' `load_graphs` (and Scene-Graph-Benchmark's copy of it) exactly:

* h5 row r is the r-th entry of `image_data.json` once the four corrupt images (ids 1592, 1722, 4616, 4617)
  are dropped; the two must then have equally many entries.
* Images without boxes (`img_to_first_box < 0`) and images without relations (`img_to_first_rel < 0`) are
  dropped in every split.
* `val` = the first `num_val_images` (5,000) of the remaining `split == 0` rows in h5 order, `train` = the
  rest of them, `test` = the remaining `split == 2` rows. Examples are written in h5 order (no shuffling at
  write time), so "the first N" of a split is well defined.
* ALL relations are kept, including several predicates for one (subject, object) pair. The train-only
  "sample one predicate per pair" and the SGDet-train-only overlap filter run in the input pipeline
  (`jaxgraphs.data.scene_graphs`).

Boxes. The h5 `boxes_1024` are integer cx, cy, w, h with the long image side at 1024. They are turned into
corners exactly as neural-motifs does it, in the array's own integer dtype:
`x1 = int(cx - w / 2)` (truncation toward zero, e.g. cx=100, w=51 -> 74; cx=5, w=11 -> 0), `x2 = x1 + w`,
likewise for y; no 1 is subtracted. These 1024-scale corners are then scaled to pixels by
`max(width, height) / 1024` (Scene-Graph-Benchmark's `box / BOX_SCALE * max(w, h)`) and stored unclipped as
`objects/box_pixels` (float32 x1, y1, x2, y2) -- the frame of the GT boxes for recall with the +1-pixel IoU
convention, as in Scene-Graph-Benchmark (neural-motifs evaluates on the 1024-scale boxes themselves, where the
+1 weighs slightly less; `box_pixels * 1024 / max(width, height)` rounds back to them exactly). `objects/bbox` holds the same boxes normalised by (height, width) and clipped to [0, 1]
(TFDS ymin, xmin, ymax, xmax), for resize-independent handling in the input pipeline; clipping matters only
for the few boxes that the h5 lets run past the short image side.

Image size. `image/width` and `image/height` are the frame of `box_pixels`. By default (config `standard`)
they are the size of the JPEG itself, read from its header: neural-motifs relates the 1024-scale boxes to
the image through the decoded JPEG's size (`BOX_SCALE / max(image.size)`), and Scene-Graph-Benchmark, which scales by `image_data.json`, warns that some of those sizes are wrong and
ships `correct_img_info` to replace them with the decoded sizes. Config `image_data_sizes` uses the
`image_data.json` sizes as they are (uncorrected Scene-Graph-Benchmark). Every disagreement is logged and
listed in the metadata (`image_size_mismatches`).

Classes. `objects/label` is a 151-way ClassLabel and `relations/predicate` a 51-way one, each with
'__background__' at 0, so the stored values are the h5 values (1..150, 1..50) and the predicate matches the
51-column output of a relation head. `relations/subject` and `relations/object` index the image's objects
(local: the h5's global object index minus `img_to_first_box`).

Images. Before anything is written, every image of the three splits is decoded in full with PIL
(`image_checks.check_image_files`, threaded; it refuses truncated files). AVA, AADB and VG-500 leave such
images out; VG-150 stops instead, since leaving one out would change the standard splits that results are
compared on. The error is one line naming each bad image's id, h5 row, path and reason. The JPEG bytes are
stored as they are. A file that is not an RGB or grayscale JPEG (PIL format/mode; e.g. CMYK) is re-encoded
as RGB JPEG (quality 95) and listed in the metadata (`reencoded_images`). EXIF orientation is ignored, as
by PIL's `size`, TF's decoder and the reference loaders.

Metadata (`builder.info.metadata`): the files used, per-split object and predicate counts (indexed by class
id), the sorted distinct (subject label, object label, predicate) triplets of the train split (all annotated
relations; for zero-shot recall), and the two lists above.

Prepare (after `import jaxgraphs.data.builders.vg150`, which registers the builder):
  tfds.builder("vg150", data_dir=DATA_DIR).download_and_prepare(
      download_config=tfds.download.DownloadConfig(manual_dir=MANUAL_DIR))
"""

from __future__ import annotations

import dataclasses
import io
import json
import os

import h5py
import numpy as np
import tensorflow_datasets as tfds
from absl import logging
from etils import epath
from PIL import Image

from jaxgraphs.data.builders import image_checks

BOX_SCALE = 1024  # long image side of `boxes_1024`
CORRUPT_IMAGE_IDS = (1592, 1722, 4616, 4617)
NUM_OBJECT_CLASSES = 151  # including the background at 0
NUM_PREDICATE_CLASSES = 51  # including the background at 0
BACKGROUND = "__background__"
# Tried in order; the plain files are neural-motifs', the "-with-attri" ones Scene-Graph-Benchmark's.
H5_FILENAMES = ("VG-SGG.h5", "VG-SGG-with-attri.h5")
DICTS_FILENAMES = ("VG-SGG-dicts.json", "VG-SGG-dicts-with-attri.json")
IMAGE_DATA_FILENAME = "image_data.json"
# Folders searched for <image_id>.jpg, relative to the manual directory, in order.
IMAGE_DIRS = ("images", "images/VG_100K", "images/VG_100K_2", "VG_100K", "VG_100K_2")
IMAGE_SIZE_SOURCES = ("jpeg", "image_data")
SPLIT_FLAGS = {"train": 0, "test": 2}
REENCODE_QUALITY = 95
CHECK_THREADS = 8  # images decoded in parallel while checking (PIL releases the GIL)
MAX_LISTED_BAD_IMAGES = 20  # bad images named in the error; the rest are counted

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
Place the VG-150 split files of Xu et al. (2017) and the Visual Genome images in the manual directory:

  <manual_dir>/
    VG-SGG.h5            (or VG-SGG-with-attri.h5)
    VG-SGG-dicts.json    (or VG-SGG-dicts-with-attri.json)
    image_data.json
    images/<image_id>.jpg   (VG_100K and VG_100K_2 merged; images/VG_100K/ and images/VG_100K_2/,
                             or VG_100K/ and VG_100K_2/ next to the h5 file, are found as well)

Where the community gets them:
* Images: Visual Genome v1.2 "images.zip" (VG_100K) and "images2.zip" (VG_100K_2) from visualgenome.org
  (mirrored at cs.stanford.edu/people/rak248/VG_100K_2/).
* image_data.json: Visual Genome's "image meta data" (image_data.json.zip) from visualgenome.org.
* VG-SGG.h5 and VG-SGG-dicts.json: the data files of Xu et al.'s scene-graph-TF-release (data_tools/README.md),
  which the neural-motifs README links; or VG-SGG-with-attri.h5 and VG-SGG-dicts-with-attri.json from the
  download link in Scene-Graph-Benchmark.pytorch's DATASET.md (same images, objects and relations, plus
  attributes, which this builder ignores).
"""


@dataclasses.dataclass(eq=False)
class Vg150Config(tfds.core.BuilderConfig):
  """VG-150 options: size of the validation split and where the pixel frame's image size comes from."""

  num_val_images: int = 5000
  image_size_source: str = "jpeg"


@dataclasses.dataclass(frozen=True)
class ManualFiles:
  """The files of the manual directory that the builder reads."""

  h5: epath.Path
  dicts: epath.Path
  image_data: epath.Path
  image_dirs: tuple[epath.Path, ...]


@dataclasses.dataclass(frozen=True)
class GraphArrays:
  """The h5 datasets that VG-150 uses, with boxes already in 1024-scale corner form."""

  labels: np.ndarray  # (N_obj,)
  boxes: np.ndarray  # (N_obj, 4) x1, y1, x2, y2 at long side 1024, h5 dtype
  first_box: np.ndarray  # (N_img,)
  last_box: np.ndarray
  relationships: np.ndarray  # (N_rel, 2) global object indices (subject, object)
  predicates: np.ndarray  # (N_rel,)
  first_rel: np.ndarray
  last_rel: np.ndarray
  split: np.ndarray  # (N_img,)


def locate_manual_files(manual_dir) -> ManualFiles:
  """Finds the h5, dicts and image_data files and the image folders in `manual_dir`, or says what is missing."""
  manual_dir = epath.Path(manual_dir)

  def first_existing(names):
    for name in names:
      if (manual_dir / name).exists():
        return manual_dir / name
    raise FileNotFoundError(
      f"none of {', '.join(names)} found in the manual directory {manual_dir}.\n\n{_MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )

  h5 = first_existing(H5_FILENAMES)
  # Pair the dicts file with the h5 file it was released with when both kinds are present.
  with_attri = h5.name == H5_FILENAMES[1]
  dicts = first_existing(DICTS_FILENAMES[::-1] if with_attri else DICTS_FILENAMES)
  image_data = first_existing((IMAGE_DATA_FILENAME,))
  image_dirs = tuple(manual_dir / d for d in IMAGE_DIRS if (manual_dir / d).is_dir())
  if not image_dirs:
    raise FileNotFoundError(
      f"no image folder ({', '.join(IMAGE_DIRS)}) in the manual directory {manual_dir}.\n\n"
      f"{_MANUAL_DOWNLOAD_INSTRUCTIONS}"
    )
  return ManualFiles(h5=h5, dicts=dicts, image_data=image_data, image_dirs=image_dirs)


def _names_by_index(mapping: dict, path, field: str, num_classes: int) -> list[str]:
  """Class names ordered by their index 1..num_classes-1 in `mapping`, with '__background__' at 0."""
  if not isinstance(mapping, dict):
    raise ValueError(f"{path}: field '{field}' must map names to indices, got {type(mapping).__name__}")
  indices = sorted(int(i) for i in mapping.values())
  if indices != list(range(1, num_classes)):
    raise ValueError(
      f"{path}: field '{field}' must give the indices 1..{num_classes - 1} once each (VG-150), got "
      f"{len(indices)} entries spanning {indices[:1]}..{indices[-1:]}"
    )
  return [BACKGROUND] + sorted(mapping, key=lambda name: int(mapping[name]))


def read_class_names(dicts_path) -> tuple[list[str], list[str]]:
  """Object (151) and predicate (51) names by index from VG-SGG-dicts.json, '__background__' at 0."""
  dicts = json.loads(epath.Path(dicts_path).read_text())
  for field in ("label_to_idx", "predicate_to_idx"):
    if field not in dicts:
      raise ValueError(f"{dicts_path}: missing field '{field}'")
  objects = _names_by_index(dicts["label_to_idx"], dicts_path, "label_to_idx", NUM_OBJECT_CLASSES)
  predicates = _names_by_index(dicts["predicate_to_idx"], dicts_path, "predicate_to_idx", NUM_PREDICATE_CLASSES)
  return objects, predicates


def read_image_records(image_data_path, num_rows: int) -> list[dict]:
  """image_data.json entries aligned with the h5 rows: the corrupt images dropped, the count checked."""
  records = json.loads(epath.Path(image_data_path).read_text())
  if not isinstance(records, list):
    raise ValueError(f"{image_data_path}: expected a list of images, got {type(records).__name__}")
  for i, record in enumerate(records):
    missing = {"image_id", "width", "height"} - set(record)
    if missing:
      raise ValueError(f"{image_data_path}: entry {i} lacks {sorted(missing)}")
  kept = [r for r in records if int(r["image_id"]) not in CORRUPT_IMAGE_IDS]
  if len(kept) != num_rows:
    raise ValueError(
      f"{image_data_path}: {len(kept)} images after dropping the corrupt ids {CORRUPT_IMAGE_IDS}, but the h5 "
      f"file has {num_rows} rows; image_data.json must list the images in h5 order (108,077 entries for the "
      "108,073 rows of VG-SGG.h5)"
    )
  return kept


def center_to_corner(boxes: np.ndarray) -> np.ndarray:
  """cx, cy, w, h -> x1, y1, x2, y2 as neural-motifs computes it: x1 = cx - w / 2 cast back to the boxes' dtype."""
  boxes = np.asarray(boxes)
  corner = np.empty_like(boxes)
  # For the h5's integer boxes the cast truncates toward zero (numpy's float -> int), as the in-place
  # assignment in neural-motifs' `load_graphs` does.
  corner[:, :2] = (boxes[:, :2] - boxes[:, 2:] / 2).astype(boxes.dtype)
  corner[:, 2:] = corner[:, :2] + boxes[:, 2:]
  return corner


def _column(h5: h5py.File, name: str, path) -> np.ndarray:
  """A (n,) or (n, 1) h5 dataset as a 1-D array, or an error naming the file and dataset."""
  if name not in h5:
    raise ValueError(f"{path}: missing dataset '{name}'")
  values = h5[name][()]
  if values.ndim == 2 and values.shape[1] == 1:
    values = values[:, 0]
  if values.ndim != 1:
    raise ValueError(f"{path}: dataset '{name}' must have shape (n,) or (n, 1), got {values.shape}")
  return values


def _matrix(h5: h5py.File, name: str, columns: int, path) -> np.ndarray:
  """An (n, columns) h5 dataset, or an error naming the file and dataset."""
  if name not in h5:
    raise ValueError(f"{path}: missing dataset '{name}'")
  values = h5[name][()]
  if values.ndim != 2 or values.shape[1] != columns:
    raise ValueError(f"{path}: dataset '{name}' must have shape (n, {columns}), got {values.shape}")
  return values


def read_graph_arrays(h5_path) -> GraphArrays:
  """Reads and checks the VG-SGG h5 datasets; boxes come back in 1024-scale corner form."""
  with h5py.File(os.fspath(h5_path), "r") as h5:
    arrays = GraphArrays(
      labels=_column(h5, "labels", h5_path),
      boxes=_matrix(h5, f"boxes_{BOX_SCALE}", 4, h5_path),
      first_box=_column(h5, "img_to_first_box", h5_path),
      last_box=_column(h5, "img_to_last_box", h5_path),
      relationships=_matrix(h5, "relationships", 2, h5_path),
      predicates=_column(h5, "predicates", h5_path),
      first_rel=_column(h5, "img_to_first_rel", h5_path),
      last_rel=_column(h5, "img_to_last_rel", h5_path),
      split=_column(h5, "split", h5_path),
    )
  num_rows = len(arrays.split)
  for name in ("first_box", "last_box", "first_rel", "last_rel"):
    if len(getattr(arrays, name)) != num_rows:
      raise ValueError(f"{h5_path}: img_to_{name} has {len(getattr(arrays, name))} rows, 'split' has {num_rows}")
  if len(arrays.boxes) != len(arrays.labels):
    raise ValueError(f"{h5_path}: {len(arrays.boxes)} boxes_{BOX_SCALE} rows but {len(arrays.labels)} labels")
  if len(arrays.relationships) != len(arrays.predicates):
    raise ValueError(f"{h5_path}: {len(arrays.relationships)} relationships but {len(arrays.predicates)} predicates")
  if arrays.labels.size and not 1 <= arrays.labels.min() <= arrays.labels.max() < NUM_OBJECT_CLASSES:
    raise ValueError(f"{h5_path}: 'labels' must lie in 1..{NUM_OBJECT_CLASSES - 1}")
  if arrays.predicates.size and not 1 <= arrays.predicates.min() <= arrays.predicates.max() < NUM_PREDICATE_CLASSES:
    raise ValueError(f"{h5_path}: 'predicates' must lie in 1..{NUM_PREDICATE_CLASSES - 1}")
  return dataclasses.replace(arrays, boxes=center_to_corner(arrays.boxes))


def split_rows(
  split: np.ndarray, first_box: np.ndarray, first_rel: np.ndarray, num_val_images: int
) -> dict[str, np.ndarray]:
  """h5 rows of train / val / test after the standard filters (no boxes, no relations), in h5 order."""
  usable = (first_box >= 0) & (first_rel >= 0)
  train = np.flatnonzero(usable & (split == SPLIT_FLAGS["train"]))
  test = np.flatnonzero(usable & (split == SPLIT_FLAGS["test"]))
  if not 0 < num_val_images < len(train):
    raise ValueError(
      f"config num_val_images={num_val_images} must lie in 1..{len(train) - 1}: the filtered train split has "
      f"{len(train)} images"
    )
  return {"train": train[num_val_images:], "val": train[:num_val_images], "test": test}


def image_graph(arrays: GraphArrays, row: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Labels (n,), 1024-scale corner boxes (n, 4) and relations (m, 3) (local subject, local object, predicate)."""
  first, last = arrays.first_box[row], arrays.last_box[row]
  labels = arrays.labels[first : last + 1]
  boxes = arrays.boxes[first : last + 1]
  if arrays.first_rel[row] < 0:
    return labels, boxes, np.zeros((0, 3), np.int64)
  rel = slice(arrays.first_rel[row], arrays.last_rel[row] + 1)
  local = arrays.relationships[rel].astype(np.int64) - first
  if local.size and (local.min() < 0 or local.max() >= len(labels)):
    raise ValueError(
      f"h5 row {row}: relationships refer to objects outside the image's boxes "
      f"img_to_first_box..img_to_last_box = {first}..{last}"
    )
  return labels, boxes, np.column_stack([local, arrays.predicates[rel]])


def boxes_to_pixels(corner_boxes: np.ndarray, width: int, height: int) -> np.ndarray:
  """1024-scale corner boxes to pixels of a width x height image (Scene-Graph-Benchmark's box / 1024 * max(w, h))."""
  return (np.asarray(corner_boxes, np.float64) * (max(width, height) / BOX_SCALE)).astype(np.float32)


def normalized_yxyx(pixel_boxes: np.ndarray, width: int, height: int) -> np.ndarray:
  """Pixel x1, y1, x2, y2 to TFDS's ymin, xmin, ymax, xmax in [0, 1] (clipped)."""
  x1, y1, x2, y2 = np.asarray(pixel_boxes, np.float64).T
  return np.clip(np.stack([y1 / height, x1 / width, y2 / height, x2 / width], axis=-1), 0.0, 1.0)


def find_image(image_dirs, image_id: int) -> epath.Path | None:
  """Path of <image_id>.jpg in the first image folder that has it, or None."""
  for folder in image_dirs:
    path = folder / f"{image_id}.jpg"
    if path.exists():
      return path
  return None


def check_images(images: dict[int, tuple[int, epath.Path]], num_threads: int = CHECK_THREADS) -> None:
  """Decodes every image ({h5 row: (image id, path)}); raises one line naming each that cannot be used."""
  rows = list(images)
  paths = [images[row][1] for row in rows]
  checks = image_checks.check_image_files(paths, num_threads, description="Checking vg150 images")
  bad = [(row, check) for row, check in zip(rows, checks) if not check.readable]
  if not bad:
    return
  named = []
  for row, check in bad[:MAX_LISTED_BAD_IMAGES]:
    # PIL's messages are one line; collapse any whitespace anyway so the error stays a single line.
    detail = " ".join(f"{check.reason} ({check.detail})".split()) if check.detail else check.reason
    named.append(f"image {images[row][0]} (h5 row {row}, {check.path}): {detail}")
  more = f"; and {len(bad) - MAX_LISTED_BAD_IMAGES} more" if len(bad) > MAX_LISTED_BAD_IMAGES else ""
  raise ValueError(
    f"vg150: {len(bad)} of {len(rows)} images cannot be decoded; replace them (leaving them out would change "
    f"the standard splits): {'; '.join(named)}{more}"
  )


def read_image(path) -> tuple[bytes, int, int, bool]:
  """Encoded JPEG bytes, width and height; re-encoded (flag True) unless the file is an RGB or grayscale JPEG."""
  data = epath.Path(path).read_bytes()
  with Image.open(io.BytesIO(data)) as image:
    width, height = image.size
    if image.format == "JPEG" and image.mode in ("RGB", "L"):
      return data, width, height, False
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=REENCODE_QUALITY)
  return buffer.getvalue(), width, height, True


def class_counts(arrays: GraphArrays, rows: np.ndarray) -> tuple[list[int], list[int]]:
  """Object-label and predicate counts (indexed by class id, background 0 included) over the given h5 rows."""
  objects = np.zeros(NUM_OBJECT_CLASSES, np.int64)
  predicates = np.zeros(NUM_PREDICATE_CLASSES, np.int64)
  for row in rows:
    labels, _, relations = image_graph(arrays, row)
    objects += np.bincount(labels, minlength=NUM_OBJECT_CLASSES)
    predicates += np.bincount(relations[:, 2], minlength=NUM_PREDICATE_CLASSES)
  return objects.tolist(), predicates.tolist()


def relation_triplets(arrays: GraphArrays, rows: np.ndarray) -> list[list[int]]:
  """Sorted distinct (subject label, object label, predicate) triplets over the given h5 rows, all relations."""
  triplets = [np.zeros((0, 3), np.int64)]
  for row in rows:
    labels, _, relations = image_graph(arrays, row)
    triplets.append(np.column_stack([labels[relations[:, 0]], labels[relations[:, 1]], relations[:, 2]]))
  return np.unique(np.concatenate(triplets).astype(np.int64), axis=0).tolist()


class Vg150(tfds.core.GeneratorBasedBuilder):
  """Visual Genome VG-150 scene graphs (Xu et al. 2017 split files, neural-motifs filters and splits)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [
    Vg150Config(name="standard", description="Pixel frame = the JPEG's own size (neural-motifs; corrected SGB)."),
    Vg150Config(
      name="image_data_sizes",
      image_size_source="image_data",
      description="Pixel frame = image_data.json sizes as shipped (uncorrected Scene-Graph-Benchmark).",
    ),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "standard"

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """This file; TFDS 4.9.10's own lookup imports the undeclared `importlib_resources` (tensorflow/datasets#11212)."""
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    """Feature spec; the class names are filled in from VG-SGG-dicts.json when the dataset is prepared."""
    return self.dataset_info_from_configs(
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
          "image/id": np.int64,
          "image/filename": tfds.features.Text(),
          "image/width": np.int32,
          "image/height": np.int32,
          "objects": tfds.features.Sequence(
            {
              "bbox": tfds.features.BBoxFeature(),
              "box_pixels": tfds.features.Tensor(shape=(4,), dtype=np.float32),
              "label": tfds.features.ClassLabel(num_classes=NUM_OBJECT_CLASSES),
            }
          ),
          "relations": tfds.features.Sequence(
            {
              "subject": np.int32,
              "object": np.int32,
              "predicate": tfds.features.ClassLabel(num_classes=NUM_PREDICATE_CLASSES),
            }
          ),
        }
      ),
      supervised_keys=None,
      disable_shuffling=True,  # keep h5 order: "the first N images" of a split stays meaningful
      metadata=tfds.core.MetadataDict(),
      homepage="https://github.com/rowanz/neural-motifs",
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    """Reads the split files, applies the standard filters and checks that every needed image is there and decodes."""
    config = self.builder_config
    if config.image_size_source not in IMAGE_SIZE_SOURCES:
      raise ValueError(f"config image_size_source={config.image_size_source!r} must be one of {IMAGE_SIZE_SOURCES}")
    files = locate_manual_files(dl_manager.manual_dir)
    object_names, predicate_names = read_class_names(files.dicts)
    self.info.features["objects"]["label"].names = object_names
    self.info.features["relations"]["predicate"].names = predicate_names
    arrays = read_graph_arrays(files.h5)
    records = read_image_records(files.image_data, len(arrays.split))
    rows = split_rows(arrays.split, arrays.first_box, arrays.first_rel, config.num_val_images)

    image_paths = {}
    for row in np.concatenate(list(rows.values())):
      image_id = int(records[row]["image_id"])
      image_paths[row] = find_image(files.image_dirs, image_id)
      if image_paths[row] is None:
        raise FileNotFoundError(f"image {image_id}.jpg (h5 row {row}) is in none of {list(files.image_dirs)}")
    check_images({row: (int(records[row]["image_id"]), path) for row, path in image_paths.items()})

    metadata = self.info.metadata
    metadata.update(
      {
        "h5_file": files.h5.name,
        "dicts_file": files.dicts.name,
        "image_size_source": config.image_size_source,
        "num_val_images": config.num_val_images,
        "image_size_mismatches": [],  # [image_id, json width, json height, jpeg width, jpeg height]
        "reencoded_images": [],
      }
    )
    for name, split_rows_ in rows.items():
      objects, predicates = class_counts(arrays, split_rows_)
      metadata[f"{name}_object_counts"] = objects
      metadata[f"{name}_predicate_counts"] = predicates
    # Triplets seen in training (all annotated relations), for zero-shot recall.
    metadata["train_triplets"] = relation_triplets(arrays, rows["train"])
    logging.info("vg150 from %s: %s images", files.h5, {k: len(v) for k, v in rows.items()})
    return {
      name: self._generate_examples(arrays, records, image_paths, split_rows_) for name, split_rows_ in rows.items()
    }

  def _generate_examples(self, arrays, records, image_paths, rows):
    """One example per h5 row, in h5 order, keyed by the Visual Genome image id."""
    for row in rows:
      record = records[row]
      image_id = int(record["image_id"])
      encoded, jpeg_width, jpeg_height, reencoded = read_image(image_paths[row])
      if reencoded:
        self.info.metadata["reencoded_images"].append(image_id)
      if (jpeg_width, jpeg_height) != (int(record["width"]), int(record["height"])):
        logging.warning(
          "vg150 image %d: image_data.json says %dx%d, the JPEG is %dx%d",
          image_id,
          record["width"],
          record["height"],
          jpeg_width,
          jpeg_height,
        )
        self.info.metadata["image_size_mismatches"].append(
          [image_id, int(record["width"]), int(record["height"]), jpeg_width, jpeg_height]
        )
      if self.builder_config.image_size_source == "jpeg":
        width, height = jpeg_width, jpeg_height
      else:
        width, height = int(record["width"]), int(record["height"])
      labels, boxes, relations = image_graph(arrays, row)
      pixels = boxes_to_pixels(boxes, width, height)
      yield (
        image_id,
        {
          "image": encoded,
          "image/id": image_id,
          "image/filename": f"{image_id}.jpg",
          "image/width": width,
          "image/height": height,
          "objects": {
            "bbox": normalized_yxyx(pixels, width, height).astype(np.float32),
            "box_pixels": pixels,
            "label": labels.astype(np.int64),
          },
          "relations": {
            "subject": relations[:, 0].astype(np.int32),
            "object": relations[:, 1].astype(np.int32),
            "predicate": relations[:, 2].astype(np.int64),
          },
        },
      )
