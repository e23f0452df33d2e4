"""Diagnostic datasets: built-in shape scenes where each paper's graph module is *needed*, not just allowed.

On `builtin_shapes` every label can be read off one object, so ablations there cannot tell a working graph
from a broken one. Each dataset here hides the answer from the part a no-graph ablation can see:

* `diagnostic_regions` (RGNet): two objects on opposite sides of the image, labelled high iff they have the
  same colour. At least `REGIONS_MIN_GAP` = 57 pixels lie between their boxes (96 px images), more
  than the 55 px theoretical receptive field of the diagnostic RGNet's regions (`configs/rgnet_diagnostic.py`:
  DenseNet stem, blocks of one layer each at output stride 8, DenseASPP rate 1). Receptive field, in input
  pixels, growing by (kernel - 1) x dilation x jump per layer:

      conv0 7x7 /2 -> 7;  pool 3x3 /2 -> 7 + 2*2 = 11 (jump 4);  block 1, one 3x3 -> 11 + 2*4 = 19;
      transition 2x2 avg /2 -> 19 + 1*4 = 23 (jump 8);  block 2, one 3x3 -> 23 + 2*8 = 39;
      DenseASPP 3x3 at rate 1 -> 39 + 2*8 = 55.

  So every region's score sees at most one object. An image score that pools region scores by LSE (any
  quasi-arithmetic mean) cannot decide a match: if g(a, a) > t for every colour a, then g(a, b) lies between
  g(a, a) and g(b, b) and is > t too. A linear classifier on globally averaged features fails the same way
  (w.(e_a + e_a) > t for all a forces w.(e_a + e_b) > t). FCN, FCN-A and FC-CNN sit at chance by
  construction; the region graph connects the two objects. Shapes and positions are independent of the label.
* `diagnostic_labels` (SSGRL): each image holds the three categories of one of 8 scene types. The 12
  categories form two groups of six, a, b, c, d, h, g, with the scene types {a, b, h}, {c, d, h}, {a, c, g},
  {b, d, g} in each group: every category is in two scene types, every pair of categories in at most one, so
  any two visible categories name the scene. In half of the images one of the three objects is covered
  entirely by an opaque occluder; its label stays positive. The other images carry the same occluder over
  empty background. `hidden` lists the covered labels and the multi-label evaluator reports mAP on them apart
  from the visible ones. Objects and occluder take the four corner slots of the image (32 px slots, 64 px
  apart at 128 px), and the diagnostic SSGRL (`configs/ssgrl_diagnostic.py`) reads ResNet's layer2 with one
  block per stage, whose locations see 51 px:

      conv1 7x7 /2 -> 7;  max pool 3x3 /2 -> 11 (jump 4);  layer1, two 3x3 -> 11 + 2*4 + 2*4 = 27;
      layer2, 3x3 /2 then 3x3 -> 27 + 2*4 = 35 (jump 8), 35 + 2*8 = 51.

  So no location's feature holds two objects. A hidden label needs a conjunction of the visible ones: h is
  hidden behind {a, b} or {c, d}, and absent (g hidden) behind {a, c} or {b, d}; every one of those four
  objects co-occurs with h, so no single object tells h apart (likewise for every category, by the symmetry
  of the design). Without the graph (w/o SI) class h's logit is w . sum_i alpha_i f_i + bias with softmax
  attention alpha_i = exp(u_i) / sum_j exp(u_j) over locations i: it exceeds a threshold t iff
  sum_i exp(u_i) (w . f_i + bias - t) > 0, one term per location, which splits into one sum V_x per object x
  plus K for occluder and background. V_a + V_b + K > 0 and V_c + V_d + K > 0 (h hidden) and
  V_a + V_c + K < 0 and V_b + V_d + K < 0 (h absent) cannot all hold: both pairs add up to the same sum. The
  same holds for a linear classifier on the average-pooled map (the baseline). The gated graph combines the
  class-specific features of the other classes through the GRU's and eq. 10's nonlinearities, which can
  compute the pairing. (Version 1 used a Steiner triple system, where every image without h shows an object
  that never occurs with h; one class's attention could score such objects low, a soft minimum that needs no
  graph, and w/o SI matched the full model.)
* `diagnostic_objects` (LinkNet): a marker (a red or blue ring) in a strip along one side of the image and
  three other objects in the strip along the opposite side, at least `OBJECTS_MIN_GAP` = 80 px from the
  marker (160 px images). Every ordered pair of the three carries a predicate that is the geometric one
  (left of / right of / above / below, by the dominant axis of the centre offset) *combined with the
  marker's colour*: 'left of (red)', ..., 'below (blue)'. The pair's classes and layout decide the first
  half, never the second. The VGG conv5 cells RoIAlign reads for a box or a union box lie within 16 px of
  it and see 78 px (39 px either side), so no RoI feature reaches the marker; only modules that mix objects
  (the relational embedding, over the marker's own box and class) or the whole image (global context) can.

Generation is deterministic: example `i` of split `s` comes from `numpy.random.SeedSequence((seed, s, i))`.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from jaxgraphs.data.builders import shapes

SPLIT_CODES = shapes.SPLIT_CODES

# ---- regions (RGNet) -----------------------------------------------------------------------------------
REGIONS_COLOURS = {"red": (210, 40, 40), "green": (40, 170, 60), "blue": (45, 75, 215), "yellow": (225, 200, 40)}
REGIONS_LABEL_NAMES = ("different", "same")
REGIONS_SIDE_RANGE = (0.13, 0.19)  # object side, fraction of the image side
REGIONS_STRIP = 0.2  # each object lies within this fraction of the image at its end of the axis
REGIONS_MIN_GAP = 57  # pixels between the boxes at 96 px; a 55 px window touches both only up to 53

# ---- labels (SSGRL) ------------------------------------------------------------------------------------
# Per group of six categories (a, b, c, d, h, g): h goes with the cue pairs {a, b} and {c, d}, g with the crossed
# pairs {a, c} and {b, d}. Every category is in two scene types and no pair of categories is in two.
_GROUP_SCENES = ((0, 1, 4), (2, 3, 4), (0, 2, 5), (1, 3, 5))
_TRIPLES = tuple(tuple(6 * group + k for k in scene) for group in range(2) for scene in _GROUP_SCENES)
LABEL_SCENES = tuple(tuple(shapes.CATEGORY_NAMES[i] for i in triple) for triple in _TRIPLES)
LABELS_HIDE_PROB = 0.5
LABELS_SLOT = 0.25  # side of each corner slot, fraction of the image side: 64 px between slots at 128 px
LABELS_SIDE_RANGE = (0.14, 0.19)
LABELS_OCCLUDER_MARGIN = 0.03  # the occluder overhangs the hidden object's sprite by this on every side

# ---- objects (LinkNet) ---------------------------------------------------------------------------------
MARKER_COLOURS = ("red", "blue")
OBJECT_SHAPES = ("circle", "square", "triangle", "star", "cross")  # rings are markers only
GEOMETRIC_PREDICATES = ("left of", "right of", "above", "below")
OBJECTS_PREDICATE_NAMES = tuple(f"{p} ({c})" for c in MARKER_COLOURS for p in GEOMETRIC_PREDICATES)
# Predicate index after a left-right flip: 'left of' <-> 'right of' within each marker colour.
OBJECTS_FLIPPED_PREDICATES = (1, 0, 2, 3, 5, 4, 6, 7)
OBJECTS_COUNT = 3
OBJECTS_SIDE_RANGE = (0.09, 0.125)
MARKER_STRIP = 0.15  # the marker lies within this fraction of the image at its side
OBJECTS_MIN_GAP = 80  # px at 160 px: > 16 + 39 px, how far a RoI feature sees beyond its box
MAX_ATTEMPTS = 1000


def _canvas(rng: np.random.Generator, size: int) -> Image.Image:
  """The blotchy grey background of builtin_shapes as a PIL image."""
  return Image.fromarray(np.clip(np.rint(shapes._background(rng, size)), 0, 255).astype(np.uint8))


def _paste(canvas: Image.Image, shape: str, side: int, offset, colour) -> np.ndarray:
  """Draws a dark-outlined flat shape at `offset` and returns its tight box (x0, y0, x1, y1, end exclusive)."""
  mask, interior, extent = shapes._sprite(shape, side)
  x, y = int(offset[0]), int(offset[1])
  colour = np.asarray(colour, np.float64)
  canvas.paste(tuple(int(v) for v in colour * 0.55), (x, y, x + side, y + side), mask)
  canvas.paste(tuple(int(v) for v in colour), (x, y, x + side, y + side), interior)
  return np.asarray(extent, np.int64) + np.array([x, y, x, y])


def _jitter(rng: np.random.Generator, base) -> np.ndarray:
  """A colour near `base` (+-20 per channel)."""
  return np.clip(np.asarray(base, np.float64) + rng.uniform(-20, 20, size=3), 0, 255)


def _to_tfds_boxes(boxes: np.ndarray, size: int) -> np.ndarray:
  """(x0, y0, x1, y1) pixel boxes -> TFDS's normalised (ymin, xmin, ymax, xmax)."""
  return (np.asarray(boxes, np.float64).reshape(-1, 4)[:, [1, 0, 3, 2]] / size).astype(np.float32)


def _place_in_strip(rng, side: int, size: int, axis: int, low: float, high: float) -> np.ndarray:
  """Top-left corner of a side x side sprite whose square lies within [low, high) along `axis`, anywhere across."""
  offset = np.empty(2, np.int64)
  offset[axis] = rng.integers(int(low), int(high) - side + 1)
  offset[1 - axis] = rng.integers(0, size - side + 1)
  return offset


def generate_regions_example(rng: np.random.Generator, image_size: int) -> dict:
  """Two objects at opposite ends of a random axis; label 1 iff their colours match (module docstring)."""
  match = bool(rng.random() < 0.5)
  names = tuple(REGIONS_COLOURS)
  first = int(rng.integers(len(names)))
  second = first if match else int((first + rng.integers(1, len(names))) % len(names))
  canvas = _canvas(rng, image_size)
  axis, flip = int(rng.integers(2)), bool(rng.integers(2))
  strip = REGIONS_STRIP * image_size
  boxes = []
  for end, colour in zip((flip, not flip), (first, second)):
    side = int(round(rng.uniform(*REGIONS_SIDE_RANGE) * image_size))
    low, high = (image_size - strip, image_size) if end else (0, strip)
    offset = _place_in_strip(rng, side, image_size, axis, low, high)
    shape = shapes.SHAPE_NAMES[int(rng.integers(len(shapes.SHAPE_NAMES)))]
    boxes.append(_paste(canvas, shape, side, offset, _jitter(rng, REGIONS_COLOURS[names[colour]])))
  boxes = np.asarray(boxes)
  return {
    "image": np.asarray(canvas, np.uint8),
    "label": np.int64(match),
    "objects": {"bbox": _to_tfds_boxes(boxes, image_size), "label": np.asarray([first, second], np.int64)},
  }


def _free_layout(rng, sides, size: int, region=None, min_gap: int = 2) -> list[np.ndarray] | None:
  """Top-left corners of square sprites that do not come within `min_gap` of each other, within `region`
  (x0, y0, x1, y1; default the image); None when random placement keeps failing."""
  x0, y0, x1, y1 = region if region is not None else (0, 0, size, size)
  sides = np.asarray(sides, np.int64)
  off_diagonal = ~np.eye(len(sides), dtype=bool)
  for _ in range(MAX_ATTEMPTS // 50):
    # 50 candidate layouts at a time; the first one that fits wins.
    xs = x0 + np.floor(rng.random((50, len(sides))) * (x1 - x0 - sides + 1)).astype(np.int64)
    ys = y0 + np.floor(rng.random((50, len(sides))) * (y1 - y0 - sides + 1)).astype(np.int64)
    squares = np.stack([xs, ys, xs + sides, ys + sides], axis=-1)
    b, o = squares[:, :, None, :], squares[:, None, :, :]
    gaps = np.maximum(
      np.maximum(o[..., 0] - b[..., 2], b[..., 0] - o[..., 2]), np.maximum(o[..., 1] - b[..., 3], b[..., 1] - o[..., 3])
    )
    fits = np.all(np.where(off_diagonal, gaps >= min_gap, True), axis=(1, 2))
    if fits.any():
      first = int(np.argmax(fits))
      return [np.array([xs[first, i], ys[first, i]]) for i in range(len(sides))]
  return None


def generate_labels_example(rng: np.random.Generator, image_size: int) -> dict:
  """The three categories of a scene type in three of the four corner slots, an occluder in the fourth or over
  one of the objects (half of the images)."""
  scene = _TRIPLES[int(rng.integers(len(_TRIPLES)))]
  hidden = int(rng.integers(3)) if rng.random() < LABELS_HIDE_PROB else -1
  slot = int(LABELS_SLOT * image_size)
  margin = max(1, int(round(LABELS_OCCLUDER_MARGIN * image_size)))
  slots = rng.permutation(4)  # object k goes to corner slots[k]; slots[3] is the decoy occluder's
  canvas = _canvas(rng, image_size)
  padded_squares, boxes = [], []
  for k in range(4):
    side = int(round(rng.uniform(*LABELS_SIDE_RANGE) * image_size))
    padded = min(side + 2 * margin, slot)
    corner = np.array([slots[k] % 2, slots[k] // 2]) * (image_size - slot)
    corner = corner + rng.integers(0, slot - padded + 1, size=2)
    padded_squares.append((corner, padded))
    if k < 3:
      category = scene[k]
      colour = shapes._object_colour(rng, category)
      boxes.append(_paste(canvas, shapes.SHAPE_NAMES[category // 2], padded - 2 * margin, corner + margin, colour))
  corner, side = padded_squares[hidden if hidden >= 0 else 3]
  occluder = Image.new("RGB", (side, side), (70, 70, 70))
  occluder.paste((150, 150, 150), (2, 2, side - 2, side - 2))
  canvas.paste(occluder, (int(corner[0]), int(corner[1])))
  categories = np.asarray(scene, np.int64)
  return {
    "image": np.asarray(canvas, np.uint8),
    "labels": np.sort(categories),
    "hidden": categories[[hidden]] if hidden >= 0 else np.zeros(0, np.int64),
    "objects": {"bbox": _to_tfds_boxes(np.asarray(boxes), image_size), "label": categories},
  }


def geometric_predicate(subject_box, object_box) -> int:
  """Index in GEOMETRIC_PREDICATES of the subject's position relative to the object (dominant axis of the
  centre offset; ties go to 'left of' / 'right of')."""
  (sx0, sy0, sx1, sy1), (ox0, oy0, ox1, oy1) = subject_box, object_box
  dx, dy = (ox0 + ox1) - (sx0 + sx1), (oy0 + oy1) - (sy0 + sy1)
  if abs(dx) >= abs(dy):
    return 0 if dx > 0 else 1
  return 2 if dy > 0 else 3


def generate_objects_example(rng: np.random.Generator, image_size: int) -> dict:
  """A marker ring along one side, three objects along the opposite side; every ordered pair of the three
  gets its geometric predicate combined with the marker's colour."""
  marker_colour = int(rng.integers(len(MARKER_COLOURS)))
  axis, flip = int(rng.integers(2)), bool(rng.integers(2))
  marker_strip = MARKER_STRIP * image_size
  marker_side = int(round(0.12 * image_size))
  # The marker's square lies in [0, marker_strip) along `axis` (or the mirrored strip); objects from
  # marker_strip + OBJECTS_MIN_GAP on, scaled with the image so that the tiny config keeps the geometry.
  gap = OBJECTS_MIN_GAP * image_size / 160
  low, high = (0, marker_strip) if not flip else (image_size - marker_strip, image_size)
  marker = _place_in_strip(rng, marker_side, image_size, axis, low, high)
  region = np.array([0, 0, image_size, image_size])
  if flip:
    region[2 + axis] = int(image_size - marker_strip - gap)
  else:
    region[axis] = int(np.ceil(marker_strip + gap))
  sides = [int(round(rng.uniform(*OBJECTS_SIDE_RANGE) * image_size)) for _ in range(OBJECTS_COUNT)]
  corners = _free_layout(rng, sides, image_size, tuple(region), min_gap=2)
  if corners is None:
    raise RuntimeError(f"no layout of {OBJECTS_COUNT} objects in a {image_size} px diagnostic_objects image")
  canvas = _canvas(rng, image_size)
  categories, boxes = [], []
  for corner, side in zip(corners, sides):
    shape = int(rng.integers(len(OBJECT_SHAPES)))
    category = shapes.category_index(f"{('red', 'blue')[int(rng.integers(2))]} {OBJECT_SHAPES[shape]}")
    categories.append(category)
    boxes.append(_paste(canvas, OBJECT_SHAPES[shape], side, corner, shapes._object_colour(rng, category)))
  ring = shapes.category_index(f"{MARKER_COLOURS[marker_colour]} ring")
  categories.append(ring)
  boxes.append(_paste(canvas, "ring", marker_side, marker, shapes._object_colour(rng, ring)))
  pairs = [(s, o) for s in range(OBJECTS_COUNT) for o in range(OBJECTS_COUNT) if s != o]
  offset = len(GEOMETRIC_PREDICATES) * marker_colour
  return {
    "image": np.asarray(canvas, np.uint8),
    "labels": np.unique(np.asarray(categories, np.int64)),
    "objects": {"bbox": _to_tfds_boxes(np.asarray(boxes), image_size), "label": np.asarray(categories, np.int64)},
    "relations": {
      "subject": np.asarray([s for s, _ in pairs], np.int64),
      "object": np.asarray([o for _, o in pairs], np.int64),
      "predicate": np.asarray([offset + geometric_predicate(boxes[s], boxes[o]) for s, o in pairs], np.int64),
    },
  }


# Same fields as builtin_shapes' configs: image side, examples per split, base seed.
DiagnosticConfig = shapes.BuiltinShapesConfig


def _configs(small_size: int, tiny_size: int) -> list[DiagnosticConfig]:
  """`small` (the diagnostic runs) and `tiny` (tests) configs."""
  return [
    DiagnosticConfig(
      name="small",
      description=f"{small_size} x {small_size} images; 4,000 train / 1,000 validation / 1,000 test.",
      image_size=small_size,
      num_train=4000,
    ),
    DiagnosticConfig(
      name="tiny",
      description=f"{tiny_size} x {tiny_size} images; 128 train / 64 validation / 64 test, for tests. The "
      "geometry is scaled down with the image: the receptive-field margins hold only for the small config.",
      image_size=tiny_size,
      num_train=128,
      num_validation=64,
      num_test=64,
    ),
  ]


class _DiagnosticBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared generation of the three diagnostic datasets; subclasses set `_generate` and `_features`."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release."}
  DEFAULT_BUILDER_CONFIG_NAME = "small"

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls) -> epath.Path:
    """This file (see `shapes.BuiltinShapes.code_path`)."""
    return epath.Path(__file__)

  def _features(self, size: int) -> dict:
    raise NotImplementedError

  def _generate(self, rng: np.random.Generator, size: int) -> dict:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    """Image, id and file name, and the dataset's own targets."""
    size = self.builder_config.image_size
    features = {
      "image": tfds.features.Image(shape=(size, size, 3), encoding_format="png"),
      "image/id": np.int64,
      "image/filename": tfds.features.Text(),
      **self._features(size),
    }
    return tfds.core.DatasetInfo(
      builder=self, description=type(self).__doc__, features=tfds.features.FeaturesDict(features)
    )

  def _split_generators(self, dl_manager):
    """Three generated splits; nothing is downloaded."""
    del dl_manager
    return {split: self._generate_examples(split) for split in SPLIT_CODES}

  def _generate_examples(self, split: str):
    """Yields (index, example) for every example of `split`."""
    config = self.builder_config
    for index in range(config.num_examples(split)):
      example = self._generate(shapes.example_rng(config.seed, split, index), config.image_size)
      yield index, shapes.encoded_example(example, split, index)


def _object_features(categories) -> tfds.features.Sequence:
  return tfds.features.Sequence({"bbox": tfds.features.BBoxFeature(), "label": categories})


class DiagnosticRegions(_DiagnosticBuilder):
  """Two distant objects, high iff their colours match: RGNet's region graph is needed (module docstring)."""

  BUILDER_CONFIGS = _configs(96, 48)

  def _features(self, size):
    return {
      "label": tfds.features.ClassLabel(names=REGIONS_LABEL_NAMES),
      "objects": _object_features(tfds.features.ClassLabel(names=tuple(REGIONS_COLOURS))),
    }

  def _generate(self, rng, size):
    return generate_regions_example(rng, size)


class DiagnosticLabels(_DiagnosticBuilder):
  """Scene-type triples with one object fully occluded in half of the images: SSGRL's label graph is needed."""

  VERSION = tfds.core.Version("2.0.0")
  RELEASE_NOTES = {
    "1.0.0": "Scene types from a partial Steiner triple system.",
    "2.0.0": "Scene types that make every hidden label a conjunction of two visible ones (module docstring).",
  }

  BUILDER_CONFIGS = _configs(128, 48)

  def _features(self, size):
    categories = tfds.features.ClassLabel(names=shapes.CATEGORY_NAMES)
    return {
      "labels": tfds.features.Sequence(categories),
      "hidden": tfds.features.Sequence(categories),
      "objects": _object_features(categories),
    }

  def _generate(self, rng, size):
    return generate_labels_example(rng, size)


class DiagnosticObjects(_DiagnosticBuilder):
  """Predicates that combine a pair's geometry with a distant marker's colour: LinkNet's context is needed."""

  BUILDER_CONFIGS = _configs(160, 64)

  def _features(self, size):
    categories = tfds.features.ClassLabel(names=shapes.CATEGORY_NAMES)
    return {
      "labels": tfds.features.Sequence(categories),
      "objects": _object_features(categories),
      "relations": tfds.features.Sequence(
        {
          "subject": np.int64,
          "object": np.int64,
          "predicate": tfds.features.ClassLabel(names=OBJECTS_PREDICATE_NAMES),
        }
      ),
    }

  def _generate(self, rng, size):
    return generate_objects_example(rng, size)


BUILDERS = {
  "diagnostic_regions": DiagnosticRegions,
  "diagnostic_labels": DiagnosticLabels,
  "diagnostic_objects": DiagnosticObjects,
}


def ensure_prepared(name: str, config: str = "small", data_dir: str | None = None) -> tfds.core.DatasetBuilder:
  """The diagnostic builder `name` for `config`, generating its files under `data_dir` on first use."""
  if name not in BUILDERS:
    raise ValueError(f"unknown diagnostic dataset {name!r}; expected one of {sorted(BUILDERS)}")
  if config not in BUILDERS[name].builder_configs:
    raise ValueError(f"unknown {name} config {config!r}; expected one of {sorted(BUILDERS[name].builder_configs)}")
  return shapes.prepare_once(functools.partial(BUILDERS[name], config=config, data_dir=data_dir), f"{name}/{config}")
