"""tf.data-friendly ops on scene-graph examples (VG-150 layout): relation sampling, overlap filter, padding.

An example carries `objects` (a dict of per-object tensors with a leading object axis, e.g. `bbox`,
`box_pixels`, `label`) and `relations` (a dict of per-relation tensors with a leading relation axis:
`subject`, `object` -- indices into the objects -- and `predicate`). The builder keeps every annotated
relation; the training pipeline applies, in neural-motifs' order,

1. `keep_overlapping_relations` (SGDet training only), then drops images left without a relation,
2. `sample_one_predicate_per_pair` (training only),
3. `pad_scene_graph` (always), to fixed sizes with masks and counts of what was cut,
4. `sample_relation_pairs` (PredCls / SGCls training): the pairs a relation classifier is trained on.

The preprocessing ops of `jaxgraphs.data.transforms` (`one_predicate_per_pair`, `pack_scene_graph`,
`sample_relation_pairs`) apply them inside a pp string.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

Fields = Mapping[str, tf.Tensor]


def _num_rows(fields: Fields) -> tf.Tensor:
  """Length of the leading axis shared by all tensors of `fields`."""
  if not fields:
    raise ValueError("expected at least one per-object or per-relation tensor")
  return tf.shape(next(iter(fields.values())))[0]


def _gather_rows(fields: Fields, indices: tf.Tensor) -> dict[str, tf.Tensor]:
  """Every tensor of `fields` at the given rows."""
  return {name: tf.gather(values, indices) for name, values in fields.items()}


def sample_one_predicate_per_pair(relations: Fields, seed) -> dict[str, tf.Tensor]:
  """One relation per distinct (subject, object) pair, drawn uniformly among that pair's relations.

  neural-motifs' train-time `np.random.choice` over a pair's predicates, made stateless: `seed` is an int
  (2,) tensor as for `tf.random.stateless_uniform`, so the result is a function of (relations, seed). Pairs
  come out in the order of their first occurrence, like neural-motifs' dict; a predicate annotated twice for
  a pair is twice as likely, as there.
  """
  subject = tf.cast(relations["subject"], tf.int64)
  object_ = tf.cast(relations["object"], tf.int64)
  pairs, pair_of_relation = tf.unique(subject * (2**32) + object_)
  num_pairs = tf.size(pairs)
  num_relations = tf.size(subject)
  # The relation with the largest uniform draw wins its pair: each of the pair's relations with equal chance.
  draws = tf.random.stateless_uniform([num_relations], seed=seed)
  best_draw = tf.math.unsorted_segment_max(draws, pair_of_relation, num_pairs)
  positions = tf.range(num_relations)
  is_best = tf.equal(draws, tf.gather(best_draw, pair_of_relation))
  winners = tf.math.unsorted_segment_min(tf.where(is_best, positions, num_relations), pair_of_relation, num_pairs)
  return _gather_rows(relations, winners)


def keep_overlapping_relations(relations: Fields, boxes: tf.Tensor) -> dict[str, tf.Tensor]:
  """The relations whose subject and object boxes (x1, y1, x2, y2) overlap, as in neural-motifs' SGDet training.

  neural-motifs keeps a relation when IoU > 0 with the +1-pixel convention on the integer 1024-scale boxes,
  i.e. when min(x2) - max(x1) + 1 > 0 and the same in y, i.e. when the closed boxes intersect or touch. That
  test is scale-free, so the stored `box_pixels` (the same integers times one positive factor) give the same
  answer. Use the unclipped `box_pixels`, not the clipped `bbox`.
  """
  boxes = tf.convert_to_tensor(boxes)
  subject_boxes = tf.gather(boxes, relations["subject"])
  object_boxes = tf.gather(boxes, relations["object"])
  low = tf.maximum(subject_boxes[:, :2], object_boxes[:, :2])
  high = tf.minimum(subject_boxes[:, 2:], object_boxes[:, 2:])
  overlap = tf.reduce_all(high >= low, axis=-1)
  return {name: tf.boolean_mask(values, overlap) for name, values in relations.items()}


def _pad_rows(fields: Fields, size: int) -> tuple[dict[str, tf.Tensor], tf.Tensor]:
  """Every tensor cut or zero-padded to `size` rows (static shape), and the (size,) mask of real rows."""
  padded = {}
  for name, values in fields.items():
    values = tf.convert_to_tensor(values)[:size]
    paddings = [[0, size - tf.shape(values)[0]]] + [[0, 0]] * (values.shape.rank - 1)
    padded[name] = tf.ensure_shape(tf.pad(values, paddings), [size] + values.shape[1:].as_list())
  mask = tf.range(size) < tf.minimum(_num_rows(fields), size)
  return padded, mask


def pad_scene_graph(example: Mapping, max_objects: int, max_relations: int) -> dict:
  """Pads `objects` / `relations` to fixed sizes; adds masks and the numbers of objects / relations cut.

  The first `max_objects` objects are kept; relations that refer to a cut object are dropped, then the
  first `max_relations` of the rest are kept. Padding rows are zeros (label and predicate 0 = background)
  with mask False. Returns a new example with `objects/mask`, `relations/mask` (bool) and the int32 scalars
  `num_cut_objects` and `num_cut_relations` (relations lost for either reason); other keys pass through.
  """
  for name, value in (("max_objects", max_objects), ("max_relations", max_relations)):
    if not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive int, got {value!r}")
  objects, relations = example["objects"], example["relations"]
  num_objects = _num_rows(objects)
  num_relations = _num_rows(relations)
  both_kept = (relations["subject"] < max_objects) & (relations["object"] < max_objects)
  relations = {name: tf.boolean_mask(values, both_kept) for name, values in relations.items()}
  padded_objects, object_mask = _pad_rows(objects, max_objects)
  padded_relations, relation_mask = _pad_rows(relations, max_relations)
  padded = dict(example)
  padded["objects"] = {**padded_objects, "mask": object_mask}
  padded["relations"] = {**padded_relations, "mask": relation_mask}
  padded["num_cut_objects"] = tf.cast(num_objects - tf.reduce_sum(tf.cast(object_mask, tf.int32)), tf.int32)
  padded["num_cut_relations"] = tf.cast(num_relations - tf.reduce_sum(tf.cast(relation_mask, tf.int32)), tf.int32)
  return padded


def sample_relation_pairs(
  relations: tf.Tensor, relation_mask: tf.Tensor, object_mask: tf.Tensor, num_pairs: int, fg_fraction: float, seed
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """neural-motifs' PredCls/SGCls training pairs of one padded image: (pairs (P, 2), labels (P,), mask (P,)).

  As `proposal_assignments_gtbox` (RELS_PER_IMG = 256, REL_FG_FRACTION = 0.25), per image: at most
  floor(num_pairs * fg_fraction) annotated relations drawn at random keep their predicate; the remaining
  slots go to random background pairs (label 0), drawn among the ordered pairs of distinct real objects that
  carry no annotated relation. `relations` (M, 3) holds subject, object, predicate; `object_mask` (N,) marks
  the real objects. Slots left when there are too few candidates have mask False.
  """
  if num_pairs < 1 or not 0.0 <= fg_fraction <= 1.0:
    raise ValueError(f"need num_pairs >= 1 and 0 <= fg_fraction <= 1, got {num_pairs}, {fg_fraction}")
  num_objects = int(object_mask.shape[0])
  relations = tf.cast(relations, tf.int32)
  foreground = tf.boolean_mask(relations, tf.cast(relation_mask, tf.bool))
  fg_seed, bg_seed = tf.unstack(tf.random.experimental.stateless_split(seed, num=2))
  order = tf.argsort(tf.random.stateless_uniform([tf.shape(foreground)[0]], seed=fg_seed))
  kept = tf.gather(foreground, order)[: int(num_pairs * fg_fraction)]

  # Background candidates: i != j, both real, no annotated relation (kept or not) between them.
  is_foreground = (
    tf.scatter_nd(
      (foreground[:, 0] * num_objects + foreground[:, 1])[:, None],
      tf.ones([tf.shape(foreground)[0]], tf.int32),
      [num_objects * num_objects],
    )
    > 0
  )
  subject, object_ = tf.meshgrid(tf.range(num_objects), tf.range(num_objects), indexing="ij")
  subject, object_ = tf.reshape(subject, [-1]), tf.reshape(object_, [-1])
  real = tf.cast(object_mask, tf.bool)
  candidate = (subject != object_) & tf.gather(real, subject) & tf.gather(real, object_) & ~is_foreground
  draws = tf.where(candidate, tf.random.stateless_uniform([num_objects * num_objects], seed=bg_seed), -1.0)
  best = tf.math.top_k(draws, k=min(num_pairs, num_objects * num_objects))
  num_background = tf.minimum(tf.reduce_sum(tf.cast(best.values >= 0.0, tf.int32)), num_pairs - tf.shape(kept)[0])
  background = tf.gather(best.indices, tf.range(num_background))

  pairs = tf.concat([kept[:, :2], tf.stack([background // num_objects, background % num_objects], axis=1)], axis=0)
  labels = tf.concat([kept[:, 2], tf.zeros([num_background], tf.int32)], axis=0)
  padded, mask = _pad_rows({"pairs": pairs, "labels": labels}, num_pairs)
  return padded["pairs"], padded["labels"], mask
