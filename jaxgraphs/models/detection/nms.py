"""Fixed-shape, jittable non-maximum suppression (greedy, as torchvision.ops.nms decides) with the +1 convention.

Semantics: among the valid boxes, taken in descending score order (equal scores: lower index first, what a
stable descending sort gives; torchvision's CPU kernel sorts stably too), a box is kept unless its IoU
(boxes.pairwise_iou, inclusive corners) with an already kept box is strictly greater than the threshold. The
float32 IoU is compared with the threshold's exact (double) value, as torchvision does: an IoU of exactly 3/10
rounds to 0.30000001 and counts as above 0.3. The outputs have a fixed size `max_output`: the indices of the
first `max_output` kept boxes in descending score order and a mask saying which slots hold one (the rest have keep
False and index 0).

Algorithm (the blocked scheme of TF's `non_max_suppression_padded`, with a compacted list of kept boxes): the
boxes are sorted once and walked in blocks of `block_size`. A block is first suppressed by the boxes kept in
earlier blocks, one (block x kept list) IoU matrix, then resolved within itself by a fixed-point iteration on
its (block x block) IoU matrix: keep[j] = alive[j] and no kept i < j in the block overlaps j. Entry j depends
only on the entries before it, so the iteration reaches the unique fixed point, the greedy answer, after at
most (the longest chain of suppressions) + 1 steps, usually a few. Its kept boxes are appended to the list, and
the walk stops as soon as `max_output` boxes are kept. This avoids both the N x N IoU matrix (576 MB at N =
12,000) and a loop of N sequential steps: the work is about N x min(max_output + block_size, N) IoUs in
N / block_size steps, each a large vectorised operation, and fewer when the walk stops early (an RPN's 12,000
proposals down to 2,000). Under jax.vmap the loops run until every image is done.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgraphs.models.detection.boxes import pairwise_iou

DEFAULT_BLOCK_SIZE = 256


def _empty(max_output: int) -> tuple[jax.Array, jax.Array]:
  return jnp.zeros((max_output,), jnp.int32), jnp.zeros((max_output,), bool)


def _threshold(iou_threshold, dtype):
  # "IoU > threshold" with the threshold as given (a Python float, a double): the largest float32 not above it
  # gives the same answers for float32 IoUs. Rounding to nearest would not when the threshold rounds up (0.3
  # does): an IoU of exactly 3/10 would then count as not above 0.3, where torchvision (comparing in double)
  # suppresses. A traced threshold is compared as it comes.
  dtype = np.dtype(jnp.result_type(dtype, jnp.float32))
  if not isinstance(iou_threshold, (int, float)) or dtype not in (np.float32, np.float64):
    return iou_threshold
  rounded = dtype.type(iou_threshold)
  return np.nextafter(rounded, dtype.type(-np.inf)) if float(rounded) > iou_threshold else rounded


def _resolve_block(overlaps: jax.Array, alive: jax.Array) -> jax.Array:
  # overlaps[i, j]: box i of the block would suppress box j (i < j, IoU above the threshold). Start from every
  # alive box kept and re-derive until nothing changes; see the module docstring for why this is exact.
  def step(state):
    keep, _ = state
    new_keep = alive & ~jnp.any(overlaps & keep[:, None], axis=0)
    return new_keep, jnp.any(new_keep != keep)

  keep, _ = jax.lax.while_loop(lambda state: state[1], step, (alive, jnp.array(True)))
  return keep


def nms(
  boxes: jax.Array,
  scores: jax.Array,
  valid: jax.Array,
  iou_threshold: float,
  max_output: int,
  block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[jax.Array, jax.Array]:
  """Greedy NMS of boxes (N, 4) by scores (N,) over `valid` (N,); (indices (max_output,) int32, keep mask)."""
  num_boxes = boxes.shape[0]
  if num_boxes == 0 or max_output == 0:
    return _empty(max_output)
  valid = valid.astype(bool)
  iou_threshold = _threshold(iou_threshold, boxes.dtype)
  block = min(block_size, num_boxes)
  num_blocks = -(-num_boxes // block)
  padded = num_blocks * block
  # The loop stops once max_output boxes are kept, so before a block fewer than max_output are in the list and
  # a block adds at most `block`.
  capacity = min(max_output + block, padded)

  # One sort: invalid boxes last, then descending score; lexsort is stable, so ties keep the lower index first.
  order = jnp.lexsort((-scores, ~valid)).astype(jnp.int32)
  pad = padded - num_boxes
  sorted_boxes = jnp.pad(boxes[order], ((0, pad), (0, 0)))
  sorted_valid = jnp.pad(valid[order], (0, pad))
  upper = jnp.triu(jnp.ones((block, block), bool), k=1)

  def body(state):
    index, count, kept_boxes, kept_positions = state
    start = index * block
    block_boxes = jax.lax.dynamic_slice_in_dim(sorted_boxes, start, block)
    block_valid = jax.lax.dynamic_slice_in_dim(sorted_valid, start, block)
    listed = jnp.arange(capacity) < count
    earlier = jnp.any((pairwise_iou(block_boxes, kept_boxes) > iou_threshold) & listed[None, :], axis=1)
    overlaps = (pairwise_iou(block_boxes, block_boxes) > iou_threshold) & upper
    keep = _resolve_block(overlaps, block_valid & ~earlier)
    # Compact the block's kept boxes onto the end of the list; the others get an out-of-range slot and drop.
    slots = jnp.where(keep, count + jnp.cumsum(keep) - 1, capacity)
    kept_boxes = kept_boxes.at[slots].set(block_boxes, mode="drop")
    kept_positions = kept_positions.at[slots].set(start + jnp.arange(block, dtype=jnp.int32), mode="drop")
    return index + 1, count + jnp.sum(keep, dtype=jnp.int32), kept_boxes, kept_positions

  def more(state):
    index, count, _, _ = state
    return (index < num_blocks) & (count < max_output)

  initial = (
    jnp.array(0, jnp.int32),
    jnp.array(0, jnp.int32),
    jnp.zeros((capacity, 4), boxes.dtype),
    jnp.zeros((capacity,), jnp.int32),
  )
  _, count, _, kept_positions = jax.lax.while_loop(more, body, initial)

  if capacity < max_output:
    kept_positions = jnp.pad(kept_positions, (0, max_output - capacity))
  kept_positions = kept_positions[:max_output]
  keep = jnp.arange(max_output) < count
  indices = jnp.where(keep, order[jnp.where(keep, kept_positions, 0)], 0)
  return indices.astype(jnp.int32), keep


def batched_nms(
  boxes: jax.Array,
  scores: jax.Array,
  labels: jax.Array,
  valid: jax.Array,
  iou_threshold: float,
  max_output: int,
  block_size: int = DEFAULT_BLOCK_SIZE,
) -> tuple[jax.Array, jax.Array]:
  """NMS within each label of labels (N,) independently (torchvision.ops.batched_nms); outputs as `nms`."""
  if boxes.shape[0] == 0:
    return _empty(max_output)
  valid = valid.astype(bool)
  # Moving each label's boxes by label * span puts different labels apart: span exceeds the extent of all valid
  # boxes by 2, more than the +1 of inclusive corners, so their IoU is 0. Using the extent (not only the largest
  # coordinate, as torchvision does) keeps labels apart also when boxes reach below 0.
  coordinates = jnp.where(valid[:, None], boxes, jnp.nan)
  low = jnp.nan_to_num(jnp.nanmin(coordinates), nan=0.0)
  high = jnp.nan_to_num(jnp.nanmax(coordinates), nan=0.0)
  offsets = labels.astype(boxes.dtype) * (high - low + 2.0)
  return nms(boxes + offsets[:, None], scores, valid, iou_threshold, max_output, block_size)
