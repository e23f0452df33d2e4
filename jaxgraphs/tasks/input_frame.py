"""Where the network's input lies on a picture: an axis-aligned map from input pixels to canvas pixels.

A canvas is what a picture is drawn on: the photo a prediction was made for, or the network input itself
enlarged for TensorBoard. `photo_frame` inverts the geometric ops of an evaluation preprocessing string so
that boxes, attention cells and region maps computed on the network input land on the photo.

Supported ops (`pp_eval` may contain only these): decode, resize, resize_short, resize_long, center_crop and
pad_bottom_right, which move and stretch the image, and normalize_imagenet, value_range, keep_image_size and
pack_scene_graph, which do not. Random ops (crops, flips, scale jitter) have no inverse and are refused.
"""

from __future__ import annotations

import dataclasses

import numpy as np

GEOMETRIC_OPS = ("resize", "resize_short", "resize_long", "center_crop", "pad_bottom_right")
NEUTRAL_OPS = ("decode", "normalize_imagenet", "value_range", "keep_image_size", "pack_scene_graph")


@dataclasses.dataclass(frozen=True)
class InputFrame:
  """canvas = input * scale + offset on each axis, in continuous pixel coordinates ((0, 0) is the top-left
  corner of the first pixel); scale and offset are (y, x) pairs."""

  input_hw: tuple[int, int]
  canvas_hw: tuple[int, int]
  scale: tuple[float, float] = (1.0, 1.0)
  offset: tuple[float, float] = (0.0, 0.0)

  @classmethod
  def identity(cls, hw: tuple[int, int]) -> InputFrame:
    """The network input drawn as it is."""
    return cls(tuple(hw), tuple(hw))

  def resized(self, scale: tuple[float, float]) -> InputFrame:
    """The frame of the canvas resized by (y, x) `scale`."""
    canvas_hw = tuple(round(s * n) for s, n in zip(scale, self.canvas_hw))
    return InputFrame(
      self.input_hw,
      canvas_hw,
      tuple(a * s for a, s in zip(self.scale, scale)),
      tuple(b * s for b, s in zip(self.offset, scale)),
    )

  def boxes_to_canvas(self, boxes: np.ndarray) -> np.ndarray:
    """(N, 4) x1, y1, x2, y2 boxes in input pixels -> canvas pixels."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    scale = np.array([self.scale[1], self.scale[0]] * 2)
    offset = np.array([self.offset[1], self.offset[0]] * 2)
    return boxes * scale + offset

  def cell_indices(self, grid_hw: tuple[int, int]) -> np.ndarray:
    """(canvas H, canvas W) int: the flat index (row * grid width + column) of the cell of a (gh, gw) grid
    laid evenly over the input that each canvas pixel's centre falls in, -1 where it is outside the input."""
    cells = []
    for axis in (0, 1):
      centres = np.arange(self.canvas_hw[axis]) + 0.5
      position = (centres - self.offset[axis]) / self.scale[axis]  # in input pixels
      cell = np.floor(position * grid_hw[axis] / self.input_hw[axis]).astype(np.int64)
      cells.append(np.where((position >= 0) & (position < self.input_hw[axis]), cell, -1))
    rows, cols = cells
    flat = rows[:, None] * grid_hw[1] + cols[None, :]
    return np.where((rows[:, None] >= 0) & (cols[None, :] >= 0), flat, -1)

  def grid_on_canvas(self, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values of a (gh, gw) map at every canvas pixel, where the canvas shows the input)."""
    values = np.asarray(values, np.float64)
    index = self.cell_indices(values.shape)
    inside = index >= 0
    return values.reshape(-1)[np.maximum(index, 0)], inside

  def cell_box(self, cell: int, grid_hw: tuple[int, int]) -> np.ndarray:
    """x1, y1, x2, y2 on the canvas of flat cell `cell` of a (gh, gw) grid over the input."""
    row, col = divmod(int(cell), grid_hw[1])
    height, width = (n / g for n, g in zip(self.input_hw, grid_hw))
    return self.boxes_to_canvas(np.array([col * width, row * height, (col + 1) * width, (row + 1) * height]))[0]


def geometry_ops(pp_eval: str) -> list[tuple[str, tuple, dict]]:
  """The parsed ops of `pp_eval`; raises ValueError naming an op that cannot be inverted."""
  from jaxgraphs.data import transforms

  ops = transforms.parse(pp_eval, where="config.data.pp_eval")
  for name, _, _ in ops:
    if name not in GEOMETRIC_OPS + NEUTRAL_OPS:
      raise ValueError(
        f"config.data.pp_eval={pp_eval!r}: cannot map the network's input back to the photo through "
        f"{name!r}; pictures and boxes on the photo support {', '.join(GEOMETRIC_OPS + NEUTRAL_OPS)}"
      )
  return ops


def _op_size(name: str, args: tuple, kwargs: dict) -> object:
  return kwargs["size"] if "size" in kwargs else args[0]


def photo_frame(pp_eval: str, photo_hw: tuple[int, int]) -> InputFrame:
  """The frame of the network input on a photo of (height, width) pixels read with `pp_eval` (same size
  arithmetic as jaxgraphs.data.transforms: torchvision's truncation in resize_short, round-half-even offsets
  in center_crop)."""
  from jaxgraphs.data import transforms

  hw = [int(photo_hw[0]), int(photo_hw[1])]
  # input = photo * a + b on each axis, composed op by op.
  a, b = [1.0, 1.0], [0.0, 0.0]
  for name, args, kwargs in geometry_ops(pp_eval):
    if name in NEUTRAL_OPS:
      continue
    size = _op_size(name, args, kwargs)
    if name == "resize":
      new = list(transforms._size_hw(size))  # pylint: disable=protected-access
    elif name == "resize_short":
      short, long_ = min(hw), max(hw)
      new_long = int(size * long_ / short)
      new = [size, new_long] if hw[0] <= hw[1] else [new_long, size]
    elif name == "resize_long":
      new = [max(round(n * size / max(hw)), 1) for n in hw]
    elif name == "center_crop":
      crop = transforms._size_hw(size)  # pylint: disable=protected-access
      for axis in (0, 1):
        start = round((hw[axis] - crop[axis]) / 2) if hw[axis] >= crop[axis] else -((crop[axis] - hw[axis]) // 2)
        b[axis] -= start
      hw = list(crop)
      continue
    else:  # pad_bottom_right: the image stays at the top-left corner
      hw = list(transforms._size_hw(size))  # pylint: disable=protected-access
      continue
    for axis in (0, 1):
      factor = new[axis] / hw[axis]
      a[axis], b[axis] = a[axis] * factor, b[axis] * factor
    hw = new
  return InputFrame(tuple(hw), (int(photo_hw[0]), int(photo_hw[1])), (1 / a[0], 1 / a[1]), (-b[0] / a[0], -b[1] / a[1]))
