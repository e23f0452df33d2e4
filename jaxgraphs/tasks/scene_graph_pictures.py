"""Pictures of scene graphs (host side): graphs drawn on images (LinkNet Fig. 3) and relational embedding
matrices (Fig. 2).

A graph picture has the image with numbered object boxes and one arrow per relation tagged R1, R2, ... and,
beside it, a legend that names them ("R1  1 red circle -> left of -> 2 blue square  0.83"), so that no label
covers another or the image. Predictions show the top MAX_RELATIONS relations whose score is at least
MIN_RELATION_SCORE; evaluation pictures show the ground-truth relations, found or missed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

from jaxgraphs.tasks.display import (
  BACKGROUND,
  GREY,
  LINE_HEIGHT,
  MIN_PANEL_SIDE,
  PALETTE,
  WHITE,
  Colour,
  ColourScale,
  captioned,
  colour_bar,
  draw_tag,
  font,
  free_spot,
  resize_for_display,
  side_by_side,
  stack,
  text_panel,
  text_width,
  titled,
)
from jaxgraphs.tasks.input_frame import InputFrame

MAX_RELATIONS = 10  # relations drawn per picture at most
MIN_RELATION_SCORE = 0.1  # predicted relations below this triple score are not drawn
MIN_CELL = 12  # pixels per matrix cell, at least
UNUSED_CELL = (60, 60, 60)  # the diagonal and below: each pair is shown once, above it
RELATED_SCALE = ColourScale(0.0, 1.0, "ground truth: 1 related (either direction), 0 not")


class Relation(NamedTuple):
  """One relation to draw: subject and object indices, predicate index, colour, and its score if predicted."""

  subject: int
  object: int
  predicate: int
  colour: Colour
  score: float | None = None


def object_colour(index: int) -> Colour:
  """The colour of object `index` (its box, its number and its legend line)."""
  return PALETTE[index % len(PALETTE)]


def triangular_fold(matrix: np.ndarray) -> np.ndarray:
  """matrix[i, j] + matrix[j, i] above the diagonal, 0 elsewhere (the paper's triangular form)."""
  folded = matrix + matrix.T
  return np.triu(folded, k=1)


def draw_arrow(draw: ImageDraw.ImageDraw, start, end, colour, width: int = 2) -> None:
  """A line from start to end with a head at end."""
  draw.line([start, end], fill=colour, width=width)
  direction = np.asarray(end, np.float64) - np.asarray(start, np.float64)
  length = float(np.hypot(*direction))
  if length < 1e-6:
    return
  unit = direction / length
  normal = np.asarray([-unit[1], unit[0]])
  tip = np.asarray(end, np.float64)
  head = 10.0
  points = [tuple(tip), tuple(tip - head * unit + 0.5 * head * normal), tuple(tip - head * unit - 0.5 * head * normal)]
  draw.polygon(points, fill=colour)


def draw_scene_graph(
  image: np.ndarray,
  frame: InputFrame,
  boxes: np.ndarray,
  labels: Sequence[int],
  class_names: Sequence[str],
  relations: Sequence[Relation],
  predicate_names: Sequence[str],
  title: str,
  heading: Sequence[str],
  object_scores: Sequence[float] | None = None,
  not_drawn: int = 0,
) -> np.ndarray:
  """uint8 picture: `title` over the image with numbered object boxes and one tagged arrow (subject -> object)
  per relation, and beside it the legend: the objects, then `heading` lines and the relations in order
  (`not_drawn` more counted at the end). `image` is the canvas (the photo, or the network input), `frame`
  places the network input on it and `boxes` are x1, y1, x2, y2 in input pixels."""
  canvas, scale = resize_for_display(image)
  frame = frame.resized(scale)
  boxes = frame.boxes_to_canvas(boxes)
  picture = Image.fromarray(canvas)
  draw = ImageDraw.Draw(picture)
  bounds = canvas.shape[:2]
  width = max(2, round(min(bounds) / 200))
  for index, box in enumerate(boxes):
    draw.rectangle([tuple(box[:2]), tuple(box[2:])], outline=object_colour(index), width=width)
  centres = (boxes[:, :2] + boxes[:, 2:]) / 2
  tag_spots = []
  for relation in relations:
    start, end = centres[relation.subject], centres[relation.object]
    direction = end - start
    # Shifted to the left of its direction, so that s -> o and o -> s stay apart.
    shift = 5.0 * np.array([direction[1], -direction[0]]) / max(float(np.hypot(*direction)), 1e-6)
    start, end = start + shift, end + shift
    draw_arrow(draw, tuple(start), tuple(end), relation.colour, width)
    tag_spots.append((start, end))
  # Tags last, so that no line crosses them, each where it covers no earlier tag.
  taken = []
  for index, box in enumerate(boxes):
    text = str(index + 1)
    size = (text_width(text) + 4, LINE_HEIGHT - 2)
    corners = [(box[0], box[1]), (box[0], box[1] - size[1]), (box[2] - size[0], box[1]), (box[0], box[3] - size[1])]
    taken.append(draw_tag(draw, free_spot(corners, size, taken, bounds), text, object_colour(index)))
  for number, (relation, (start, end)) in enumerate(zip(relations, tag_spots), 1):
    text = f"R{number}"
    size = (text_width(text) + 4, LINE_HEIGHT - 2)
    direction = (end - start) / max(float(np.hypot(*(end - start))), 1e-6)
    normal = np.array([-direction[1], direction[0]]) * size[1]
    along = [
      start + t * (end - start) + side * normal
      for side in (0, 1, -1)
      for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8, 0.1, 0.9)
    ]
    candidates = [(p[0] - size[0] / 2, p[1] - size[1] / 2) for p in along]
    taken.append(draw_tag(draw, free_spot(candidates, size, taken, bounds), text, relation.colour))

  name = lambda i: f"{i + 1} {class_names[int(labels[i])]}"
  lines = [("objects", WHITE)]
  for index in range(len(boxes)):
    score = "" if object_scores is None else f"  {float(object_scores[index]):.2f}"
    lines.append((f"  {name(index)}{score}", object_colour(index)))
  lines += [(text, WHITE) for text in heading]
  for number, relation in enumerate(relations, 1):
    score = "" if relation.score is None else f"  {relation.score:.2f}"
    predicate = predicate_names[int(relation.predicate)]
    lines.append(
      (f"  R{number}  {name(relation.subject)} -> {predicate} -> {name(relation.object)}{score}", relation.colour)
    )
  if not relations:
    lines.append(("  none", GREY))
  if not_drawn:
    lines.append((f"  ... and {not_drawn} more, not drawn", GREY))
  legend = text_panel(lines, height=bounds[0])
  return titled(side_by_side([np.asarray(picture), legend]), title)


def _matrix_panel(values: np.ndarray, scale: ColourScale, cell: int) -> np.ndarray:
  """An n x n matrix above its diagonal coloured on `scale`, the rest background, objects numbered 1..n
  along the top and the left (where the cells are wide enough)."""
  n = values.shape[0]
  margin = text_width(str(n)) + 6
  colours = scale.colours(values)
  colours[~np.triu(np.ones((n, n), bool), k=1)] = UNUSED_CELL
  grid = colours.repeat(cell, axis=0).repeat(cell, axis=1)
  grid[::cell, :] = grid[:, ::cell] = 100  # cell borders
  panel = Image.new("RGB", (margin + n * cell + 1, margin + n * cell + 1), BACKGROUND)
  panel.paste(Image.fromarray(grid), (margin, margin))
  draw = ImageDraw.Draw(panel)
  step = max(1, -(-(text_width(str(n)) + 4) // cell))
  for i in range(0, n, step):
    label = str(i + 1)
    centre = margin + i * cell + cell / 2
    draw.text((centre - text_width(label) / 2, 2), label, fill=object_colour(i), font=font())
    draw.text((2, centre - LINE_HEIGHT / 2 + 2), label, fill=object_colour(i), font=font())
  return np.asarray(panel)


def relation_matrix_picture(adjacency: np.ndarray, weights: np.ndarray, num_objects: int, name: str) -> np.ndarray:
  """Fig. 2 for one image, uint8: the ground-truth relations (1 where two objects are related in either
  direction) and the relational embedding matrix `name` folded the same way (w_ij + w_ji), each as an upper
  triangle over the real objects, numbered as in the scene-graph picture, with their colour bars (the
  embedding's on this image's range [0, max])."""
  n = max(int(num_objects), 1)
  cell = max(MIN_CELL, -(-MIN_PANEL_SIDE // n))
  related = (triangular_fold(np.asarray(adjacency, np.float64)[:n, :n]) > 0).astype(np.float64)
  folded = triangular_fold(np.asarray(weights, np.float64)[:n, :n])
  top = float(folded.max()) if n > 1 else 0.0
  embedding_scale = ColourScale(0.0, max(top, 1e-6), f"{name}: w_ij + w_ji (this image's range)")
  panels = []
  for values, scale, caption in (
    (related, RELATED_SCALE, "ground truth: related pairs"),
    (folded, embedding_scale, f"relational embedding {name}"),
  ):
    panel = captioned(_matrix_panel(values, scale, cell), [(caption, WHITE)])
    panels.append(stack([panel, colour_bar(max(panel.shape[1], MIN_PANEL_SIDE), scale)]))
  return titled(
    side_by_side(panels, gap=12), "LinkNet Fig. 2: object pairs (row i, column j > i), objects numbered as in the graph"
  )
