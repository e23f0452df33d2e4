"""Faster R-CNN training targets with fixed shapes, computed inside the jitted step (one image; vmap for a batch).

Anchor targets (the RPN), as py-faster-rcnn's `anchor_target_layer` that neural-motifs uses:
- only anchors lying inside the image (`anchor_valid`) take part; the rest are ignored (label -1);
- an anchor whose best IoU with a ground-truth box is >= `positive_iou` (0.7) is positive (1); so is every
  anchor that ties for the best IoU of some ground-truth box (when that IoU is > 0), so each box gets one;
- an anchor whose best IoU is < `negative_iou` (0.3) and that is not positive is negative (0); the rest
  (0.3 <= IoU < 0.7) are ignored;
- at most `num_samples * fg_fraction` (128 of 256) positives are kept, drawn at random, and negatives fill
  the sample up to `num_samples`; the others become -1.
An image without boxes has no positives: all its sampled anchors are negatives (the RPN learns background).

Box-head targets, as py-faster-rcnn's `proposal_target_layer`: the ground-truth boxes join the proposals as
candidates; a candidate whose best IoU is >= `fg_iou` (0.5) is foreground with that box's class, one with
best IoU in [bg_iou_low, fg_iou) is background (class 0). At most `num_rois * fg_fraction` (64 of 256)
foreground RoIs are drawn at random and background RoIs fill the rest; slots left over have mask False.

Random draws use one `jax.random` key per image, so a step's targets are a function of (inputs, key).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxgraphs.models.detection.boxes import encode, pairwise_iou


def _take_at_most(candidates: jax.Array, count: jax.Array, key: jax.Array) -> jax.Array:
  """A random subset of at most `count` of the True entries of `candidates` (N,), as a mask (N,)."""
  draws = jnp.where(candidates, jax.random.uniform(key, candidates.shape), -1.0)
  rank = jnp.argsort(jnp.argsort(-draws))  # 0 for the largest draw
  return candidates & (rank < count)


def _pad(values: jax.Array, size: int) -> jax.Array:
  """`values` zero-padded along the first axis to `size` rows."""
  return jnp.concatenate([values, jnp.zeros((size - values.shape[0],) + values.shape[1:], values.dtype)])


def _sample_slots(
  foreground: jax.Array, background: jax.Array, key: jax.Array, num_slots: int, fg_fraction: float
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Fixed-size sample of candidates (N,): at most num_slots * fg_fraction foreground drawn at random, background
  filling the rest. Returns (indices (S,), is_foreground (S,), mask (S,)) with foreground first, then background,
  then empty slots (mask False, index 0)."""
  fg_key, bg_key, order_key = jax.random.split(key, 3)
  foreground = _take_at_most(foreground, int(num_slots * fg_fraction), fg_key)
  background = _take_at_most(background, num_slots - jnp.sum(foreground), bg_key)
  # Each group in random order; the top num_slots priorities fill the slots.
  jitter = jax.random.uniform(order_key, foreground.shape)
  priority = jnp.where(foreground, 2.0 + jitter, jnp.where(background, 1.0 + jitter, -1.0))
  top, index = jax.lax.top_k(priority, min(num_slots, foreground.shape[0]))
  mask = top > 0
  index, is_fg = jnp.where(mask, index, 0), foreground[index] & mask
  if index.shape[0] < num_slots:  # fewer candidates than slots
    index, is_fg, mask = _pad(index, num_slots), _pad(is_fg, num_slots), _pad(mask, num_slots)
  return index, is_fg, mask


def _best_match(boxes: jax.Array, gt_boxes: jax.Array, gt_mask: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """IoU (N, G) with the real ground-truth boxes (0 for padding), and each box's best IoU and best box index."""
  if gt_boxes.shape[0] == 0:
    raise ValueError("detection targets need at least one (possibly masked) ground-truth slot; got gt_boxes (0, 4)")
  iou = jnp.where(gt_mask[None, :], pairwise_iou(boxes, gt_boxes), 0.0)
  return iou, jnp.max(iou, axis=1), jnp.argmax(iou, axis=1)


def anchor_targets(
  anchors: jax.Array,
  anchor_valid: jax.Array,
  gt_boxes: jax.Array,
  gt_mask: jax.Array,
  key: jax.Array,
  num_samples: int = 256,
  fg_fraction: float = 0.5,
  positive_iou: float = 0.7,
  negative_iou: float = 0.3,
) -> tuple[jax.Array, jax.Array]:
  """RPN labels (A,) int32 in {1, 0, -1 (ignored)} and box deltas (A, 4) of anchors (A, 4) against gt (G, 4)."""
  gt_mask = gt_mask.astype(bool)
  anchor_valid = anchor_valid.astype(bool)
  iou, best_iou, best_gt = _best_match(anchors, gt_boxes, gt_mask)
  # Each real box's best anchors: ties included, as py-faster-rcnn's `np.where(overlaps == gt_max_overlaps)`.
  gt_best = jnp.max(jnp.where(anchor_valid[:, None], iou, 0.0), axis=0, initial=0.0)
  is_best_for_some = jnp.any((iou == gt_best[None, :]) & (gt_best[None, :] > 0) & gt_mask[None, :], axis=1)
  positive = anchor_valid & ((best_iou >= positive_iou) | is_best_for_some)
  negative = anchor_valid & ~positive & (best_iou < negative_iou)
  positive_key, negative_key = jax.random.split(key)
  positive = _take_at_most(positive, int(num_samples * fg_fraction), positive_key)
  negative = _take_at_most(negative, num_samples - jnp.sum(positive), negative_key)
  labels = jnp.where(positive, 1, jnp.where(negative, 0, -1)).astype(jnp.int32)
  deltas = encode(gt_boxes[best_gt], anchors)
  return labels, jnp.where(positive[:, None], deltas, 0.0)


def roi_targets(
  proposals: jax.Array,
  proposal_valid: jax.Array,
  gt_boxes: jax.Array,
  gt_labels: jax.Array,
  gt_mask: jax.Array,
  key: jax.Array,
  num_rois: int = 256,
  fg_fraction: float = 0.25,
  fg_iou: float = 0.5,
  bg_iou_low: float = 0.0,
) -> dict[str, jax.Array]:
  """Sampled RoIs of one image: 'rois' (R, 4), 'labels' (R,) (0 = background), 'deltas' (R, 4), 'mask' (R,).

  `proposals` (P, 4) with `proposal_valid` (P,); ground truth gt_boxes (G, 4), gt_labels (G,), gt_mask (G,).
  Foreground RoIs come first, then background ones, then empty slots (mask False)."""
  gt_mask = gt_mask.astype(bool)
  candidates = jnp.concatenate([proposals, gt_boxes.astype(proposals.dtype)], axis=0)
  valid = jnp.concatenate([proposal_valid.astype(bool), gt_mask], axis=0)
  _, best_iou, best_gt = _best_match(candidates, gt_boxes, gt_mask)
  foreground = valid & (best_iou >= fg_iou)
  background = valid & (best_iou < fg_iou) & (best_iou >= bg_iou_low)
  chosen, is_fg, mask = _sample_slots(foreground, background, key, num_rois, fg_fraction)
  rois = jnp.where(mask[:, None], candidates[chosen], 0.0)
  labels = jnp.where(is_fg, gt_labels[best_gt[chosen]], 0).astype(jnp.int32)
  deltas = encode(gt_boxes[best_gt[chosen]].astype(rois.dtype), candidates[chosen])
  return {"rois": rois, "labels": labels, "deltas": jnp.where(is_fg[:, None], deltas, 0.0), "mask": mask}


def detection_labels(
  det_boxes: jax.Array, det_mask: jax.Array, gt_boxes: jax.Array, gt_labels: jax.Array, gt_mask: jax.Array, iou=0.5
) -> jax.Array:
  """(D,) the class of each real detection's best ground-truth box when their IoU is >= `iou`, else 0 (background).

  How neural-motifs labels SGDet detections for training the object side of a relation model."""
  _, best_iou, best_gt = _best_match(det_boxes, gt_boxes, gt_mask.astype(bool))
  return jnp.where(det_mask.astype(bool) & (best_iou >= iou), gt_labels[best_gt], 0).astype(jnp.int32)


def relation_pair_targets(
  det_boxes: jax.Array,
  det_mask: jax.Array,
  gt_boxes: jax.Array,
  gt_mask: jax.Array,
  relations: jax.Array,
  relation_mask: jax.Array,
  key: jax.Array,
  num_pairs: int = 256,
  fg_fraction: float = 0.25,
  iou: float = 0.5,
) -> tuple[jax.Array, jax.Array, jax.Array]:
  """SGDet training pairs among one image's detections: (pairs (P, 2), predicate labels (P,), mask (P,)).

  As neural-motifs' `rel_assignments` for SGDet: candidates are ordered pairs of distinct real detections whose
  boxes overlap (IoU > 0); a candidate is foreground when its subject matches the subject box and its object
  the object box (IoU >= `iou` each) of an annotated relation (`relations` (M, 3) subject, object, predicate
  indexing the ground-truth boxes), with that relation's predicate (one drawn at random when several match).
  At most `num_pairs * fg_fraction` foreground pairs are drawn, background pairs (label 0) fill the rest."""
  num_detections = det_boxes.shape[0]
  det_mask = det_mask.astype(bool)
  matches = (pairwise_iou(det_boxes, gt_boxes) >= iou) & gt_mask.astype(bool)[None, :] & det_mask[:, None]
  relations = relations.astype(jnp.int32)
  hits = (
    matches[:, None, relations[:, 0]] & matches[None, :, relations[:, 1]] & relation_mask.astype(bool)[None, None, :]
  )  # (D, D, M)
  draw_key, sample_key = jax.random.split(key)
  chosen = jnp.argmax(jnp.where(hits, jax.random.uniform(draw_key, hits.shape), -1.0), axis=-1)
  predicate = jnp.where(jnp.any(hits, axis=-1), relations[chosen, 2], 0).reshape(-1)
  distinct = ~jnp.eye(num_detections, dtype=bool)
  candidate = (distinct & det_mask[:, None] & det_mask[None, :] & (pairwise_iou(det_boxes, det_boxes) > 0)).reshape(-1)
  index, is_fg, mask = _sample_slots(
    candidate & (predicate > 0), candidate & (predicate == 0), sample_key, num_pairs, fg_fraction
  )
  pairs = jnp.stack(jnp.divmod(index, num_detections), axis=-1).astype(jnp.int32)
  return pairs, jnp.where(is_fg, predicate[index], 0).astype(jnp.int32), mask
