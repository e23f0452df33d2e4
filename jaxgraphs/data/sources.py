"""Dataset sources: a registry from `config.data.source` to a TFDS dataset read as multi-label examples.

Every source maps a raw TFDS example (image left encoded) to the canonical dict

  image          tf.string  the encoded file, decoded later by the `decode` op (robustly, see image_decoding)
  labels         float32 (C,)  multi-hot targets in the dataset's class order
  label_weights  float32 (C,)  1 where the entry counts, 0 where it is ignored (VOC "difficult"-only classes)
  image_id       tf.string  for logs (e.g. which image was skipped); dropped before batches reach JAX

and, when `config.data.max_boxes > 0`, the variable-length object annotations

  boxes          float32 (N, 4)  normalised (ymin, xmin, ymax, xmax), updated by crops and flips
  box_labels     int32 (N,)

which the pipeline pads to `max_boxes` rows with a `box_mask` after preprocessing.

Aesthetics sources (RGNet; `Source.targets` lists what each provides) emit instead of labels:

  label          int32 ()  0 low / 1 high aesthetics
  score          float32 ()  the dataset's score: AVA's mean rating (1..10), AADB's score ([0, 1]),
                 builtin_shapes' composition score ([0, 1])
  distribution   float32 (10,)  rating histogram summing to 1 (AVA's votes, builtin_shapes' ratings; not AADB)

Scene-graph sources (LinkNet; `SceneGraphSource`: vg150, builtin_shapes/*:scene_graph) emit `labels` and
`label_weights` over the object classes (index 0 = background, never positive) plus always `boxes`,
`box_labels` and `relations` (subject, object, predicate; predicate 0 = background), which the ops
`one_predicate_per_pair`, `pack_scene_graph` and `sample_relation_pairs` of their pp strings turn into the
fixed-size `object_*`, `relations`, `relation_mask` and `pair*` arrays (see transforms).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Mapping

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from jaxgraphs.data import image_decoding
from jaxgraphs.errors import ConfigError

# SSGRL's official transforms, the multi-label sources' default: no horizontal flip (the released code has none).
SSGRL_PP_TRAIN = "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|normalize_imagenet"
SSGRL_PP_EVAL = "decode|resize(640)|center_crop(576)|normalize_imagenet"
SHAPES_PP_TRAIN = "decode|resize(72)|random_crop(64)|flip_lr|normalize_imagenet"
SHAPES_PP_EVAL = "decode|resize(72)|center_crop(64)|normalize_imagenet"
SHAPES_MEDIUM_PP_TRAIN = "decode|resize(144)|random_crop(128)|flip_lr|normalize_imagenet"
SHAPES_MEDIUM_PP_EVAL = "decode|resize(144)|center_crop(128)|normalize_imagenet"
SHAPES_TINY_PP_TRAIN = "decode|resize(36)|random_crop(32)|flip_lr|normalize_imagenet"
SHAPES_TINY_PP_EVAL = "decode|resize(36)|center_crop(32)|normalize_imagenet"
VOC_DIFFICULT = ("ignore", "negative")
# RGNet (Sec. 3.3): resize to 300 x 300, flip, scale by [1.05, 1.25] and crop 300 x 300; test: resize 300.
RGNET_PP_TRAIN = "decode|resize(300)|flip_lr|random_scale_crop(1.05, 1.25, 300)|normalize_imagenet"
RGNET_PP_EVAL = "decode|resize(300)|normalize_imagenet"
# builtin_shapes composition: flips keep the score (balance, spacing, alignment are mirror-symmetric), but a
# scaled crop can cut a shape at the border and change the spacing term, so the label: no crop. Native sizes.
SHAPES_SIZES = {"tiny": 48, "small": 96, "medium": 192}
SHAPES_COMPOSITION_PP_TRAIN = "decode|resize({size})|flip_lr|normalize_imagenet"
SHAPES_COMPOSITION_PP_EVAL = "decode|resize({size})|normalize_imagenet"
AESTHETICS_CLASS_NAMES = ("low", "high")

# COCO's 80 categories in category-id order, which is TFDS coco's label order (its names are only filled in
# from the annotation files at preparation time, so they are not available from code).
COCO_CLASS_NAMES = (
  "person",
  "bicycle",
  "car",
  "motorcycle",
  "airplane",
  "bus",
  "train",
  "truck",
  "boat",
  "traffic light",
  "fire hydrant",
  "stop sign",
  "parking meter",
  "bench",
  "bird",
  "cat",
  "dog",
  "horse",
  "sheep",
  "cow",
  "elephant",
  "bear",
  "zebra",
  "giraffe",
  "backpack",
  "umbrella",
  "handbag",
  "tie",
  "suitcase",
  "frisbee",
  "skis",
  "snowboard",
  "sports ball",
  "kite",
  "baseball bat",
  "baseball glove",
  "skateboard",
  "surfboard",
  "tennis racket",
  "bottle",
  "wine glass",
  "cup",
  "fork",
  "knife",
  "spoon",
  "bowl",
  "banana",
  "apple",
  "sandwich",
  "orange",
  "broccoli",
  "carrot",
  "hot dog",
  "pizza",
  "donut",
  "cake",
  "chair",
  "couch",
  "potted plant",
  "bed",
  "dining table",
  "toilet",
  "tv",
  "laptop",
  "mouse",
  "remote",
  "keyboard",
  "cell phone",
  "microwave",
  "oven",
  "toaster",
  "sink",
  "refrigerator",
  "book",
  "clock",
  "vase",
  "scissors",
  "teddy bear",
  "hair drier",
  "toothbrush",
)
VOC_CLASS_NAMES = (
  "aeroplane",
  "bicycle",
  "bird",
  "boat",
  "bottle",
  "bus",
  "car",
  "cat",
  "chair",
  "cow",
  "diningtable",
  "dog",
  "horse",
  "motorbike",
  "person",
  "pottedplant",
  "sheep",
  "sofa",
  "train",
  "tvmonitor",
)


def multi_hot(indices: tf.Tensor, num_classes: int) -> tf.Tensor:
  """float32 (C,) with ones at `indices` (repeats allowed, empty gives all zeros)."""
  hits = tf.reduce_sum(tf.one_hot(tf.cast(indices, tf.int32), num_classes, dtype=tf.float32), axis=0)
  return tf.minimum(hits, 1.0)


def _with_boxes(example: dict, raw: Mapping, options) -> dict:
  """Adds the objects' boxes and labels when the config asks for them."""
  if options.get("max_boxes", 0) > 0:
    example["boxes"] = tf.cast(raw["objects"]["bbox"], tf.float32)
    example["box_labels"] = tf.cast(raw["objects"]["label"], tf.int32)
  return example


def coco_example(raw: Mapping, num_classes: int, options) -> dict:
  """COCO: every annotated category is positive; images without annotations are all-zero rows."""
  labels = multi_hot(raw["objects"]["label"], num_classes)
  example = {
    "image": raw["image"],
    "labels": labels,
    "label_weights": tf.ones_like(labels),
    "image_id": tf.strings.as_string(raw["image/id"]),
  }
  return _with_boxes(example, raw, options)


def voc_example(raw: Mapping, num_classes: int, options) -> dict:
  """VOC: positive if a non-difficult instance exists; a class with only difficult instances is ignored or negative."""
  mode = options.get("voc_difficult", "ignore")
  if mode not in VOC_DIFFICULT:
    raise ValueError(f"config.data.voc_difficult must be one of {VOC_DIFFICULT}, got {mode!r}")
  positive = multi_hot(raw["labels_no_difficult"], num_classes)
  present = multi_hot(raw["labels"], num_classes)
  if mode == "ignore":
    weights = 1.0 - (present - positive)  # the standard protocol
  else:
    weights = tf.ones_like(positive)  # the SSGRL code: difficult-only classes are negatives
  example = {"image": raw["image"], "labels": positive, "label_weights": weights, "image_id": raw["image/filename"]}
  return _with_boxes(example, raw, options)


def class_label_example(raw: Mapping, num_classes: int, options) -> dict:
  """Datasets with a `labels` Sequence(ClassLabel) and no ignored entries (builtin_shapes)."""
  labels = multi_hot(raw["labels"], num_classes)
  example = {
    "image": raw["image"],
    "labels": labels,
    "label_weights": tf.ones_like(labels),
    "image_id": raw["image/filename"],
  }
  return _with_boxes(example, raw, options)


def ava_example(raw: Mapping, num_classes: int, options) -> dict:
  """AVA: high iff the mean rating >= 5, the mean rating (1..10) as score, the vote histogram."""
  del num_classes, options
  return {
    "image": raw["image"],
    "label": tf.cast(raw["label"], tf.int32),
    "score": tf.cast(raw["rating/mean"], tf.float32),
    "distribution": tf.cast(raw["rating/distribution"], tf.float32),
    "image_id": tf.strings.as_string(raw["image/id"]),
  }


def aadb_example(raw: Mapping, num_classes: int, options) -> dict:
  """AADB: the score in [0, 1] and the builder's high iff score >= 0.5 label (no rating histogram)."""
  del num_classes, options
  return {
    "image": raw["image"],
    "label": tf.cast(raw["label"], tf.int32),
    "score": tf.cast(raw["score"], tf.float32),
    "image_id": raw["image/filename"],
  }


def shapes_composition_example(raw: Mapping, num_classes: int, options) -> dict:
  """builtin_shapes' composition targets: label, score in [0, 1], 10-bin rating distribution."""
  del num_classes, options
  composition = raw["composition"]
  return {
    "image": raw["image"],
    "label": tf.cast(composition["label"], tf.int32),
    "score": tf.cast(composition["score"], tf.float32),
    "distribution": tf.cast(composition["distribution"], tf.float32),
    "image_id": raw["image/filename"],
  }


def _manual_builder(name: str) -> Callable[[str | None], tfds.core.DatasetBuilder]:
  """Our manually downloaded datasets (ava, aadb): the prepared builder, or an error saying how to prepare it."""

  def prepare(data_dir):
    from jaxgraphs.data.builders import registry  # registers the builder with TFDS

    builder = registry.builder(name, data_dir=data_dir)
    if not builder.is_prepared():
      raise FileNotFoundError(
        f"config.data.source: {name} is not prepared in {builder.data_dir}; run `python -m "
        f"jaxgraphs.tools.prepare_dataset --dataset={name} --manual_dir=<the extracted download>"
        f"{' --data_dir=' + data_dir if data_dir else ''}` first"
      )
    return builder

  return prepare


def _prepared_label_names(name: str) -> Callable[[str | None], tuple[str, ...]]:
  """The `labels` ClassLabel names of a prepared manual dataset (vg500's vocabulary is chosen while preparing)."""

  def class_names(data_dir):
    return tuple(_manual_builder(name)(data_dir).info.features["labels"].feature.names)

  return class_names


def _shapes_builder(config_name: str) -> Callable[[str | None], tfds.core.DatasetBuilder]:
  """The builtin_shapes builder for one config, generated on first use."""

  def prepare(data_dir):
    from jaxgraphs.data.builders import shapes  # registers the builder with TFDS

    return shapes.ensure_prepared(config_name, data_dir)

  return prepare


def _shapes_class_names() -> tuple[str, ...]:
  from jaxgraphs.data.builders import shapes

  return tuple(shapes.CATEGORY_NAMES)


@dataclasses.dataclass(frozen=True)
class Source:
  """A TFDS dataset read as multi-label classification, with its default splits and preprocessing."""

  tfds_name: str
  to_example: Callable[[Mapping, int, object], dict]
  class_names_fn: Callable[[], tuple[str, ...]]
  train_split: str
  eval_split: str
  pp_train: str
  pp_eval: str
  # Generated datasets: returns the prepared builder for a data_dir; None for datasets prepared by `tfds build`.
  prepare: Callable[[str | None], tfds.core.DatasetBuilder] | None = None
  # Datasets whose classes are only known once prepared (vg500): class_names_fn(data_dir) reads them.
  classes_from_prepared: bool = False
  # What an example carries to learn from: ('labels',) multi-hot; aesthetics: some of 'label', 'score',
  # 'distribution'; scene graphs: ('objects', 'relations').
  targets: tuple[str, ...] = ("labels",)
  # The TFDS feature whose classes count as a training image's positive labels (for label co-occurrence):
  # COCO's object labels; VOC's labels without difficult-only classes, whichever config.data.voc_difficult.
  positive_label_key: str = "labels"
  # config.data.decode_chunk_size=-1 decodes this many images per tf.data dataset (image_decoding) on a large split:
  # 64 pays off on photos; the generated sources' small images decode in microseconds, where one per dataset is
  # faster (the built-in quickstart-sized run: 33 s against 41 s with 64).
  decode_chunk_size: int = image_decoding.CHUNK_SIZE

  @property
  def class_names(self) -> tuple[str, ...]:
    """Class names in label order (of the dataset prepared in TFDS's default data_dir where they depend on it)."""
    return self.class_names_in(None)

  def class_names_in(self, data_dir: str | None) -> tuple[str, ...]:
    """Class names in label order of the dataset as prepared in `data_dir`."""
    return tuple(self.class_names_fn(data_dir) if self.classes_from_prepared else self.class_names_fn())

  @property
  def num_classes(self) -> int:
    """Number of classes C."""
    return len(self.class_names)

  def builder(self, data_dir: str | None = None, download: bool = False) -> tfds.core.DatasetBuilder:
    """The TFDS builder; generated sources are prepared on first use, others only with `download`."""
    if self.prepare is not None:
      return self.prepare(data_dir)
    builder = tfds.builder(self.tfds_name, data_dir=data_dir)
    if download:
      builder.download_and_prepare()
    return builder

  def adapter(self, options) -> Callable[[Mapping], dict]:
    """raw TFDS example -> canonical example, for the given `config.data` options."""
    num_classes = len(self.class_names_in(options.get("data_dir") or None))
    # The ops use tf.cond where they branch, so AutoGraph's (slow) conversion is not needed.
    return tf.autograph.experimental.do_not_convert(lambda raw: self.to_example(raw, num_classes, options))


def get_source(name: str) -> Source:
  """The registered source `name`; an unknown name fails naming `config.data.source` and the valid ones."""
  if name not in SOURCES:
    raise ConfigError(f"config.data.source: unknown source {name!r}; valid sources: {', '.join(sorted(SOURCES))}")
  return SOURCES[name]


# ---- scene graphs (LinkNet) ---------------------------------------------------------------------------
# The VG-150 vocabularies of Xu et al.'s VG-SGG-dicts.json, in index order, background at 0 (the builder
# reads the names from that file; these serve before anything is prepared, e.g. for sizing the model).
VG150_OBJECT_NAMES = ("__background__",) + tuple(
  """
    airplane animal arm bag banana basket beach bear bed bench bike bird board boat book boot bottle bowl box boy
    branch building bus cabinet cap car cat chair child clock coat counter cow cup curtain desk dog door drawer ear
    elephant engine eye face fence finger flag flower food fork fruit giraffe girl glass glove guy hair hand handle
    hat head helmet hill horse house jacket jean kid kite lady lamp laptop leaf leg letter light logo man men
    motorcycle mountain mouth neck nose number orange pant paper paw people person phone pillow pizza plane plant
    plate player pole post pot racket railing rock roof room screen seat sheep shelf shirt shoe short sidewalk sign
    sink skateboard ski skier sneaker snow sock stand street surfboard table tail tie tile tire toilet towel tower
    track train tree truck trunk umbrella vase vegetable vehicle wave wheel window windshield wing wire woman zebra
""".split()
)
VG150_PREDICATE_NAMES = (
  "__background__",
  "above",
  "across",
  "against",
  "along",
  "and",
  "at",
  "attached to",
  "behind",
  "belonging to",
  "between",
  "carrying",
  "covered in",
  "covering",
  "eating",
  "flying in",
  "for",
  "from",
  "growing on",
  "hanging from",
  "has",
  "holding",
  "in",
  "in front of",
  "laying on",
  "looking at",
  "lying on",
  "made of",
  "mounted on",
  "near",
  "of",
  "on",
  "on back of",
  "over",
  "painted on",
  "parked on",
  "part of",
  "playing",
  "riding",
  "says",
  "sitting on",
  "standing on",
  "to",
  "under",
  "using",
  "walking in",
  "walking on",
  "watching",
  "wearing",
  "wears",
  "with",
)
# neural-motifs: long side 592 (IM_SCALE), padded to a 592 x 592 square with the mean colour, flipped in training.
VG150_PP_TRAIN = (
  "decode|resize_long(592)|flip_lr|normalize_imagenet|pad_bottom_right(592)|one_predicate_per_pair"
  "|pack_scene_graph(64, 128)|sample_relation_pairs(256, 0.25)"
)
VG150_PP_EVAL = "decode|resize_long(592)|normalize_imagenet|pad_bottom_right(592)|pack_scene_graph(64, 128)"
# builtin_shapes: at most 6 objects and 14 relations per image; 64 training pairs cover all 30 ordered pairs.
SHAPES_SCENE_GRAPH_SIZES = {"tiny": 64, "small": 128, "medium": 192}
SHAPES_SCENE_GRAPH_PP_TRAIN = (
  "decode|resize_long({size})|flip_lr(predicate_map={flip})|normalize_imagenet"
  "|pad_bottom_right({size})|one_predicate_per_pair|pack_scene_graph(8, 16)"
  "|sample_relation_pairs(64, 0.25)"
)
SHAPES_SCENE_GRAPH_PP_EVAL = (
  "decode|resize_long({size})|normalize_imagenet|pad_bottom_right({size})|pack_scene_graph(8, 16)"
)


def scene_graph_example(raw: Mapping, num_classes: int, options, label_offset: int = 0) -> dict:
  """Objects, relations and the multi-label targets of the global context head; `label_offset` (1 for
  builtin_shapes) shifts object labels and predicates so that 0 is the background."""
  del options
  objects, relations = raw["objects"], raw["relations"]
  box_labels = tf.cast(objects["label"], tf.int32) + label_offset
  labels = multi_hot(box_labels, num_classes)
  return {
    "image": raw["image"],
    "labels": labels,
    "label_weights": tf.ones_like(labels),
    "image_id": raw["image/filename"],
    "boxes": tf.cast(objects["bbox"], tf.float32),
    "box_labels": box_labels,
    "relations": {
      "subject": tf.cast(relations["subject"], tf.int32),
      "object": tf.cast(relations["object"], tf.int32),
      "predicate": tf.cast(relations["predicate"], tf.int32) + label_offset,
    },
  }


@dataclasses.dataclass(frozen=True)
class SceneGraphSource(Source):
  """A scene-graph dataset: object classes and predicates with the background at index 0 of both."""

  predicate_names_fn: Callable[[], tuple[str, ...]] = lambda: ()
  label_offset: int = 0  # added to the stored object labels and predicates

  @property
  def predicate_names(self) -> tuple[str, ...]:
    """Predicate names by index, '__background__' at 0."""
    return tuple(self.predicate_names_fn())

  def train_triplets(self, data_dir: str | None = None, split: str | None = None) -> np.ndarray:
    """Distinct (subject class, object class, predicate) rows of the training split (for zero-shot recall).

    vg150 records them in its metadata (all annotated relations); otherwise the split's annotations are read
    (images left encoded).
    """
    builder = self.builder(data_dir)
    recorded = builder.info.metadata.get("train_triplets") if builder.info.metadata else None
    if recorded is not None and split in (None, self.train_split):
      return np.asarray(recorded, np.int64).reshape(-1, 3)
    ds = builder.as_dataset(split=split or self.train_split, decoders={"image": tfds.decode.SkipDecoding()})
    rows = [np.zeros((0, 3), np.int64)]
    for example in tfds.as_numpy(ds.map(lambda ex: {"objects": ex["objects"], "relations": ex["relations"]})):
      labels = example["objects"]["label"].astype(np.int64) + self.label_offset
      rel = example["relations"]
      rows.append(
        np.stack(
          [labels[rel["subject"]], labels[rel["object"]], rel["predicate"].astype(np.int64) + self.label_offset], axis=1
        )
      )
    return np.unique(np.concatenate(rows), axis=0)


def _shapes_scene_graph_names() -> tuple[tuple[str, ...], tuple[str, ...], tuple[int, ...]]:
  """builtin_shapes' object names, predicate names and mirrored-predicate map with a background at 0."""
  from jaxgraphs.data.builders import shapes

  flip = (0,) + tuple(1 + p for p in shapes.FLIPPED_PREDICATES)
  return (("__background__",) + tuple(shapes.CATEGORY_NAMES), ("__background__",) + tuple(shapes.PREDICATE_NAMES), flip)


def _shapes_sources() -> dict[str, Source]:
  """builtin_shapes/{tiny,small,medium} (multi-label), their :composition (aesthetics) and :scene_graph forms."""
  multilabel_pp = {
    "tiny": (SHAPES_TINY_PP_TRAIN, SHAPES_TINY_PP_EVAL),
    "small": (SHAPES_PP_TRAIN, SHAPES_PP_EVAL),
    "medium": (SHAPES_MEDIUM_PP_TRAIN, SHAPES_MEDIUM_PP_EVAL),
  }
  objects, predicates, flip = _shapes_scene_graph_names()
  sources: dict[str, Source] = {}
  for name in SHAPES_SIZES:
    common = dict(
      tfds_name=f"builtin_shapes/{name}",
      train_split="train",
      eval_split="validation",
      prepare=_shapes_builder(name),
      decode_chunk_size=1,
    )
    sources[f"builtin_shapes/{name}"] = Source(
      to_example=class_label_example,
      class_names_fn=_shapes_class_names,
      pp_train=multilabel_pp[name][0],
      pp_eval=multilabel_pp[name][1],
      **common,
    )
    sources[f"builtin_shapes/{name}:composition"] = Source(
      to_example=shapes_composition_example,
      class_names_fn=lambda: AESTHETICS_CLASS_NAMES,
      pp_train=SHAPES_COMPOSITION_PP_TRAIN.format(size=SHAPES_SIZES[name]),
      pp_eval=SHAPES_COMPOSITION_PP_EVAL.format(size=SHAPES_SIZES[name]),
      targets=("label", "score", "distribution"),
      **common,
    )
    size = SHAPES_SCENE_GRAPH_SIZES[name]
    sources[f"builtin_shapes/{name}:scene_graph"] = SceneGraphSource(
      to_example=functools.partial(scene_graph_example, label_offset=1),
      class_names_fn=lambda: objects,
      pp_train=SHAPES_SCENE_GRAPH_PP_TRAIN.format(size=size, flip=flip),
      pp_eval=SHAPES_SCENE_GRAPH_PP_EVAL.format(size=size),
      targets=("objects", "relations"),
      predicate_names_fn=lambda: predicates,
      label_offset=1,
      **common,
    )
  return sources


def diagnostic_regions_example(raw: Mapping, num_classes: int, options) -> dict:
  """diagnostic_regions: label 1 (high) iff the two distant objects share a colour."""
  del num_classes, options
  return {"image": raw["image"], "label": tf.cast(raw["label"], tf.int32), "image_id": raw["image/filename"]}


def diagnostic_labels_example(raw: Mapping, num_classes: int, options) -> dict:
  """diagnostic_labels: the multi-label targets and `hidden`, the positive labels with no visible object."""
  example = class_label_example(raw, num_classes, options)
  example["hidden"] = multi_hot(raw["hidden"], num_classes)
  return example


def _diagnostic_builder(name: str, config_name: str) -> Callable[[str | None], tfds.core.DatasetBuilder]:
  """A diagnostic dataset's builder for one config, generated on first use."""

  def prepare(data_dir):
    from jaxgraphs.data.builders import diagnostics

    return diagnostics.ensure_prepared(name, config_name, data_dir)

  return prepare


# The diagnostic datasets keep their native sizes (a crop could cut off the object an answer depends on).
DIAGNOSTIC_SIZES = {
  "small": {"regions": 96, "labels": 128, "objects": 160},
  "tiny": {"regions": 48, "labels": 48, "objects": 64},
}
DIAGNOSTIC_OBJECTS_PP_TRAIN = (
  "decode|resize_long({size})|flip_lr(predicate_map={flip})|normalize_imagenet|pad_bottom_right({size})"
  "|one_predicate_per_pair|pack_scene_graph(8, 16)|sample_relation_pairs(32, 0.25)"
)


def _diagnostic_sources() -> dict[str, Source]:
  """diagnostic_{regions,labels,objects}/{small,tiny}: data on which each paper's graph module is needed."""
  from jaxgraphs.data.builders import diagnostics, shapes

  objects = ("__background__",) + tuple(shapes.CATEGORY_NAMES)
  predicates = ("__background__",) + diagnostics.OBJECTS_PREDICATE_NAMES
  flip = (0,) + tuple(1 + p for p in diagnostics.OBJECTS_FLIPPED_PREDICATES)
  sources: dict[str, Source] = {}
  for config in ("small", "tiny"):
    common = lambda kind: dict(  # noqa: E731
      tfds_name=f"diagnostic_{kind}/{config}",
      train_split="train",
      eval_split="validation",
      prepare=_diagnostic_builder(f"diagnostic_{kind}", config),
      decode_chunk_size=1,
    )
    sources[f"diagnostic_regions/{config}"] = Source(
      to_example=diagnostic_regions_example,
      class_names_fn=lambda: diagnostics.REGIONS_LABEL_NAMES,
      pp_train=SHAPES_COMPOSITION_PP_TRAIN.format(size=DIAGNOSTIC_SIZES[config]["regions"]),
      pp_eval=SHAPES_COMPOSITION_PP_EVAL.format(size=DIAGNOSTIC_SIZES[config]["regions"]),
      targets=("label",),
      **common("regions"),
    )
    sources[f"diagnostic_labels/{config}"] = Source(
      to_example=diagnostic_labels_example,
      class_names_fn=lambda: tuple(shapes.CATEGORY_NAMES),
      pp_train=SHAPES_COMPOSITION_PP_TRAIN.format(size=DIAGNOSTIC_SIZES[config]["labels"]),
      pp_eval=SHAPES_COMPOSITION_PP_EVAL.format(size=DIAGNOSTIC_SIZES[config]["labels"]),
      **common("labels"),
    )
    sources[f"diagnostic_objects/{config}"] = SceneGraphSource(
      to_example=functools.partial(scene_graph_example, label_offset=1),
      class_names_fn=lambda: objects,
      pp_train=DIAGNOSTIC_OBJECTS_PP_TRAIN.format(size=DIAGNOSTIC_SIZES[config]["objects"], flip=flip),
      pp_eval=SHAPES_SCENE_GRAPH_PP_EVAL.format(size=DIAGNOSTIC_SIZES[config]["objects"]),
      targets=("objects", "relations"),
      predicate_names_fn=lambda: predicates,
      label_offset=1,
      **common("objects"),
    )
  return sources


# config.data.source -> Source: every dataset the pipeline can read, with its defaults.
SOURCES: dict[str, Source] = {
  "coco/2014": Source(
    tfds_name="coco/2014",
    to_example=coco_example,
    class_names_fn=lambda: COCO_CLASS_NAMES,
    train_split="train",
    eval_split="validation",
    pp_train=SSGRL_PP_TRAIN,
    pp_eval=SSGRL_PP_EVAL,
    positive_label_key="objects/label",
  ),
  "voc/2007": Source(
    tfds_name="voc/2007",
    to_example=voc_example,
    class_names_fn=lambda: VOC_CLASS_NAMES,
    train_split="train+validation",
    eval_split="test",
    pp_train=SSGRL_PP_TRAIN,
    pp_eval=SSGRL_PP_EVAL,
    positive_label_key="labels_no_difficult",
  ),
  # VOC 2012's test split has no labels: evaluate on validation.
  "voc/2012": Source(
    tfds_name="voc/2012",
    to_example=voc_example,
    class_names_fn=lambda: VOC_CLASS_NAMES,
    train_split="train",
    eval_split="validation",
    pp_train=SSGRL_PP_TRAIN,
    pp_eval=SSGRL_PP_EVAL,
    positive_label_key="labels_no_difficult",
  ),
  # Visual Genome's 500 most frequent object names (SSGRL Table 4): seeded 10,000-image test split, no
  # validation split; the vocabulary is stored in the prepared dataset.
  "vg500": Source(
    tfds_name="vg500",
    to_example=class_label_example,
    class_names_fn=_prepared_label_names("vg500"),
    train_split="train",
    eval_split="test",
    pp_train=SSGRL_PP_TRAIN,
    pp_eval=SSGRL_PP_EVAL,
    prepare=_manual_builder("vg500"),
    classes_from_prepared=True,
  ),
  # The same with the SSGRL authors' train / test image lists (the builder's `authors_lists` config).
  "vg500/authors_lists": Source(
    tfds_name="vg500/authors_lists",
    to_example=class_label_example,
    class_names_fn=_prepared_label_names("vg500/authors_lists"),
    train_split="train",
    eval_split="test",
    pp_train=SSGRL_PP_TRAIN,
    pp_eval=SSGRL_PP_EVAL,
    prepare=_manual_builder("vg500/authors_lists"),
    classes_from_prepared=True,
  ),
  # Aesthetics (RGNet): evaluated on the validation holdout while training; the papers report `test`.
  "ava": Source(
    tfds_name="ava",
    to_example=ava_example,
    class_names_fn=lambda: AESTHETICS_CLASS_NAMES,
    train_split="train",
    eval_split="validation",
    pp_train=RGNET_PP_TRAIN,
    pp_eval=RGNET_PP_EVAL,
    prepare=_manual_builder("ava"),
    targets=("label", "score", "distribution"),
  ),
  "aadb": Source(
    tfds_name="aadb",
    to_example=aadb_example,
    class_names_fn=lambda: AESTHETICS_CLASS_NAMES,
    train_split="train",
    eval_split="validation",
    pp_train=RGNET_PP_TRAIN,
    pp_eval=RGNET_PP_EVAL,
    prepare=_manual_builder("aadb"),
    targets=("label", "score"),
  ),
  # Scene graphs (LinkNet): VG-150 with the standard split, evaluated on the 5,000-image val split.
  "vg150": SceneGraphSource(
    tfds_name="vg150",
    to_example=scene_graph_example,
    class_names_fn=lambda: VG150_OBJECT_NAMES,
    train_split="train",
    eval_split="val",
    pp_train=VG150_PP_TRAIN,
    pp_eval=VG150_PP_EVAL,
    prepare=_manual_builder("vg150"),
    targets=("objects", "relations"),
    predicate_names_fn=lambda: VG150_PREDICATE_NAMES,
  ),
  **_shapes_sources(),
  **_diagnostic_sources(),
}
