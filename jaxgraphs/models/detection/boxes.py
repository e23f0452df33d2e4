"""Box arithmetic of the VG Faster R-CNN: IoU, delta encoding, clipping (x1, y1, x2, y2 pixels, jittable).

Convention: the detector of neural-motifs (py-faster-rcnn's) treats box corners as inclusive pixel indices,
so a box is x2 - x1 + 1 pixels wide. Widths in IoU and in the deltas use that +1. torchvision's ops use
exclusive corners (width x2 - x1); a box here equals torchvision's box (x1, y1, x2 + 1, y2 + 1).

Deltas (dx, dy, dw, dh) of a box against a reference box (an anchor or a proposal) with centre (cx, cy),
size (w, h): dx = (gx - cx) / w, dy = (gy - cy) / h, dw = log(gw / w), dh = log(gh / h). The VG detector
uses unit weights for the RPN and the box head, so no weights are applied.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# Deltas above this are clamped before exp, as torchvision and Detectron do: log(1000 / 16).
MAX_LOG_SCALE = math.log(1000.0 / 16.0)


def sizes_and_centres(boxes: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(..., 2) widths/heights (+1 convention) and (..., 2) centres of boxes (..., 4)."""
  size = boxes[..., 2:] - boxes[..., :2] + 1.0
  return size, boxes[..., :2] + 0.5 * size


def box_area(boxes: jax.Array) -> jax.Array:
  """Areas (...,) with the +1 convention; a degenerate box (x2 < x1 - 1) has area 0."""
  size = jnp.maximum(boxes[..., 2:] - boxes[..., :2] + 1.0, 0.0)
  return size[..., 0] * size[..., 1]


def pairwise_iou(a: jax.Array, b: jax.Array) -> jax.Array:
  """IoU (..., N, M) of boxes a (..., N, 4) against b (..., M, 4), +1 convention; 0 where both areas are 0."""
  low = jnp.maximum(a[..., :, None, :2], b[..., None, :, :2])
  high = jnp.minimum(a[..., :, None, 2:], b[..., None, :, 2:])
  overlap = jnp.maximum(high - low + 1.0, 0.0)
  intersection = overlap[..., 0] * overlap[..., 1]
  union = box_area(a)[..., :, None] + box_area(b)[..., None, :] - intersection
  return jnp.where(union > 0, intersection / jnp.where(union > 0, union, 1.0), 0.0)


def encode(boxes: jax.Array, references: jax.Array) -> jax.Array:
  """Deltas (..., 4) that move `references` (..., 4) onto `boxes` (..., 4)."""
  size, centre = sizes_and_centres(references)
  target_size, target_centre = sizes_and_centres(boxes)
  return jnp.concatenate([(target_centre - centre) / size, jnp.log(target_size / size)], axis=-1)


def decode(deltas: jax.Array, references: jax.Array) -> jax.Array:
  """Boxes (..., 4) given by `deltas` (..., 4) applied to `references` (..., 4); the inverse of `encode`."""
  size, centre = sizes_and_centres(references)
  new_centre = centre + deltas[..., :2] * size
  new_size = jnp.exp(jnp.minimum(deltas[..., 2:], MAX_LOG_SCALE)) * size
  return jnp.concatenate([new_centre - 0.5 * new_size, new_centre + 0.5 * new_size - 1.0], axis=-1)


def clip_boxes(boxes: jax.Array, image_hw: jax.Array) -> jax.Array:
  """Boxes (B, ..., 4) clipped to their image's pixels [0, w - 1] x [0, h - 1]; image_hw (B, 2) (h, w)."""
  hw = image_hw.astype(boxes.dtype).reshape(image_hw.shape[:1] + (1,) * (boxes.ndim - 2) + (2,))
  high = jnp.concatenate([hw[..., 1:2], hw[..., 0:1]], axis=-1) - 1.0
  return jnp.concatenate([jnp.clip(boxes[..., :2], 0.0, high), jnp.clip(boxes[..., 2:], 0.0, high)], axis=-1)
