"""`builtin_shapes`: a synthetic TFDS dataset generated locally, on which all three paper models train.

Each image shows a few flat-coloured, dark-outlined shapes on a blotchy gradient background. Per image it
carries:

* `labels` -- multi-hot categories (12 = 6 shapes x 2 colours). Objects are drawn from one of eight latent
  scene types, each favouring three categories (every category belongs to two scene types), so P(j | i)
  differs strongly from P(j) and a label-graph model has structure to exploit.
* `objects` -- a tight pixel box and a category per object. Some objects are small and nested inside a
  larger one; in low-composition scenes objects may overlap and occlude each other.
* `relations` -- predicates between object pairs, decided by box geometry (see `predicate_between`), for
  each object's nearest neighbours and every nested pair (see `relation_pairs`).
* `composition` -- a score in [0, 1] from relations between regions (balance, spacing, alignment; see
  `composition_components`), a low/high label and a 10-bin rating distribution (AVA style). The label is
  drawn first and the layout is resampled until the score falls on the label's side of the threshold, so
  the object count, categories, sizes, colours and background are identically distributed for both labels.

Generation is deterministic: example `i` of split `s` comes from `numpy.random.SeedSequence((seed, s, i))`.
The exact bits depend on the numpy and Pillow versions; a prepared dataset is fixed by its files.
"""

from __future__ import annotations

import dataclasses
import fcntl
import functools
import io
import os
import sys
import time

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image, ImageDraw, ImageFilter

SHAPE_NAMES = ("circle", "square", "triangle", "star", "cross", "ring")
# Base RGB of each colour family; every object jitters its colour around the base.
COLOUR_BASES = {"red": (205, 45, 40), "blue": (40, 75, 210)}
CATEGORY_NAMES = tuple(f"{colour} {shape}" for shape in SHAPE_NAMES for colour in COLOUR_BASES)
# Each scene type draws most of its objects from three categories; every category is in two scene types.
SCENE_TYPES = (
  ("blue circle", "red star", "blue star"),
  ("red square", "blue square", "red triangle"),
  ("red circle", "red ring", "blue ring"),
  ("blue square", "red triangle", "blue triangle"),
  ("red star", "red cross", "blue cross"),
  ("blue circle", "blue triangle", "blue ring"),
  ("red circle", "red cross", "red square"),
  ("blue star", "blue cross", "red ring"),
)
PREDICATE_NAMES = ("left of", "right of", "above", "below", "inside", "contains", "overlaps", "near")
# Predicate index after a left-right flip of the image (`FLIPPED_PREDICATES[p]`): 'left of' <-> 'right of'.
FLIPPED_PREDICATES = (1, 0, 2, 3, 4, 5, 6, 7)
COMPOSITION_NAMES = ("low", "high")
NUM_RATING_BINS = 10
# High iff the expected rating 1 + 9 * score is >= 5, AVA's rule for a high-quality image.
HIGH_SCORE_THRESHOLD = 4.0 / 9.0
# Scores this close to the threshold are never generated, so the binary label is unambiguous.
SCORE_MARGIN = 0.03
RATING_SIGMA = 1.5

TOP_LEVEL_COUNT_RANGE = (2, 5)  # objects not nested in another, inclusive
OFF_SCENE_PROB = 0.1  # chance an object's category ignores the scene type
SIDE_RANGE = (0.16, 0.27)  # side of a top-level object's square sprite, fraction of the image side
NEST_PROB = 0.3
NEST_MIN_PARENT = 0.2  # smallest parent box side that can hold a nested object, fraction of the image
NEST_SIDE_RANGE = (0.42, 0.5)  # nested sprite side, fraction of the parent box's shorter side
NEAR_GAP = 0.05  # disjoint boxes closer than this (fraction of the image side) are 'near'
NEIGHBOURS_PER_OBJECT = 2
SPACING_PAIR_GAP = 0.06  # gap between regions at which spacing saturates, fraction of the image side
SPACING_BORDER_GAP = 0.03  # gap to the image border at which spacing saturates
BALANCE_RADIUS = 0.25  # centre-of-mass offset from the image centre at which balance reaches 0
ALIGN_TOL = 0.02  # centres within this of each other, or of a thirds line, are aligned
MAX_LAYOUT_ATTEMPTS = 1000
# Largest share of the smaller box that two regions may overlap by: occlusion stays partial.
MAX_OVERLAP = 0.35
# Neighbours farther apart than this (box-centre distance, fraction of the image side) get no relation,
# except each object's nearest one.
NEIGHBOUR_RADIUS = 0.5


def category_index(name: str) -> int:
  """Index of a category name in `CATEGORY_NAMES`."""
  return CATEGORY_NAMES.index(name)


_SCENE_CATEGORY_IDS = tuple(tuple(category_index(n) for n in scene) for scene in SCENE_TYPES)


@functools.lru_cache(maxsize=None)
def _sprite(shape: str, side: int) -> tuple[Image.Image, Image.Image, tuple[int, int, int, int]]:
  """Full mask, interior mask and tight box (x0, y0, x1, y1; end exclusive) of a shape in a side x side square."""
  mask = Image.new("L", (side, side), 0)
  draw = ImageDraw.Draw(mask)
  last = side - 1
  if shape == "circle":
    draw.ellipse([0, 0, last, last], fill=255)
  elif shape == "square":
    draw.rectangle([0, 0, last, last], fill=255)
  elif shape == "triangle":
    draw.polygon([(last / 2, 0), (last, last), (0, last)], fill=255)
  elif shape == "star":
    radius = last / 2
    angles = np.deg2rad(-90 + 36 * np.arange(10))
    radii = np.where(np.arange(10) % 2 == 0, radius, 0.45 * radius)
    draw.polygon(list(zip(radius + radii * np.cos(angles), radius + radii * np.sin(angles))), fill=255)
  elif shape == "cross":
    bar = max(1, round(side / 3))
    lo = (side - bar) // 2
    draw.rectangle([lo, 0, lo + bar - 1, last], fill=255)
    draw.rectangle([0, lo, last, lo + bar - 1], fill=255)
  elif shape == "ring":
    draw.ellipse([0, 0, last, last], outline=255, width=max(2, round(side / 5)))
  else:
    raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPE_NAMES}")
  interior = mask.filter(ImageFilter.MinFilter(3))
  return mask, interior, mask.getbbox()


def _contained(boxes: np.ndarray) -> np.ndarray:
  """inside[i, j]: box i lies within box j and differs from it (integer boxes x0, y0, x1, y1)."""
  b, o = boxes[:, None, :], boxes[None, :, :]
  within = (b[..., 0] >= o[..., 0]) & (b[..., 1] >= o[..., 1]) & (b[..., 2] <= o[..., 2]) & (b[..., 3] <= o[..., 3])
  return within & np.any(b != o, axis=-1)


def _box_gaps(boxes: np.ndarray) -> np.ndarray:
  """Chebyshev gap between every pair of boxes: > 0 apart, 0 touching, < 0 overlapping."""
  b, o = boxes[:, None, :], boxes[None, :, :]
  gap_x = np.maximum(o[..., 0] - b[..., 2], b[..., 0] - o[..., 2])
  gap_y = np.maximum(o[..., 1] - b[..., 3], b[..., 1] - o[..., 3])
  return np.maximum(gap_x, gap_y)


def composition_components(boxes: np.ndarray, image_size: int) -> tuple[float, float, float]:
  """Balance, spacing and alignment in [0, 1] of the regions (boxes not inside another box).

  balance: 1 - |area-weighted centre of mass - image centre| / BALANCE_RADIUS.
  spacing: the smallest gap between two regions over SPACING_PAIR_GAP, or to the border over
      SPACING_BORDER_GAP, whichever is smaller (overlaps give 0).
  alignment: fraction of regions whose centre shares a column or row with another region's centre or
      lies on a thirds line, within ALIGN_TOL.
  """
  boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
  regions = boxes[~_contained(boxes).any(axis=1)].astype(np.float64) / image_size
  x0, y0, x1, y1 = regions.T
  area = (x1 - x0) * (y1 - y0)
  centres = np.stack([(x0 + x1) / 2, (y0 + y1) / 2], axis=1)
  centre_of_mass = (area[:, None] * centres).sum(axis=0) / area.sum()
  balance = 1.0 - np.hypot(*(centre_of_mass - 0.5)) / BALANCE_RADIUS

  border_gap = np.min([x0, y0, 1.0 - x1, 1.0 - y1])
  spacing = border_gap / SPACING_BORDER_GAP
  if len(regions) > 1:
    gaps = _box_gaps(regions)
    pair_gap = gaps[~np.eye(len(regions), dtype=bool)].min()
    spacing = min(spacing, pair_gap / SPACING_PAIR_GAP)

  offsets = np.abs(centres[:, None, :] - centres[None, :, :]) <= ALIGN_TOL
  offsets[np.arange(len(regions)), np.arange(len(regions))] = False
  on_thirds = (np.abs(centres[:, :, None] - np.array([1 / 3, 2 / 3])) <= ALIGN_TOL).any(axis=(1, 2))
  alignment = np.mean(offsets.any(axis=(1, 2)) | on_thirds)
  return float(np.clip(balance, 0, 1)), float(np.clip(spacing, 0, 1)), float(alignment)


def composition_score(boxes: np.ndarray, image_size: int) -> float:
  """Mean of balance, spacing and alignment (see `composition_components`)."""
  return float(np.mean(composition_components(boxes, image_size)))


def rating_distribution(score: float) -> np.ndarray:
  """10-bin rating histogram: a Gaussian around 1 + 9 * score (sigma RATING_SIGMA) on ratings 1..10."""
  ratings = np.arange(1, NUM_RATING_BINS + 1)
  weights = np.exp(-0.5 * ((ratings - (1.0 + 9.0 * score)) / RATING_SIGMA) ** 2)
  return (weights / weights.sum()).astype(np.float32)


def predicate_between(subject_box, object_box, image_size: int) -> int:
  """Index in PREDICATE_NAMES of the subject -> object predicate of two integer boxes (x0, y0, x1, y1).

  Rules, first match wins: 'inside' / 'contains' when one box lies within the other (and differs);
  'overlaps' when they share area; 'near' when the gap between them is < NEAR_GAP of the image side;
  otherwise the dominant axis of the centre offset gives 'left of' / 'right of' (ties go here) or
  'above' / 'below' (the subject's position relative to the object).
  """
  pair = np.asarray([subject_box, object_box], np.int64)
  inside = _contained(pair)
  if inside[0, 1]:
    return PREDICATE_NAMES.index("inside")
  if inside[1, 0]:
    return PREDICATE_NAMES.index("contains")
  gap = int(_box_gaps(pair)[0, 1])
  if gap < 0:
    return PREDICATE_NAMES.index("overlaps")
  if gap < NEAR_GAP * image_size:
    return PREDICATE_NAMES.index("near")
  (sx0, sy0, sx1, sy1), (ox0, oy0, ox1, oy1) = pair
  dx, dy = (ox0 + ox1) - (sx0 + sx1), (oy0 + oy1) - (sy0 + sy1)
  if abs(dx) >= abs(dy):
    return PREDICATE_NAMES.index("left of" if dx > 0 else "right of")
  return PREDICATE_NAMES.index("above" if dy > 0 else "below")


def relation_pairs(boxes: np.ndarray, image_size: int) -> list[tuple[int, int]]:
  """Ordered (subject, object) pairs that get a relation, sorted.

  Each object relates to its nearest object and to the next NEIGHBOURS_PER_OBJECT - 1 nearest ones whose
  box centre lies within NEIGHBOUR_RADIUS (ties to the lower index); both directions of every nested
  pair are included.
  """
  boxes = np.asarray(boxes, np.int64).reshape(-1, 4)
  count = len(boxes)
  centres2 = np.stack([boxes[:, 0] + boxes[:, 2], boxes[:, 1] + boxes[:, 3]], axis=1)
  dist2 = ((centres2[:, None, :] - centres2[None, :, :]) ** 2).sum(axis=-1)
  radius2 = (2 * NEIGHBOUR_RADIUS * image_size) ** 2  # centres are doubled
  pairs = set()
  for subject in range(count):
    others = [o for o in range(count) if o != subject]
    others.sort(key=lambda o: (dist2[subject, o], o))
    within = [o for o in others[1:NEIGHBOURS_PER_OBJECT] if dist2[subject, o] <= radius2]
    pairs.update((subject, o) for o in others[:1] + within)
  inside = _contained(boxes)
  for a, b in zip(*np.nonzero(inside)):
    pairs.update({(int(a), int(b)), (int(b), int(a))})
  return sorted(pairs)


@functools.lru_cache(maxsize=None)
def _unit_grid(size: int) -> tuple[np.ndarray, np.ndarray]:
  """Pixel-centre coordinates in [-0.5, 0.5], rows and columns (float32)."""
  axis = np.arange(size, dtype=np.float32) / max(size - 1, 1) - 0.5
  return axis[:, None], axis[None, :]


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
  """Float (size, size, 3) grey-ish background: tinted level, linear gradient and coarse blotches."""
  level = (rng.uniform(80, 175) + rng.uniform(-10, 10, size=3)).astype(np.float32)
  angle = rng.uniform(0, 2 * np.pi)
  ys, xs = _unit_grid(size)
  ramp = np.float32(rng.uniform(5, 20) * 2) * (xs * np.float32(np.cos(angle)) + ys * np.float32(np.sin(angle)))
  blotches = Image.fromarray(rng.normal(0, 8, size=(4, 4)).astype(np.float32), mode="F")
  blotches = np.asarray(blotches.resize((size, size), Image.BILINEAR))
  return level + (ramp + blotches)[..., None]


def _sample_category(rng: np.random.Generator, scene: tuple[int, ...]) -> int:
  """A category from the scene type's three, or any category with probability OFF_SCENE_PROB."""
  if rng.random() < OFF_SCENE_PROB:
    return int(rng.integers(len(CATEGORY_NAMES)))
  return scene[int(rng.integers(len(scene)))]


def _layout(rng: np.random.Generator, extents: np.ndarray, size: int, want_high: bool) -> np.ndarray:
  """Integer sprite offsets (n, 2) whose tight boxes score on the wanted side of the threshold.

  Each attempt blends anchor centres on a 3 x 3 grid with free centres (uniform or clustered):
  weight 1 on the grid gives aligned, spaced layouts; weight 0 gives random or crowded ones.
  """
  count = len(extents)
  half = (extents[:, 2:] - extents[:, :2]) / 2
  tight_centre = (extents[:, :2] + extents[:, 2:]) / 2
  for attempt in range(MAX_LAYOUT_ATTEMPTS):
    if want_high:
      grid_weight = 1.0 if rng.random() < 0.4 or attempt >= 50 else rng.uniform(0.4, 1.0)
    else:
      grid_weight = rng.uniform(0.0, 0.7) if attempt < 50 else 0.0
    cells = rng.choice(9, size=count, replace=False)
    anchors = np.stack([cells % 3, cells // 3], axis=1) * (size / 3) + size / 6
    if rng.random() < 0.5:
      free = rng.uniform(half, size - half)
    else:
      free = rng.uniform(0.2 * size, 0.8 * size, size=2) + rng.normal(0, 0.12 * size, size=(count, 2))
    centres = grid_weight * anchors + (1 - grid_weight) * free
    offsets = np.rint(centres - tight_centre).astype(np.int64)
    offsets = np.clip(offsets, -extents[:, :2], size - extents[:, 2:])
    boxes = np.concatenate([offsets, offsets], axis=1) + extents
    if _max_overlap_share(boxes) > MAX_OVERLAP:
      continue
    score = composition_score(boxes, size)
    if (score >= HIGH_SCORE_THRESHOLD + SCORE_MARGIN) if want_high else (score <= HIGH_SCORE_THRESHOLD - SCORE_MARGIN):
      return offsets
  raise RuntimeError(f"no {'high' if want_high else 'low'} layout for {count} objects in {size} px images")


def _max_overlap_share(boxes: np.ndarray) -> float:
  """Largest intersection area of two boxes divided by the smaller box's area."""
  b, o = boxes[:, None, :], boxes[None, :, :]
  inter = np.clip(np.minimum(b[..., 2:], o[..., 2:]) - np.maximum(b[..., :2], o[..., :2]), 0, None).prod(-1)
  area = (boxes[:, 2:] - boxes[:, :2]).prod(-1)
  share = inter / np.minimum(area[:, None], area[None, :])
  np.fill_diagonal(share, 0)
  return float(share.max())


def _nested_sprite(rng, parent_box: np.ndarray, shape: str, size: int):
  """Sprite side and offset for an object nested at the centre of `parent_box`, or None if too small."""
  parent_side = int(min(parent_box[2] - parent_box[0], parent_box[3] - parent_box[1]))
  side = int(round(parent_side * rng.uniform(*NEST_SIDE_RANGE)))
  if parent_side < NEST_MIN_PARENT * size or side < 3:
    return None
  extent = np.asarray(_sprite(shape, side)[2])
  centre = (parent_box[:2] + parent_box[2:]) / 2 + rng.integers(-1, 2, size=2)
  offset = np.rint(centre - (extent[:2] + extent[2:]) / 2).astype(np.int64)
  # Keep the nested box strictly within the parent's box.
  offset = np.clip(offset, parent_box[:2] - extent[:2], parent_box[2:] - extent[2:])
  return side, offset


def _object_colour(rng: np.random.Generator, category: int) -> np.ndarray:
  """Jittered RGB of a category's colour family."""
  base = np.asarray(COLOUR_BASES[CATEGORY_NAMES[category].split()[0]], np.float64)
  return np.clip(base + rng.uniform(-25, 25, size=3), 0, 255)


def generate_example(rng: np.random.Generator, image_size: int) -> dict:
  """One example as plain numpy arrays, keyed like the TFDS features (without image/id, image/filename)."""
  if image_size < 32:
    raise ValueError(f"image_size must be >= 32 for legible shapes, got {image_size}")
  want_high = bool(rng.random() < 0.5)
  scene = _SCENE_CATEGORY_IDS[int(rng.integers(len(SCENE_TYPES)))]
  count = int(rng.integers(TOP_LEVEL_COUNT_RANGE[0], TOP_LEVEL_COUNT_RANGE[1] + 1))
  categories = [_sample_category(rng, scene) for _ in range(count)]
  sides = [int(round(rng.uniform(*SIDE_RANGE) * image_size)) for _ in range(count)]
  colours = [_object_colour(rng, c) for c in categories]
  background = _background(rng, image_size)

  extents = np.asarray([_sprite(SHAPE_NAMES[c // 2], s)[2] for c, s in zip(categories, sides)], np.int64)
  offsets = list(_layout(rng, extents, image_size, want_high))
  boxes = [np.concatenate([o, o]) + e for o, e in zip(offsets, extents)]

  if rng.random() < NEST_PROB:
    parent = int(rng.integers(count))
    category = _sample_category(rng, scene)
    nested = _nested_sprite(rng, boxes[parent], SHAPE_NAMES[category // 2], image_size)
    if nested is not None:
      side, offset = nested
      categories.append(category)
      sides.append(side)
      colours.append(_object_colour(rng, category))
      offsets.append(offset)
      boxes.append(np.concatenate([offset, offset]) + np.asarray(_sprite(SHAPE_NAMES[category // 2], side)[2]))

  canvas = Image.fromarray(np.clip(np.rint(background), 0, 255).astype(np.uint8))
  for category, side, colour, offset in zip(categories, sides, colours, offsets):
    mask, interior, _ = _sprite(SHAPE_NAMES[category // 2], side)
    paste_box = (int(offset[0]), int(offset[1]), int(offset[0]) + side, int(offset[1]) + side)
    canvas.paste(tuple(int(v) for v in colour * 0.55), paste_box, mask)
    canvas.paste(tuple(int(v) for v in colour), paste_box, interior)
  image = np.asarray(canvas, np.uint8)

  boxes = np.asarray(boxes, np.int64)
  balance, spacing, alignment = composition_components(boxes, image_size)
  score = (balance + spacing + alignment) / 3
  pairs = relation_pairs(boxes, image_size)
  return {
    "image": image,
    "labels": np.unique(np.asarray(categories, np.int64)),
    "objects": {
      "bbox": (boxes[:, [1, 0, 3, 2]] / image_size).astype(np.float32),
      "label": np.asarray(categories, np.int64),
    },
    "relations": {
      "subject": np.asarray([s for s, _ in pairs], np.int64),
      "object": np.asarray([o for _, o in pairs], np.int64),
      "predicate": np.asarray([predicate_between(boxes[s], boxes[o], image_size) for s, o in pairs], np.int64),
    },
    "composition": {
      "score": np.float32(score),
      "label": np.int64(score >= HIGH_SCORE_THRESHOLD),
      "distribution": rating_distribution(score),
      "balance": np.float32(balance),
      "spacing": np.float32(spacing),
      "alignment": np.float32(alignment),
    },
  }


SPLIT_CODES = {"train": 0, "validation": 1, "test": 2}


def example_rng(seed: int, split: str, index: int) -> np.random.Generator:
  """The generator that produces example `index` of `split` (independent of every other example)."""
  if split not in SPLIT_CODES:
    raise ValueError(f"unknown split {split!r}; expected one of {tuple(SPLIT_CODES)}")
  return np.random.default_rng(np.random.SeedSequence((seed, SPLIT_CODES[split], index)))


@dataclasses.dataclass(eq=False)
class BuiltinShapesConfig(tfds.core.BuilderConfig):
  """Image side in pixels, examples per split and the base seed of a `builtin_shapes` variant."""

  image_size: int = 96
  num_train: int = 5000
  num_validation: int = 1000
  num_test: int = 1000
  seed: int = 0

  def num_examples(self, split: str) -> int:
    """Number of examples in `split`."""
    return {"train": self.num_train, "validation": self.num_validation, "test": self.num_test}[split]


class BuiltinShapes(tfds.core.GeneratorBasedBuilder):
  """Synthetic shape scenes with multi-label, object, relation and composition annotations; no download."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {
    "1.0.0": "Initial release: 12 categories from 8 scene types, 8 geometric predicates, "
    "composition score from balance, spacing and alignment.",
  }
  BUILDER_CONFIGS = [
    BuiltinShapesConfig(
      name="small",
      description="96 x 96 images; 5,000 train / 1,000 validation / 1,000 test. ~30 s of one core to prepare.",
      image_size=96,
      num_train=5000,
      num_validation=1000,
      num_test=1000,
    ),
    BuiltinShapesConfig(
      name="tiny",
      description="48 x 48 images; 256 train / 128 validation / 128 test. For tests and smoke runs (seconds).",
      image_size=48,
      num_train=256,
      num_validation=128,
      num_test=128,
    ),
    BuiltinShapesConfig(
      name="medium",
      description="192 x 192 images; 20,000 train / 2,000 validation / 2,000 test.",
      image_size=192,
      num_train=20000,
      num_validation=2000,
      num_test=2000,
    ),
  ]
  DEFAULT_BUILDER_CONFIG_NAME = "small"

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """This file; TFDS 4.9.10's own lookup imports the undeclared `importlib_resources` (tensorflow/datasets#11212)."""
    return epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    """Feature spec (see the module docstring for what each field means)."""
    size = self.builder_config.image_size
    categories = tfds.features.ClassLabel(names=CATEGORY_NAMES)
    return tfds.core.DatasetInfo(
      builder=self,
      description=__doc__,
      features=tfds.features.FeaturesDict(
        {
          "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
          "image/id": np.int64,
          "image/filename": tfds.features.Text(),
          "labels": tfds.features.Sequence(categories),
          "objects": tfds.features.Sequence(
            {
              "bbox": tfds.features.BBoxFeature(),
              "label": categories,
            }
          ),
          "relations": tfds.features.Sequence(
            {
              "subject": np.int64,
              "object": np.int64,
              "predicate": tfds.features.ClassLabel(names=PREDICATE_NAMES),
            }
          ),
          "composition": tfds.features.FeaturesDict(
            {
              "score": np.float32,
              "label": tfds.features.ClassLabel(names=COMPOSITION_NAMES),
              "distribution": tfds.features.Tensor(shape=(NUM_RATING_BINS,), dtype=np.float32),
              "balance": np.float32,
              "spacing": np.float32,
              "alignment": np.float32,
            }
          ),
        }
      ),
    )

  def _split_generators(self, dl_manager):
    """Three generated splits; nothing is downloaded."""
    del dl_manager
    return {split: self._generate_examples(split) for split in SPLIT_CODES}

  def _generate_examples(self, split: str):
    """Yields (index, example) for every example of `split`."""
    config = self.builder_config
    for index in range(config.num_examples(split)):
      yield (
        index,
        encoded_example(generate_example(example_rng(config.seed, split, index), config.image_size), split, index),
      )


def encoded_example(example: dict, split: str, index: int) -> dict:
  """A generated example as TFDS stores it: the image as PNG bytes, plus image/id and image/filename."""
  # PIL's PNG encoder is several times faster than the TF graph TFDS uses for arrays.
  png = io.BytesIO()
  Image.fromarray(example["image"]).save(png, format="PNG", compress_level=3)
  example["image"] = png.getvalue()
  example["image/id"] = SPLIT_CODES[split] * 10_000_000 + index
  example["image/filename"] = f"{split}_{index:06d}.png"
  return example


def ensure_prepared(config: str | BuiltinShapesConfig = "small", data_dir: str | None = None) -> BuiltinShapes:
  """The `builtin_shapes` builder for `config`, generating its files under `data_dir` on first use."""
  if isinstance(config, str) and config not in BuiltinShapes.builder_configs:
    raise ValueError(
      f"unknown builtin_shapes config {config!r}; expected one of {sorted(BuiltinShapes.builder_configs)}"
    )
  name = config if isinstance(config, str) else config.name
  return prepare_once(functools.partial(BuiltinShapes, config=config, data_dir=data_dir), f"builtin_shapes/{name}")


def prepare_once(make_builder, name: str) -> tfds.core.DatasetBuilder:
  """The builder `make_builder()` gives, its files generated unless they exist, one process at a time on a
  local data dir.

  Processes that start together on one machine (test workers, the processes of a multi-process run) would
  otherwise generate the same dataset at once, and the one that finishes second fails to move its files into
  place. They wait on a lock file beside the dataset instead; the later ones then find it prepared (and build
  their builder again, since a builder reads the dataset's info when it is made).
  """
  builder = make_builder()
  if builder.is_prepared():
    return builder
  folder = os.path.dirname(os.fspath(builder.data_dir))
  lock = None
  if "://" not in folder:  # a local directory; object stores have no file locks
    os.makedirs(folder, exist_ok=True)
    lock = open(os.path.join(folder, ".prepare.lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
  try:
    builder = make_builder()
    if not builder.is_prepared():
      print(f"Generating {name} into {builder.data_dir} (one-off, no download) ...", file=sys.stderr, flush=True)
      start = time.perf_counter()
      builder.download_and_prepare()
      print(f"Generated {name} in {time.perf_counter() - start:.1f} s.", file=sys.stderr, flush=True)
  finally:
    if lock is not None:
      lock.close()  # releases the lock
  return builder
