"""RPN anchors of the VG Faster R-CNN: the base anchors of one feature cell and their grid over a feature map.

Conventions: boxes are (x1, y1, x2, y2) pixels with inclusive corners (boxes.py: a box is x2 - x1 + 1 pixels
wide). The base anchors follow py-faster-rcnn's `generate_anchors`, which neural-motifs' VG detector uses with
k-means ratios and scales fitted to Visual Genome boxes (4 ratios x 5 scales = 20 anchors per cell): every
anchor is centred on the centre of the cell [0, base_size - 1]^2, ratio-major (all scales of the first ratio,
then of the second, ...), ratio = height / width. The grid shifts them by the stride for every cell, in the
order (H, W, A) flattened: the order of an RPN conv output (B, H, W, A * k) reshaped to (B, H * W * A, k).

Anchors are computed with NumPy on the host: they depend only on static shapes, so under jit they are
constants folded into the program.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# neural-motifs' VG anchors (k-means on Visual Genome's boxes): height / width ratios and scales of base_size.
VG_ANCHOR_RATIOS = (0.23232838, 0.63365731, 1.28478321, 3.15089189)
VG_ANCHOR_SCALES = (2.22152954, 4.12315647, 7.21692515, 12.60263013, 22.7102731)
VG_ANCHOR_BASE_SIZE = 16
VG_FEATURE_STRIDE = 16


def _from_sizes(widths: np.ndarray, heights: np.ndarray, x_centre: float, y_centre: float) -> np.ndarray:
  # Inclusive corners: a box w pixels wide spans w - 1 between its corner pixel indices.
  half_w, half_h = 0.5 * (widths - 1.0), 0.5 * (heights - 1.0)
  return np.stack([x_centre - half_w, y_centre - half_h, x_centre + half_w, y_centre + half_h], axis=-1)


def base_anchors(
  base_size: int = VG_ANCHOR_BASE_SIZE,
  ratios: Sequence[float] = VG_ANCHOR_RATIOS,
  scales: Sequence[float] = VG_ANCHOR_SCALES,
) -> np.ndarray:
  """Anchors (len(ratios) * len(scales), 4) of one cell, ratio-major, as py-faster-rcnn / neural-motifs make them."""
  ratios = np.asarray(ratios, dtype=np.float64)
  scales = np.asarray(scales, dtype=np.float64)
  centre = 0.5 * (base_size - 1.0)
  # The ratio step keeps the base area and rounds the sides to whole pixels (np.round: half to even, as in
  # py-faster-rcnn); the rounding is part of the reference anchors, so it is kept.
  widths = np.round(np.sqrt(base_size * base_size / ratios))
  heights = np.round(widths * ratios)
  # The scale step multiplies those rounded sides without rounding again.
  anchors = _from_sizes(widths[:, None] * scales[None, :], heights[:, None] * scales[None, :], centre, centre)
  return anchors.reshape(-1, 4)


def grid_anchors(
  feature_hw: tuple[int, int], stride: int = VG_FEATURE_STRIDE, base: np.ndarray | None = None
) -> np.ndarray:
  """Anchors (H * W * A, 4) float32 of every cell of an (H, W) feature map, in (H, W, A) order."""
  if base is None:
    base = base_anchors()
  height, width = feature_hw
  shift_x, shift_y = np.meshgrid(np.arange(width) * stride, np.arange(height) * stride)  # (H, W) each
  shifts = np.stack([shift_x, shift_y, shift_x, shift_y], axis=-1).astype(np.float64)
  anchors = shifts[:, :, None, :] + np.asarray(base, dtype=np.float64)[None, None, :, :]
  return anchors.reshape(-1, 4).astype(np.float32)
