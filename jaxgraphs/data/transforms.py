"""Preprocessing ops on example dicts, composed from a big_vision-style string such as

    "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|flip_lr|normalize_imagenet"

Each op name maps (in `OPS`) to a factory; its arguments are Python literals read with `ast.literal_eval`.
A built op takes the whole example dict and returns a new one, so box-aware ops can update `boxes`
(float32 (N, 4), normalised ymin, xmin, ymax, xmax as in TFDS) together with the image.

Images are uint8 from `decode` on: resizes round back to uint8 as Pillow (and so torchvision) does after
each resize; `normalize_imagenet` and `value_range` produce float32.

Randomness is stateless: a random op draws from `example["_seed"]` (int64 (2,), set per example by the
pipeline from (seed, global example index)) and leaves a fresh seed behind, so a stream is a pure
function of the seed and each example's position in it.
"""

from __future__ import annotations

import ast
from typing import Callable, NamedTuple, Sequence

import tensorflow as tf

from jaxgraphs.data import image_decoding, scene_graphs
from jaxgraphs.data.image_statistics import IMAGENET_MEAN_UINT8, IMAGENET_OFFSET, IMAGENET_SCALE

Example = dict
SEED_KEY = "_seed"

OPS: dict[str, Callable[..., Callable[[Example], Example]]] = {}


class Op(NamedTuple):
  """One parsed and built op: its name (as written in the string) and the function on examples."""

  name: str
  fn: Callable[[Example], Example]


def register(name: str):
  """Decorator adding an op factory to `OPS` under `name`."""

  def add(factory):
    OPS[name] = factory
    return factory

  return add


# ---- parsing -----------------------------------------------------------------------------------------
def parse(spec: str, *, where: str = "preprocessing string") -> list[tuple[str, tuple, dict]]:
  """Splits "op1|op2(arg, k=v)" into (name, args, kwargs) triples; errors name `where` and the op."""
  if not isinstance(spec, str) or not spec.strip():
    raise ValueError(f"{where} must be a non-empty string like 'decode|resize(224)', got {spec!r}")
  parsed = []
  for part in spec.split("|"):
    part = part.strip()
    try:
      node = ast.parse(part, mode="eval").body
    except SyntaxError as e:
      raise ValueError(f"{where}: cannot parse op {part!r} in {spec!r}") from e
    if isinstance(node, ast.Name):
      name, args, kwargs = node.id, (), {}
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
      name = node.func.id
      try:
        args = tuple(ast.literal_eval(a) for a in node.args)
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords}
      except ValueError as e:
        raise ValueError(f"{where}: arguments of {part!r} must be Python literals") from e
    else:
      raise ValueError(f"{where}: {part!r} in {spec!r} is not an op name or a call like name(args)")
    if name not in OPS:
      raise ValueError(f"{where}: unknown preprocessing op {name!r} in {spec!r}; valid ops: {', '.join(sorted(OPS))}")
    parsed.append((name, args, kwargs))
  return parsed


def build_ops(spec: str, *, where: str = "preprocessing string", fuse: bool = False) -> list[Op]:
  """Parses `spec` and builds each op; bad arguments raise naming the op. `fuse`: see `fuse_ops`."""
  ops = []
  parsed = parse(spec, where=where)
  if fuse:
    parsed = fuse_ops(parsed)
  for name, args, kwargs in parsed:
    try:
      ops.append(Op(name, OPS[name](*args, **kwargs)))
    except (TypeError, ValueError) as e:
      raise ValueError(f"{where}: bad arguments for op {name!r} in {spec!r}: {e}") from e
  return ops


def compose(ops: Sequence[Op]) -> Callable[[Example], Example]:
  """Chains built ops left to right."""

  def apply(example):
    for op in ops:
      example = op.fn(example)
    return example

  return apply


def build(spec: str, *, where: str = "preprocessing string", fuse: bool = False) -> Callable[[Example], Example]:
  """The function on examples that `spec` describes."""
  return compose(build_ops(spec, where=where, fuse=fuse))


# ---- helpers -----------------------------------------------------------------------------------------
def _size_hw(size) -> tuple[int, int]:
  """An int means a square; a pair is (height, width)."""
  if isinstance(size, int) and size > 0:
    return size, size
  if isinstance(size, (tuple, list)) and len(size) == 2 and all(isinstance(s, int) and s > 0 for s in size):
    return int(size[0]), int(size[1])
  raise ValueError(f"size must be a positive int or a (height, width) pair of ints, got {size!r}")


def _take_seed(example: Example, op_name: str) -> tuple[Example, tf.Tensor]:
  """Splits the example's seed into (seed kept for later ops, seed for this op)."""
  if SEED_KEY not in example:
    raise KeyError(f"random op {op_name!r} needs a per-example seed in example[{SEED_KEY!r}] (the pipeline sets it)")
  seeds = tf.random.experimental.stateless_split(example[SEED_KEY], num=2)
  return {**example, SEED_KEY: seeds[0]}, seeds[1]


def _hw(image: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
  shape = tf.shape(image)
  return shape[0], shape[1]


def _like(resized: tf.Tensor, image: tf.Tensor) -> tf.Tensor:
  """A float resize result in the input's dtype; uint8 rounded, as Pillow stores a resized image."""
  if image.dtype == tf.uint8:
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
  return tf.cast(resized, image.dtype)


def _resize_image(image: tf.Tensor, hw, method: str, antialias: bool) -> tf.Tensor:
  """Resizes to hw; uint8 stays uint8 (rounded, as Pillow stores a resized image)."""

  def resample(with_antialias: bool) -> tf.Tensor:
    return _like(tf.image.resize(image, hw, method=method, antialias=with_antialias), image)

  if not (antialias and method == "bilinear"):
    return resample(antialias)
  # Antialiasing only changes a bilinear downscale (an upscale with it equals plain bilinear up to float
  # rounding) yet costs 3-4x as much, and a resize to the same size is the identity: take the cheap paths.
  h, w = _hw(image)
  target_h, target_w = hw[0], hw[1]
  out = tf.case(
    [
      (tf.logical_and(tf.equal(h, target_h), tf.equal(w, target_w)), lambda: image),
      (tf.logical_or(target_h < h, target_w < w), lambda: resample(True)),
    ],
    default=lambda: resample(False),
  )
  out.set_shape([tf.get_static_value(target_h), tf.get_static_value(target_w), image.shape[-1]])
  return out


def _crop(example: Example, top, left, height, width) -> Example:
  """Crops a height x width window at (top, left), zero-padding where it leaves the image; moves boxes along."""
  image = example["image"]
  img_h, img_w = _hw(image)
  top, left = tf.cast(top, tf.int32), tf.cast(left, tf.int32)
  pad_top, pad_left = tf.maximum(-top, 0), tf.maximum(-left, 0)
  pad_bottom = tf.maximum(top + height - img_h, 0)
  pad_right = tf.maximum(left + width - img_w, 0)
  image = tf.pad(image, [[pad_top, pad_bottom], [pad_left, pad_right], [0, 0]])
  image = tf.slice(image, [top + pad_top, left + pad_left, 0], [height, width, -1])
  # Python-int sizes give a static shape (needed to batch without padding); tensor sizes stay dynamic.
  image.set_shape([tf.get_static_value(height), tf.get_static_value(width), example["image"].shape[-1]])
  out = {**example, "image": image}
  if "boxes" in example:
    out["boxes"] = _crop_boxes(example["boxes"], img_h, img_w, top, left, height, width)
  return out


def _crop_boxes(boxes, img_h, img_w, top, left, height, width) -> tf.Tensor:
  """Normalised yxyx boxes of an img_h x img_w image, in the height x width window at (top, left), clipped."""
  scale = tf.cast(tf.stack([img_h, img_w, img_h, img_w]), tf.float32)
  offset = tf.cast(tf.stack([top, left, top, left]), tf.float32)
  window = tf.cast(tf.stack([height, width, height, width]), tf.float32)
  return tf.clip_by_value((boxes * scale - offset) / window, 0.0, 1.0)


def _random_offsets(seed: tf.Tensor, img_h, img_w, height, width) -> tuple[tf.Tensor, tf.Tensor]:
  """(top, left) of a uniformly placed height x width crop of an img_h x img_w image (0 where it is larger)."""
  seeds = tf.random.experimental.stateless_split(seed, num=2)
  top = tf.random.stateless_uniform([], seeds[0], minval=0, maxval=tf.maximum(img_h - height, 0) + 1, dtype=tf.int32)
  left = tf.random.stateless_uniform([], seeds[1], minval=0, maxval=tf.maximum(img_w - width, 0) + 1, dtype=tf.int32)
  return top, left


def _random_crop(example: Example, seed: tf.Tensor, height, width) -> Example:
  """A uniformly placed crop; an image smaller than the crop is zero-padded at the bottom/right."""
  img_h, img_w = _hw(example["image"])
  top, left = _random_offsets(seed, img_h, img_w, height, width)
  return _crop(example, top, left, height, width)


# ---- ops ---------------------------------------------------------------------------------------------
@register("decode")
def get_decode(key: str = "image"):
  """Encoded bytes (or uint8 pixels) to uint8 RGB; raises on a corrupt file (the pipeline skips those)."""

  def decode(example):
    return {**example, key: image_decoding.decode_rgb(example[key])}

  return decode


@register("resize")
def get_resize(size, method: str = "bilinear", antialias: bool = True):
  """Resizes to size x size (int) or (height, width); antialiased bilinear matches Pillow's resize."""
  hw = _size_hw(size)

  def resize(example):
    return {**example, "image": _resize_image(example["image"], hw, method, antialias)}

  return resize


@register("resize_short")
def get_resize_short(size: int, method: str = "bilinear", antialias: bool = True):
  """Resizes so the shorter side is `size`, keeping the aspect ratio (torchvision's Resize(int))."""
  if not (isinstance(size, int) and size > 0):
    raise ValueError(f"size must be a positive int, got {size!r}")

  def resize_short(example):
    h, w = _hw(example["image"])
    short, long_ = tf.minimum(h, w), tf.maximum(h, w)
    # torchvision truncates the long side: int(size * long / short).
    new_long = tf.cast(tf.cast(size * long_, tf.float64) / tf.cast(short, tf.float64), tf.int32)
    hw = tf.where(h <= w, tf.stack([size, new_long]), tf.stack([new_long, size]))
    return {**example, "image": _resize_image(example["image"], hw, method, antialias)}

  return resize_short


def _center_offset(image_size: tf.Tensor, crop_size: int) -> tf.Tensor:
  """torchvision's CenterCrop offset: round-half-even((image - crop) / 2), or centred zero padding if smaller."""
  larger = tf.cast(tf.round(tf.cast(image_size - crop_size, tf.float32) / 2.0), tf.int32)
  return tf.where(image_size >= crop_size, larger, -((crop_size - image_size) // 2))


@register("center_crop")
def get_center_crop(size):
  """The central size x size (or (height, width)) window, placed as torchvision's CenterCrop places it."""
  height, width = _size_hw(size)

  def center_crop(example):
    h, w = _hw(example["image"])
    return _crop(example, _center_offset(h, height), _center_offset(w, width), height, width)

  return center_crop


@register("random_crop")
def get_random_crop(size):
  """A uniformly placed size x size (or (height, width)) crop."""
  height, width = _size_hw(size)

  def random_crop(example):
    example, seed = _take_seed(example, "random_crop")
    return _random_crop(example, seed, height, width)

  return random_crop


@register("random_crop_choice")
def get_random_crop_choice(sizes):
  """A square crop whose side is drawn uniformly from `sizes`, uniformly placed (SSGRL's multi-scale crop)."""
  if not (isinstance(sizes, (tuple, list)) and sizes and all(isinstance(s, int) and s > 0 for s in sizes)):
    raise ValueError(f"sizes must be a non-empty list of positive ints, got {sizes!r}")
  choices = tf.constant(sizes, tf.int32)

  def random_crop_choice(example):
    example, seed = _take_seed(example, "random_crop_choice")
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    side = choices[tf.random.stateless_uniform([], seeds[0], minval=0, maxval=len(sizes), dtype=tf.int32)]
    return _random_crop(example, seeds[1], side, side)

  return random_crop_choice


@register("random_scale_crop")
def get_random_scale_crop(min_scale: float, max_scale: float, size, method: str = "bilinear", antialias: bool = True):
  """Scales the image by s ~ U(min_scale, max_scale), then takes a random size crop (RGNet's augmentation)."""
  if not 0 < min_scale <= max_scale:
    raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
  height, width = _size_hw(size)

  def random_scale_crop(example):
    example, seed = _take_seed(example, "random_scale_crop")
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    scale = tf.random.stateless_uniform([], seeds[0], minval=min_scale, maxval=max_scale, dtype=tf.float32)
    h, w = _hw(example["image"])
    hw = tf.cast(tf.round(tf.cast(tf.stack([h, w]), tf.float32) * scale), tf.int32)
    example = {**example, "image": _resize_image(example["image"], hw, method, antialias)}
    return _random_crop(example, seeds[1], height, width)

  return random_scale_crop


@register("flip_lr")
def get_flip_lr(p: float = 0.5, predicate_map=None):
  """Mirrors the image (and boxes) left-right with probability p.

  `predicate_map` (scene graphs): predicate index -> its index in the mirrored image (e.g. 'left of' <->
  'right of'), applied to `relations["predicate"]` of flipped examples.
  """
  if not 0.0 <= p <= 1.0:
    raise ValueError(f"p must be in [0, 1], got {p}")
  if predicate_map is not None and not all(isinstance(i, int) and 0 <= i < len(predicate_map) for i in predicate_map):
    raise ValueError(f"predicate_map must be a permutation of 0..n-1 as a tuple of ints, got {predicate_map!r}")
  mirrored_predicate = None if predicate_map is None else tf.constant(predicate_map, tf.int32)

  def flip_lr(example):
    example, seed = _take_seed(example, "flip_lr")
    flip = tf.random.stateless_uniform([], seed) < p
    out = {**example, "image": tf.cond(flip, lambda: tf.reverse(example["image"], [1]), lambda: example["image"])}
    if "boxes" in example:
      b = example["boxes"]
      mirrored = tf.stack([b[:, 0], 1.0 - b[:, 3], b[:, 2], 1.0 - b[:, 1]], axis=1)
      out["boxes"] = tf.cond(flip, lambda: mirrored, lambda: b)
    if mirrored_predicate is not None:
      if not isinstance(example.get("relations"), dict):
        raise KeyError("flip_lr(predicate_map=...) needs example['relations'] (a scene-graph source)")
      predicate = example["relations"]["predicate"]
      remapped = tf.cast(tf.gather(mirrored_predicate, tf.cast(predicate, tf.int32)), predicate.dtype)
      out["relations"] = {**example["relations"], "predicate": tf.cond(flip, lambda: remapped, lambda: predicate)}
    return out

  return flip_lr


@register("normalize_imagenet")
def get_normalize_imagenet():
  """uint8 [0, 255] to float32 (x / 255 - mean) / std with torchvision's ImageNet mean and std."""
  # (x / 255 - mean) / std folded into one multiply-add, as image_statistics.network_images does on the device.
  scale = tf.constant(IMAGENET_SCALE)
  offset = tf.constant(IMAGENET_OFFSET)

  def normalize_imagenet(example):
    return {**example, "image": tf.cast(example["image"], tf.float32) * scale + offset}

  return normalize_imagenet


@register("value_range")
def get_value_range(vmin: float = -1.0, vmax: float = 1.0):
  """uint8 [0, 255] to float32 [vmin, vmax]."""

  def value_range(example):
    image = tf.cast(example["image"], tf.float32) / 255.0
    return {**example, "image": vmin + image * (vmax - vmin)}

  return value_range


# ---- scene graphs ------------------------------------------------------------------------------------
# Scene-graph sources emit `boxes`, `box_labels` and `relations` (a dict of subject, object, predicate
# vectors); `pack_scene_graph` turns them into fixed-size arrays once the geometry is final.
@register("resize_long")
def get_resize_long(size: int, method: str = "bilinear", antialias: bool = True):
  """Resizes so the longer side is `size`, keeping the aspect ratio (short side rounded, at least 1)."""
  if not (isinstance(size, int) and size > 0):
    raise ValueError(f"size must be a positive int, got {size!r}")

  def resize_long(example):
    h, w = _hw(example["image"])
    long_ = tf.cast(tf.maximum(h, w), tf.float64)
    new_hw = tf.maximum(tf.cast(tf.round(tf.cast(tf.stack([h, w]), tf.float64) * size / long_), tf.int32), 1)
    return {**example, "image": _resize_image(example["image"], new_hw, method, antialias)}

  return resize_long


@register("pad_bottom_right")
def get_pad_bottom_right(size):
  """Pads at the bottom and right to size x size (or (height, width)) with the mean colour; boxes keep their pixels.

  After `normalize_imagenet` the padding is zeros, the mean colour, as neural-motifs' SquarePad fills with it; a
  uint8 image (normalised later, on the device) is padded with ImageNet's mean rounded to uint8, (124, 116, 104),
  which normalises to within 0.01 of zero. A larger image is cut at the bottom / right.
  """
  height, width = _size_hw(size)

  def pad_bottom_right(example):
    image = example["image"]
    img_h, img_w = _hw(image)
    fill = IMAGENET_MEAN_UINT8 if image.dtype == tf.uint8 else (0,) * 3
    channels = image.shape[-1]
    fill = tf.constant(fill, image.dtype)[:channels]
    # Concatenating constant blocks costs what tf.pad does; zero-padding and then selecting the fill with a mask
    # cost a third of the pipeline (1024x768 JPEGs to 592 px on 2 cores: 252 img/s with the mask, 366 without).
    kept = image[:height, :width]
    kept_h, kept_w = _hw(kept)
    padded = tf.concat([kept, tf.broadcast_to(fill, [kept_h, width - kept_w, channels])], axis=1)
    padded = tf.concat([padded, tf.broadcast_to(fill, [height - kept_h, width, channels])], axis=0)
    padded.set_shape([height, width, channels])
    out = {**example, "image": padded}
    if "boxes" in example:
      out["boxes"] = _crop_boxes(example["boxes"], img_h, img_w, 0, 0, height, width)
    return out

  return pad_bottom_right


@register("keep_image_size")
def get_keep_image_size():
  """Stores the current image's (height, width) as `image_size` int32 (2,): the real pixels of a padded input,
  which a detector clips its boxes to (put it before `pad_bottom_right`)."""

  def keep_image_size(example):
    return {**example, "image_size": tf.cast(tf.stack(_hw(example["image"])), tf.int32)}

  return keep_image_size


@register("one_predicate_per_pair")
def get_one_predicate_per_pair():
  """Keeps one random predicate per (subject, object) pair (scene-graph training, neural-motifs)."""

  def one_predicate_per_pair(example):
    example, seed = _take_seed(example, "one_predicate_per_pair")
    return {**example, "relations": scene_graphs.sample_one_predicate_per_pair(example["relations"], seed)}

  return one_predicate_per_pair


@register("overlapping_relations")
def get_overlapping_relations():
  """Keeps the relations whose subject and object boxes overlap or touch (SGDet training, as neural-motifs).

  The test is on the example's `boxes` (normalised, any scale gives the same answer); neural-motifs tests the
  integer boxes of VG's 1024-px annotations with its +1-pixel rule, which also keeps boxes less than one such
  pixel apart."""

  def overlapping_relations(example):
    return {**example, "relations": scene_graphs.keep_overlapping_relations(example["relations"], example["boxes"])}

  return overlapping_relations


@register("pack_scene_graph")
def get_pack_scene_graph(max_objects: int, max_relations: int):
  """Fixed-size scene-graph arrays in the pixels of the final image; the last geometric op comes before it.

  Replaces `boxes`, `box_labels` and `relations` by
    object_boxes (max_objects, 4) float32 x1, y1, x2, y2 pixels;  object_labels (max_objects,) int32;
    object_mask (max_objects,) float32;  relations (max_relations, 3) int32 subject, object, predicate;
    relation_mask (max_relations,) float32;  num_cut_objects, num_cut_relations int32 () (see pad_scene_graph).
  """
  for name, value in (("max_objects", max_objects), ("max_relations", max_relations)):
    if not (isinstance(value, int) and value > 0):
      raise ValueError(f"{name} must be a positive int, got {value!r}")

  def pack_scene_graph(example):
    example = dict(example)
    boxes, labels, relations = example.pop("boxes"), example.pop("box_labels"), example.pop("relations")
    h, w = (tf.cast(x, tf.float32) for x in _hw(example["image"]))
    pixels = tf.stack([boxes[:, 1] * w, boxes[:, 0] * h, boxes[:, 3] * w, boxes[:, 2] * h], axis=1)
    graph = scene_graphs.pad_scene_graph(
      {
        "objects": {"box": pixels, "label": tf.cast(labels, tf.int32)},
        "relations": {k: tf.cast(relations[k], tf.int32) for k in ("subject", "object", "predicate")},
      },
      max_objects,
      max_relations,
    )
    objects, kept = graph["objects"], graph["relations"]
    example.update(
      object_boxes=objects["box"],
      object_labels=objects["label"],
      object_mask=tf.cast(objects["mask"], tf.float32),
      relations=tf.stack([kept["subject"], kept["object"], kept["predicate"]], axis=1),
      relation_mask=tf.cast(kept["mask"], tf.float32),
      num_cut_objects=graph["num_cut_objects"],
      num_cut_relations=graph["num_cut_relations"],
    )
    return example

  return pack_scene_graph


@register("sample_relation_pairs")
def get_sample_relation_pairs(num_pairs: int = 256, fg_fraction: float = 0.25):
  """Training pairs after `pack_scene_graph`: `pairs` (P, 2) int32, `pair_labels` (P,) int32 (0 = background),
  `pair_mask` (P,) float32, drawn as neural-motifs does for PredCls / SGCls (see scene_graphs)."""
  if not (isinstance(num_pairs, int) and num_pairs > 0) or not 0.0 <= fg_fraction <= 1.0:
    raise ValueError(f"need an int num_pairs > 0 and 0 <= fg_fraction <= 1, got {num_pairs!r}, {fg_fraction!r}")

  def sample_relation_pairs(example):
    if "object_mask" not in example:
      raise KeyError("sample_relation_pairs must come after pack_scene_graph in the pp string")
    example, seed = _take_seed(example, "sample_relation_pairs")
    pairs, labels, mask = scene_graphs.sample_relation_pairs(
      example["relations"], example["relation_mask"], example["object_mask"], num_pairs, fg_fraction, seed
    )
    return {**example, "pairs": pairs, "pair_labels": labels, "pair_mask": tf.cast(mask, tf.float32)}

  return sample_relation_pairs


# ---- fused decode + geometry -------------------------------------------------------------------------
# `decode|resize|crop|resize` decodes the whole JPEG and resamples it twice. The fused ops below draw exactly
# the same random numbers as the op sequence they replace (same seeds, same crop sides and placements, same
# flips), map the final crop back to a window of the original image, round it to whole pixels, decode only that
# window (`decode_and_crop_jpeg`, or the whole file at a reduced DCT scale when even the reduced image is at
# least the output size) and resize it once (area filter where both sides shrink, else `resize`'s bilinear). The
# output differs from the op sequence by resampling noise: one rounding to uint8 instead of two, one filter
# instead of two, and a window placed to the nearest original pixel (a shift of under half a pixel of the
# original; the crop placement is uniform anyway). tests/test_fused_decode.py states and checks the tolerance.
# JPEGs are decoded with INTEGER_ACCURATE (libjpeg's ISLOW, Pillow's pixels) as `decode` does. The pipeline
# fuses by default (`config.data.fuse_decode`); benchmarks/input_pipeline.py measures both.
def _integer_window(window, h, w) -> tf.Tensor:
  """The float (top, left, height, width) window rounded to whole pixels inside an h x w image, at least 1 x 1:
  int32 (top, left, bottom, right)."""
  hw = tf.stack([h, w])
  start = tf.clip_by_value(tf.cast(tf.round(window[:2]), tf.int32), 0, hw - 1)
  stop = tf.clip_by_value(tf.cast(tf.round(window[:2] + window[2:]), tf.int32), start + 1, hw)
  return tf.concat([start, stop], 0)


def _fused_resize(image: tf.Tensor, out_hw) -> tf.Tensor:
  """The fused ops' one resize: where both sides shrink, the area (box) filter, 3.5x cheaper than TensorFlow's
  antialiased bilinear kernel and within resampling noise of it (mean 0.3-0.8 levels on photo-like images);
  otherwise `resize`'s bilinear, antialiased where it downscales."""
  h, w = _hw(image)
  out = tf.cond(
    tf.logical_and(out_hw[0] <= h, out_hw[1] <= w),
    lambda: _like(tf.image.resize(image, out_hw, method="area"), image),
    lambda: _resize_image(image, out_hw, "bilinear", True),
  )
  out.set_shape([tf.get_static_value(out_hw[0]), tf.get_static_value(out_hw[1]), image.shape[-1]])
  return out


def _window_pixels(image: tf.Tensor, window) -> tf.Tensor:
  """The float (top, left, height, width) window of a uint8 image, rounded to whole pixels (_integer_window)."""
  box = _integer_window(window, *_hw(image))
  return image[box[0] : box[2], box[1] : box[3]]


def _decode_window(image: tf.Tensor, geometry: Callable, whole: bool = False) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """The decoding half of a fused op; raises if the image is corrupt. `geometry(h, w)` -> (window float (4,) in
  original pixels, out_hw int32 (2,)); `whole`: the window is always the whole image. JPEG: only the window is
  decoded, at a reduced DCT scale where that still covers the output. Returns (window pixels uint8, out_hw,
  whether _resample may use the area filter)."""

  def from_pixels(pixels):
    window, out_hw = geometry(*_hw(pixels))
    return _window_pixels(pixels, window), out_hw, tf.constant(True)

  if image.dtype == tf.uint8:
    return from_pixels(image_decoding.decode_rgb(image))
  if image.dtype != tf.string:
    raise TypeError(f"image must be encoded bytes (tf.string) or uint8 pixels, got {image.dtype.name}")

  def jpeg():
    shape = tf.io.extract_jpeg_shape(image)
    h, w = shape[0], shape[1]
    window, out_hw = geometry(h, w)
    out_f = tf.cast(out_hw, tf.float32)
    # The largest DCT reduction (1/2, 1/4, 1/8) that keeps the window at least as large as the output.
    fits = [tf.reduce_all(window[2:] >= out_f * r) for r in (2, 4, 8)]
    level = tf.add_n([tf.cast(fit, tf.int32) for fit in fits])  # 0: full scale, k: 1 / 2**k

    def scaled(r):
      def decode():
        pixels = tf.io.decode_jpeg(image, channels=3, dct_method="INTEGER_ACCURATE", ratio=r)
        ph, pw = _hw(pixels)
        factor = tf.cast(tf.stack([ph, pw, ph, pw]), tf.float32) / tf.cast(tf.stack([h, w, h, w]), tf.float32)
        # The DCT reduction already averaged blocks of pixels; a box filter on top blurs twice (mean 1.9 levels
        # from the op sequence against 1.0 with the bilinear kernel).
        return _window_pixels(pixels, window * factor), tf.constant(False)

      return decode

    def cropped():  # only the window's rows and columns are decoded, at full scale
      if whole:  # decode_and_crop_jpeg of the whole image is about 4% slower than decode_jpeg
        return tf.io.decode_jpeg(image, channels=3, dct_method="INTEGER_ACCURATE"), tf.constant(True)
      box = _integer_window(window, h, w)
      size = tf.concat([box[:2], box[2:] - box[:2]], 0)
      return tf.io.decode_and_crop_jpeg(image, size, channels=3, dct_method="INTEGER_ACCURATE"), tf.constant(True)

    pixels, area = tf.switch_case(level, [cropped, scaled(2), scaled(4), scaled(8)])
    return tf.ensure_shape(pixels, [None, None, 3]), out_hw, area

  def other():
    return from_pixels(tf.ensure_shape(tf.io.decode_image(image, channels=3, expand_animations=False), [None, None, 3]))

  return tf.cond(tf.io.is_jpeg(image), jpeg, other)


def _resample(pixels: tf.Tensor, out_hw, area) -> tf.Tensor:
  """The resampling half of a fused op: the decoded window to out_hw (_fused_resize, or with `area` False the
  antialiased bilinear `resize`)."""
  return tf.cond(area, lambda: _fused_resize(pixels, out_hw), lambda: _resize_image(pixels, out_hw, "bilinear", True))


# A fused op runs in two stages: the pipeline's robust decode (image_decoding.decode_with_fallback, which turns a
# failure into a masked placeholder) runs only the decoding half, sequentially within each chunk of examples, so
# only decode failures are caught there, and the resize runs in the pipeline's ordinary parallel map on every core.
# The decode stage leaves the window's pixels under "image" and these keys for the resample stage, which removes them.
_OUT_HW_KEY, _AREA_KEY, _FLIP_KEY = "_resample_out_hw", "_resample_area", "_resample_flip"


def _two_stage(decode_stage: Callable, static_hw) -> Callable[[Example], Example]:
  """The fused op's function on examples, with `.stages` = (decode stage, resample stage) for the pipeline."""

  def resample_stage(example):
    example = dict(example)
    out_hw, area, flip = example.pop(_OUT_HW_KEY), example.pop(_AREA_KEY), example.pop(_FLIP_KEY, None)
    image = tf.ensure_shape(_resample(example["image"], out_hw, area), [*static_hw, 3])  # static for batching
    if flip is not None:
      image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
    return {**example, "image": image}

  def fn(example):
    return resample_stage(decode_stage(example))

  fn.stages = (decode_stage, resample_stage)
  return fn


def _decoded(example: Example, geometry: Callable, whole: bool = False, **extra) -> Example:
  """The decode stage's output: the window's pixels and what the resample stage needs."""
  pixels, out_hw, area = _decode_window(example["image"], geometry, whole)
  return {**example, "image": pixels, _OUT_HW_KEY: out_hw, _AREA_KEY: area, **extra}


def _move_boxes(boxes: tf.Tensor, window_norm: tf.Tensor) -> tf.Tensor:
  """Normalised yxyx boxes into a crop given as a normalised (top, left, height, width) window, clipped."""
  offset = tf.stack([window_norm[0], window_norm[1], window_norm[0], window_norm[1]])
  size = tf.stack([window_norm[2], window_norm[3], window_norm[2], window_norm[3]])
  return tf.clip_by_value((boxes - offset) / size, 0.0, 1.0)


@register("decode_crop_choice_resize")
def get_decode_crop_choice_resize(size_in, sizes, size_out):
  """decode|resize(size_in)|random_crop_choice(sizes)|resize(size_out), fused (same draws; see above)."""
  in_h, in_w = _size_hw(size_in)
  out_hw = _size_hw(size_out)
  if not (
    isinstance(sizes, (tuple, list)) and sizes and all(isinstance(s, int) and 0 < s <= min(in_h, in_w) for s in sizes)
  ):
    raise ValueError(f"sizes must be a non-empty list of positive ints no larger than {size_in!r}, got {sizes!r}")
  choices = tf.constant(sizes, tf.int32)

  def decode_crop_choice_resize(example):
    example, seed = _take_seed(example, "random_crop_choice")
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    side = choices[tf.random.stateless_uniform([], seeds[0], minval=0, maxval=len(sizes), dtype=tf.int32)]
    top, left = _random_offsets(seeds[1], in_h, in_w, side, side)
    # The crop as a fraction of the (resized) image, which is the same fraction of the original.
    norm = tf.cast(tf.stack([top, left, side, side]), tf.float32) / tf.constant([in_h, in_w, in_h, in_w], tf.float32)

    def geometry(h, w):
      hw = tf.cast(tf.stack([h, w, h, w]), tf.float32)
      return norm * hw, tf.constant(out_hw, tf.int32)

    out = _decoded(example, geometry)
    if "boxes" in example:
      out["boxes"] = _move_boxes(example["boxes"], norm)
    return out

  return _two_stage(decode_crop_choice_resize, out_hw)


@register("decode_flip_scale_crop")
def get_decode_flip_scale_crop(size_in, p, min_scale, max_scale, size_out):
  """decode|resize(size_in)|flip_lr(p)|random_scale_crop(min_scale, max_scale, size_out), fused (same draws)."""
  in_h, in_w = _size_hw(size_in)
  height, width = _size_hw(size_out)
  if not 0 < min_scale <= max_scale:
    raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
  if round(in_h * min_scale) < height or round(in_w * min_scale) < width:
    raise ValueError(f"the scaled image {size_in!r} x {min_scale} must cover the crop {size_out!r}")
  if not 0.0 <= p <= 1.0:
    raise ValueError(f"p must be in [0, 1], got {p}")

  def decode_flip_scale_crop(example):
    example, flip_seed = _take_seed(example, "flip_lr")
    flip = tf.random.stateless_uniform([], flip_seed) < p
    example, seed = _take_seed(example, "random_scale_crop")
    seeds = tf.random.experimental.stateless_split(seed, num=2)
    scale = tf.random.stateless_uniform([], seeds[0], minval=min_scale, maxval=max_scale, dtype=tf.float32)
    scaled = tf.cast(tf.round(tf.constant([in_h, in_w], tf.float32) * scale), tf.int32)
    top, left = _random_offsets(seeds[1], scaled[0], scaled[1], height, width)
    sh, sw = tf.cast(scaled[0], tf.float32), tf.cast(scaled[1], tf.float32)
    # The window in the (flipped) image's normalised coordinates, and where it lies before the flip.
    norm = tf.stack([tf.cast(top, tf.float32) / sh, tf.cast(left, tf.float32) / sw, height / sh, width / sw])
    unflipped = tf.where(flip, tf.stack([norm[0], 1.0 - norm[1] - norm[3], norm[2], norm[3]]), norm)

    def geometry(h, w):
      hw = tf.cast(tf.stack([h, w]), tf.float32)
      window = unflipped * tf.concat([hw, hw], 0)
      return window, tf.constant([height, width], tf.int32)

    out = _decoded(example, geometry, **{_FLIP_KEY: flip})
    if "boxes" in example:
      b = example["boxes"]
      mirrored = tf.stack([b[:, 0], 1.0 - b[:, 3], b[:, 2], 1.0 - b[:, 1]], axis=1)
      out["boxes"] = _move_boxes(tf.where(flip, mirrored, b), norm)
    return out

  return _two_stage(decode_flip_scale_crop, (height, width))


@register("decode_resize_long")
def get_decode_resize_long(size: int):
  """decode|resize_long(size), fused: a JPEG at least twice the size is decoded at a reduced DCT scale."""
  if not (isinstance(size, int) and size > 0):
    raise ValueError(f"size must be a positive int, got {size!r}")

  def geometry(h, w):
    long_ = tf.cast(tf.maximum(h, w), tf.float64)
    new_hw = tf.maximum(tf.cast(tf.round(tf.cast(tf.stack([h, w]), tf.float64) * size / long_), tf.int32), 1)
    return tf.cast(tf.stack([0, 0, h, w]), tf.float32), new_hw

  def decode_resize_long(example):
    return _decoded(example, geometry, whole=True)

  return _two_stage(decode_resize_long, (None, None))


DECODE_OPS = ("decode", "decode_crop_choice_resize", "decode_flip_scale_crop", "decode_resize_long")


def _is(op, name: str, num_args: int = 1) -> bool:
  """op is `name` with exactly `num_args` positional arguments and no keywords (the default kernel)."""
  return op[0] == name and len(op[1]) == num_args and not op[2]


def fuse_ops(parsed: list[tuple[str, tuple, dict]]) -> list[tuple[str, tuple, dict]]:
  """Rewrites a leading op sequence that has a fused equivalent (same random draws, resampling noise apart):

    decode|resize(A)|random_crop_choice(S)|resize(B)             -> decode_crop_choice_resize(A, S, B)
    decode|resize(A)|flip_lr[(p)]|random_scale_crop(lo, hi, B)   -> decode_flip_scale_crop(A, p, lo, hi, B)
    decode|resize_long(N)                                        -> decode_resize_long(N)

  only with default keyword arguments (bilinear, antialiased resizes; no predicate_map), a crop no larger than
  the resized image (so no zero padding is involved) and `decode` of the default 'image' key.
  """
  if not parsed or parsed[0] != ("decode", (), {}):
    return parsed
  ops = parsed[1:]
  try:
    if len(ops) >= 3 and _is(ops[0], "resize") and _is(ops[1], "random_crop_choice") and _is(ops[2], "resize"):
      (size_in,), (sizes,), (size_out,) = ops[0][1], ops[1][1], ops[2][1]
      get_decode_crop_choice_resize(size_in, sizes, size_out)  # validates (no padding)
      return [("decode_crop_choice_resize", (size_in, tuple(sizes), size_out), {})] + ops[3:]
    if (
      len(ops) >= 3
      and _is(ops[0], "resize")
      and ops[1][0] == "flip_lr"
      and not ops[1][2]
      and len(ops[1][1]) <= 1
      and _is(ops[2], "random_scale_crop", 3)
    ):
      p = ops[1][1][0] if ops[1][1] else 0.5
      args = (ops[0][1][0], p, *ops[2][1])
      get_decode_flip_scale_crop(*args)
      return [("decode_flip_scale_crop", args, {})] + ops[3:]
    if ops and _is(ops[0], "resize_long"):
      get_decode_resize_long(*ops[0][1])
      return [("decode_resize_long", ops[0][1], {})] + ops[1:]
  except (TypeError, ValueError):
    pass  # arguments the fused op does not cover: keep the ops as written (they report their own errors)
  return parsed
