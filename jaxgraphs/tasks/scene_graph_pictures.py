"""Pictures of scene graphs (host side): relational embedding matrices (LinkNet Fig. 2) and graphs drawn on images."""

from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

GREEN = (40, 200, 70)
RED = (230, 50, 50)
WHITE = (255, 255, 255)
MIN_PICTURE_SIDE = 256


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
  """Nearest-neighbour enlargement of an (H, W, 3) image by an integer factor."""
  return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def triangular_fold(matrix: np.ndarray) -> np.ndarray:
  """matrix[i, j] + matrix[j, i] above the diagonal, 0 elsewhere (the paper's triangular form)."""
  folded = matrix + matrix.T
  return np.triu(folded, k=1)


def relation_matrix_picture(adjacency: np.ndarray, weights: np.ndarray, num_objects: int, cell: int = 16) -> np.ndarray:
  """Fig. 2 panels for one image: ground-truth relations (1 if related in either direction) and the folded
  relational embedding weights, each (max_objects x max_objects cells), real objects in the top-left corner."""
  size = adjacency.shape[0]
  panels = []
  for values in (triangular_fold(adjacency.astype(np.float64)) > 0, triangular_fold(weights.astype(np.float64))):
    grid = np.zeros((size, size))
    real = values[:num_objects, :num_objects].astype(np.float64)
    grid[:num_objects, :num_objects] = real / max(float(real.max()), 1e-12)
    grey = np.round(255 * grid).astype(np.uint8)
    panel = upscale(np.stack([grey] * 3, axis=-1), cell)
    panel[:, -1] = panel[-1, :] = 128  # a frame line between the panels
    panels.append(panel)
  return np.concatenate(panels, axis=1)


def _arrow(draw: ImageDraw.ImageDraw, start, end, colour, width: int = 2) -> None:
  """A line from start to end with a small head at end."""
  draw.line([start, end], fill=colour, width=width)
  direction = np.asarray(end, np.float64) - np.asarray(start, np.float64)
  length = float(np.hypot(*direction))
  if length < 1e-6:
    return
  unit = direction / length
  normal = np.asarray([-unit[1], unit[0]])
  tip = np.asarray(end, np.float64)
  head = 8.0
  points = [tuple(tip), tuple(tip - head * unit + 0.5 * head * normal), tuple(tip - head * unit - 0.5 * head * normal)]
  draw.polygon(points, fill=colour)


def draw_scene_graph(
  image: np.ndarray,
  boxes: np.ndarray,
  labels: Sequence[int],
  class_names: Sequence[str],
  relations: Sequence[tuple[int, int, int, bool]],
  predicate_names: Sequence[str],
) -> np.ndarray:
  """uint8 image with object boxes and names, and one arrow per relation (subject -> object) named by its
  predicate: green when `relations[k][3]` (a correct prediction), red otherwise (a missed ground truth)."""
  factor = max(1, int(np.ceil(MIN_PICTURE_SIDE / max(image.shape[:2]))))
  canvas = Image.fromarray(upscale(np.asarray(image, np.uint8), factor))
  draw = ImageDraw.Draw(canvas)
  boxes = np.asarray(boxes, np.float64) * factor
  for box, label in zip(boxes, labels):
    draw.rectangle([tuple(box[:2]), tuple(box[2:])], outline=WHITE, width=1)
    draw.text((box[0] + 2, box[1] + 1), class_names[int(label)], fill=WHITE)
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2
  for subject, object_, predicate, correct in relations:
    colour = GREEN if correct else RED
    direction = centres[object_] - centres[subject]
    # Shifted to the left of its direction, so that s -> o and o -> s stay apart.
    shift = 4.0 * np.array([direction[1], -direction[0]]) / max(float(np.hypot(*direction)), 1e-6)
    start, end = centres[subject] + shift, centres[object_] + shift
    _arrow(draw, tuple(start), tuple(end), colour)
    middle = (start + end) / 2 + 2.5 * shift
    draw.text((middle[0] - 12, middle[1] - 5), predicate_names[int(predicate)], fill=colour)
  return np.asarray(canvas, np.uint8)
