"""RoIAlign (Mask R-CNN) in JAX with the semantics of torchvision.ops.roi_align, batched over padded boxes.

Per box, the box is mapped to feature coordinates (x * spatial_scale, minus 0.5 when `aligned`), split into
output_size bins, and each bin is the mean of a grid of bilinear samples. As in torchvision's kernel:
- not `aligned`: the box width and height are at least 1 feature pixel;
- a sample with y < -1, y > H, x < -1 or x > W contributes 0 (it still counts in the mean); otherwise
  coordinates are clamped to >= 0 and a sample beyond the last row/column reads that row/column;
- `sampling_ratio > 0`: that many samples per bin along each axis; `sampling_ratio <= 0`: adaptive,
  ceil(box_height / output_height) along y (likewise x), and an empty grid gives 0.

Adaptive sampling is data dependent, which jit cannot size. Here the grid is laid out up to a static
`max_sampling_ratio` and the samples beyond each box's own count are masked out. The default bound,
ceil(H / output_height) and ceil(W / output_width), is exact for every box inside the feature map (e.g. a
box clipped to the image); a larger box is sampled with the bound instead of its own count, which is the
one place this differs from torchvision. Cost grows with the square of the bound, so a fixed
`sampling_ratio` (e.g. 2) is much cheaper.

Two vectorised implementations give the same numbers; both are differentiable with respect to the
features and, like torchvision, pass no gradient into the boxes:
- "gather" (default): for every bin, 2 * grid taps per axis (the low and high neighbour of each sample)
  are gathered and weighted. Few multiply-adds, but XLA on CPU materialises the gathered taps,
  B * R * 49 * (2 * grid)**2 * C values (205 MB for 2 x 64 boxes, C = 512, grid 2; 9x that with an
  adaptive bound of 6).
- "matmul": the taps are folded into per-box (oh, H) and (ow, W) interpolation matrices and contracted
  with the feature map. Memory is about B * R * oh * W * C whatever the grid (140 MB in the example
  above, with or without adaptive sampling) and the work is a matrix product, at O(H * W) multiply-adds
  per output row: the better trade for adaptive sampling and presumably on matrix units (not yet timed on
  an accelerator).
For many boxes (e.g. LinkNet's union boxes, one per object pair) call it on chunks of boxes.

Rounding: float32 throughout, in torch's order of operations, with exact divisions (see `_divide`). torch
rounds box * spatial_scale - offset once (in double); here it is rounded twice, which is identical for
power-of-two scales such as 1/16 and otherwise within an ulp.
"""

from __future__ import annotations

import math
from typing import Sequence

import jax
import jax.numpy as jnp

IMPLEMENTATIONS = ("gather", "matmul")


def _pair(output_size: int | Sequence[int]) -> tuple[int, int]:
  """(height, width) from an int or a pair, validated."""
  size = (output_size, output_size) if isinstance(output_size, int) else tuple(output_size)
  if len(size) != 2 or min(size) < 1:
    raise ValueError(f"roi_align: output_size must be a positive int or (height, width), got {output_size}")
  return int(size[0]), int(size[1])


def _divide(numerator: jax.Array, denominator) -> jax.Array:
  """IEEE float32 numerator / denominator, as torch's kernel computes it.

  XLA rewrites a division by a constant or a broadcast value into a multiplication by its reciprocal, which
  is off by an ulp: enough to turn ceil(21 / 7) into 4 or to move a sample across the -1 / H cut-off. A
  full-shape divisor behind an optimization barrier is left alone.
  """
  denominator = jnp.broadcast_to(jnp.asarray(denominator, jnp.float32), numerator.shape)
  return numerator / jax.lax.optimization_barrier(denominator)


def _axis_taps(start, bin_size, grid, num_bins: int, max_grid: int, size: int):
  """Indices and weights of the bilinear taps along one axis, both (B, R, num_bins, 2 * max_grid).

  Tap 2 * i is the low neighbour and 2 * i + 1 the high neighbour of sample i of a bin. The weight holds
  the bilinear factor, the in-range test of the sample along this axis and the adaptive-grid mask; the
  per-sample validity of torchvision (both axes in range) is the product of the two axes' tests.
  """
  bin_index = jnp.arange(num_bins, dtype=jnp.float32)[:, None]
  sample_index = jnp.arange(max_grid, dtype=jnp.float32)
  grid = grid[..., None, None]
  within_bin = _divide((sample_index + 0.5) * bin_size[..., None, None], jnp.maximum(grid, 1.0))
  # Same operation order as torchvision's kernel: start + p * bin + (i + .5) * bin / grid.
  coordinate = start[..., None, None] + bin_index * bin_size[..., None, None] + within_bin
  used = (sample_index < grid) & (coordinate >= -1.0) & (coordinate <= size)
  coordinate = jnp.maximum(coordinate, 0.0)
  low = jnp.floor(coordinate).astype(jnp.int32)
  at_edge = low >= size - 1
  low = jnp.where(at_edge, size - 1, low)
  high = jnp.where(at_edge, size - 1, low + 1)
  fraction = jnp.where(at_edge, 0.0, coordinate - low)
  weight_low = jnp.where(used, 1.0 - fraction, 0.0)
  weight_high = jnp.where(used, fraction, 0.0)
  indices = jnp.stack([low, high], axis=-1).reshape(*low.shape[:-1], 2 * max_grid)
  weights = jnp.stack([weight_low, weight_high], axis=-1).reshape(*low.shape[:-1], 2 * max_grid)
  return indices, weights


def _pool_by_gather(features, y_index, y_weight, x_index, x_weight, count):
  """Gathers every (y tap, x tap) of every bin, (B, R, oh, ow, taps_y, taps_x, C), and sums them weighted."""
  batch_index = jnp.arange(features.shape[0])[:, None, None, None, None, None]
  taps = features[batch_index, y_index[:, :, :, None, :, None], x_index[:, :, None, :, None, :]]
  weights = y_weight[:, :, :, None, :, None] * x_weight[:, :, None, :, None, :] / count[..., None, None, None, None]
  return jnp.sum(taps.astype(jnp.float32) * weights[..., None], axis=(4, 5))


def _pool_by_matmul(features, y_index, y_weight, x_index, x_weight, count):
  """Folds the taps into dense (B, R, oh, H) and (B, R, ow, W) interpolation matrices and contracts them.

  Bilinear sampling and the mean over the grid are separable, so a bin is Wy F Wx^T. Memory no longer grows
  with the sampling grid, at the price of O(H W) multiply-adds per bin row: the better trade for adaptive
  sampling or on matrix units. HIGHEST precision keeps float32 features from being rounded to TF32/bf16.
  """
  _, height, width, _ = features.shape
  rows = jnp.sum(y_weight[..., None] * (y_index[..., None] == jnp.arange(height)), axis=-2)
  columns = jnp.sum(x_weight[..., None] * (x_index[..., None] == jnp.arange(width)), axis=-2)
  rows = rows / count[..., None, None]
  return jnp.einsum(
    "brph,bhwc,brqw->brpqc", rows, features.astype(jnp.float32), columns, precision=jax.lax.Precision.HIGHEST
  )


def roi_align(
  features: jax.Array,
  boxes: jax.Array,
  box_mask: jax.Array | None = None,
  *,
  output_size: int | Sequence[int] = (7, 7),
  spatial_scale: float = 1.0,
  sampling_ratio: int = 2,
  aligned: bool = False,
  max_sampling_ratio: int | Sequence[int] | None = None,
  implementation: str = "gather",
) -> jax.Array:
  """RoIAlign of `boxes` (B, R, 4; x1, y1, x2, y2 image coords) on `features` (B, H, W, C) -> (B, R, oh, ow, C).

  `box_mask` (B, R) marks real boxes; padded ones give zeros. `max_sampling_ratio` (int or (y, x)) bounds
  the adaptive grid used when `sampling_ratio <= 0` (see the module docstring); it is ignored otherwise.
  `implementation`: "gather" or "matmul" (same numbers; see the module docstring for which to pick).
  """
  if implementation not in IMPLEMENTATIONS:
    raise ValueError(f"roi_align: implementation={implementation!r}; expected one of {IMPLEMENTATIONS}")
  if features.ndim != 4:
    raise ValueError(f"roi_align: features must be (B, H, W, C), got shape {features.shape}")
  if boxes.ndim != 3 or boxes.shape[-1] != 4 or boxes.shape[0] != features.shape[0]:
    raise ValueError(f"roi_align: boxes must be (B, R, 4) with B = {features.shape[0]}, got shape {boxes.shape}")
  if box_mask is not None and box_mask.shape != boxes.shape[:2]:
    raise ValueError(f"roi_align: box_mask must be (B, R) = {boxes.shape[:2]}, got shape {box_mask.shape}")
  out_h, out_w = _pair(output_size)
  batch, height, width, _ = features.shape

  boxes = jax.lax.stop_gradient(boxes).astype(jnp.float32)
  if box_mask is not None:
    boxes = jnp.where(box_mask[..., None], boxes, 0.0)  # padded boxes may hold garbage such as NaN
  offset = 0.5 if aligned else 0.0
  start_x, start_y, end_x, end_y = (boxes[..., i] * spatial_scale - offset for i in range(4))
  roi_w, roi_h = end_x - start_x, end_y - start_y
  if not aligned:
    roi_w, roi_h = jnp.maximum(roi_w, 1.0), jnp.maximum(roi_h, 1.0)
  bin_h, bin_w = _divide(roi_h, out_h), _divide(roi_w, out_w)

  if sampling_ratio > 0:
    max_grid_h = max_grid_w = int(sampling_ratio)
    grid_h = grid_w = jnp.full(roi_h.shape, float(sampling_ratio), jnp.float32)
  else:
    if max_sampling_ratio is None:
      max_grid_h, max_grid_w = math.ceil(height / out_h), math.ceil(width / out_w)
    else:
      max_grid_h, max_grid_w = _pair(max_sampling_ratio)
    grid_h = jnp.minimum(jnp.ceil(bin_h), max_grid_h)  # torch: ceil(roi_height / pooled_height)
    grid_w = jnp.minimum(jnp.ceil(bin_w), max_grid_w)
  count = jnp.maximum(jnp.maximum(grid_h, 0.0) * jnp.maximum(grid_w, 0.0), 1.0)

  y_index, y_weight = _axis_taps(start_y, bin_h, grid_h, out_h, max_grid_h, height)
  x_index, x_weight = _axis_taps(start_x, bin_w, grid_w, out_w, max_grid_w, width)
  if implementation == "gather":
    pooled = _pool_by_gather(features, y_index, y_weight, x_index, x_weight, count)
  else:
    pooled = _pool_by_matmul(features, y_index, y_weight, x_index, x_weight, count)
  if box_mask is not None:
    pooled = jnp.where(box_mask[..., None, None, None], pooled, 0.0)
  return pooled.astype(features.dtype)


def pooled_box_features(
  features: jax.Array,
  boxes: jax.Array,
  box_mask: jax.Array,
  head,
  *,
  chunk_size: int,
  spatial_scale: float,
  sampling_ratio: int = 2,
  implementation: str = "matmul",
  output_size: int = 7,
  train: bool = False,
) -> jax.Array:
  """`head` (e.g. VGG's fc6/fc7) applied to RoIAlign of (B, R, 4) boxes, `chunk_size` boxes at a time -> (B, R, D).

  Chunking bounds the (B, chunk, 7, 7, C) pooled tensor: LinkNet's union boxes (one per pair) and a detector's
  thousand proposals would otherwise hold every pooled window at once."""
  chunk = max(1, int(chunk_size))
  pieces = []
  for start in range(0, boxes.shape[1], chunk):
    rois = roi_align(
      features,
      boxes[:, start : start + chunk],
      box_mask[:, start : start + chunk],
      output_size=output_size,
      spatial_scale=spatial_scale,
      sampling_ratio=sampling_ratio,
      implementation=implementation,
    )
    pieces.append(head(rois, train=train))
  return jnp.concatenate(pieces, axis=1)
