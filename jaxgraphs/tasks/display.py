"""Pictures a person can read, shared by the tasks: network inputs back to uint8, a display size (small inputs
enlarged, large photos shrunk), one colour map on fixed ranges with its colour bar, titles, legends and number
tags in PIL's default font, and panels laid side by side or stacked."""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

MIN_PANEL_SIDE = 256  # a panel's shorter side is enlarged to at least this (nearest neighbour, whole factors)
MAX_PANEL_SIDE = 1024  # a larger photo is shrunk so that its longer side is this
FONT_SIZE = 12
LINE_HEIGHT = 16
MARGIN = 4
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (150, 150, 150)
BACKGROUND = (24, 24, 24)
GREEN = (60, 210, 80)
RED = (235, 60, 60)
YELLOW = (250, 210, 40)
# Distinct colours for numbered objects (boxes and their legend lines).
PALETTE = (
  (255, 140, 30),
  (60, 160, 255),
  (240, 90, 200),
  (80, 230, 200),
  (255, 240, 90),
  (170, 120, 255),
  (255, 110, 110),
  (150, 230, 80),
)
Colour = tuple[int, int, int]


def images_for_display(images: np.ndarray) -> np.ndarray:
  """Rescales each normalised float image to uint8 by its own min and max, whatever the normalisation; uint8
  images (a batch whose normalisation happens on the device) are shown as they are."""
  if np.asarray(images).dtype == np.uint8:
    return np.asarray(images)
  images = np.asarray(images, np.float32)
  low = images.min(axis=(1, 2, 3), keepdims=True)
  high = images.max(axis=(1, 2, 3), keepdims=True)
  return np.round(255 * (images - low) / np.maximum(high - low, 1e-6)).astype(np.uint8)


def as_uint8_image(image: np.ndarray) -> np.ndarray:
  """`image` itself if uint8, else the network input rescaled for display (images_for_display)."""
  image = np.asarray(image)
  return image if image.dtype == np.uint8 else images_for_display(image[None])[0]


@functools.lru_cache(maxsize=1)
def font() -> ImageFont.ImageFont:
  """PIL's default font, at FONT_SIZE where Pillow can scale it (its bitmap font otherwise)."""
  try:
    return ImageFont.load_default(size=FONT_SIZE)
  except (TypeError, ValueError, OSError, ImportError):
    return ImageFont.load_default()


def text_width(text: str) -> int:
  """Width in pixels of `text` in `font()`."""
  left, _, right, _ = font().getbbox(text)
  return int(np.ceil(right - left))


def display_scale(hw: tuple[int, int]) -> float:
  """The factor that brings an image of (height, width) to display size: a whole number >= 1 that makes the
  shorter side at least MIN_PANEL_SIDE, or < 1 when the longer side exceeds MAX_PANEL_SIDE."""
  short, long_ = min(hw), max(hw)
  if long_ > MAX_PANEL_SIDE:
    return MAX_PANEL_SIDE / long_
  return float(max(1, -(-MIN_PANEL_SIDE // short)))


def resize_for_display(image: np.ndarray) -> tuple[np.ndarray, tuple[float, float]]:
  """(image at display size, its (y, x) scale): small images enlarged by repetition so that every input pixel
  stays a visible block, large photos shrunk with antialiasing."""
  image = np.asarray(image, np.uint8)
  height, width = image.shape[:2]
  scale = display_scale((height, width))
  if scale >= 1:
    factor = int(scale)
    return image.repeat(factor, axis=0).repeat(factor, axis=1), (float(factor), float(factor))
  size = (max(1, round(width * scale)), max(1, round(height * scale)))
  shrunk = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
  return shrunk, (size[1] / height, size[0] / width)


def hot_colours(values: np.ndarray) -> np.ndarray:
  """A black-red-yellow-white ('hot') colour map of values in [0, 1]: uint8 (..., 3)."""
  values = np.clip(np.asarray(values, np.float64), 0.0, 1.0)[..., None]
  red = np.clip(3 * values, 0, 1)
  green = np.clip(3 * values - 1, 0, 1)
  blue = np.clip(3 * values - 2, 0, 1)
  return np.round(255 * np.concatenate([red, green, blue], axis=-1)).astype(np.uint8)


class ColourScale:
  """A fixed range [low, high] (linear, or log10 when `log`) mapped onto `hot_colours`; `title` names the
  quantity on its colour bar. The same value gets the same colour in every picture of the scale."""

  def __init__(self, low: float, high: float, title: str, log: bool = False):
    if not high > low or (log and low <= 0):
      raise ValueError(f"a colour scale needs low < high (and low > 0 on a log scale), got {low}, {high}")
    self.low, self.high, self.title, self.log = float(low), float(high), title, log

  def position(self, values: np.ndarray) -> np.ndarray:
    """Where values fall on the scale, clipped to [0, 1]."""
    values = np.asarray(values, np.float64)
    if self.log:
      values = np.log10(np.maximum(values, self.low * 1e-3))
      low, high = np.log10(self.low), np.log10(self.high)
    else:
      low, high = self.low, self.high
    return np.clip((values - low) / (high - low), 0.0, 1.0)

  def colours(self, values: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) colours of `values`."""
    return hot_colours(self.position(values))

  def tick_values(self) -> list[float]:
    """Values labelled under the bar: both ends and the middle (every decade on a log scale)."""
    if self.log:
      decades = range(int(np.ceil(np.log10(self.low) - 1e-9)), int(np.floor(np.log10(self.high) + 1e-9)) + 1)
      return [10.0**d for d in decades]
    return [self.low, (self.low + self.high) / 2, self.high]


def format_number(value: float) -> str:
  """A short label: up to 3 significant digits, no trailing zeros."""
  return f"{value:.3g}"


def colour_bar(width: int, scale: ColourScale) -> np.ndarray:
  """uint8 band (height 3 * LINE_HEIGHT, `width`) with the scale's title, a gradient and its tick labels."""
  band = Image.new("RGB", (width, 3 * LINE_HEIGHT), BACKGROUND)
  draw = ImageDraw.Draw(band)
  draw.text((MARGIN, 1), scale.title + (" (log scale)" if scale.log else ""), fill=WHITE, font=font())
  inner = max(width - 2 * MARGIN, 2)
  ramp = np.linspace(0.0, 1.0, inner)
  gradient = np.repeat(hot_colours(ramp)[None], LINE_HEIGHT - 4, axis=0)
  band.paste(Image.fromarray(gradient), (MARGIN, LINE_HEIGHT))
  draw.rectangle([MARGIN - 1, LINE_HEIGHT - 1, MARGIN + inner, 2 * LINE_HEIGHT - 4], outline=GREY)
  for value in scale.tick_values():
    x = MARGIN + float(scale.position(value)) * (inner - 1)
    label = format_number(value)
    left = min(max(x - text_width(label) / 2, 0), width - text_width(label) - 1)
    draw.line([(x, 2 * LINE_HEIGHT - 4), (x, 2 * LINE_HEIGHT - 1)], fill=WHITE)
    draw.text((left, 2 * LINE_HEIGHT), label, fill=WHITE, font=font())
  return np.asarray(band)


def text_panel(lines: Sequence[tuple[str, Colour]], width: int | None = None, height: int | None = None) -> np.ndarray:
  """uint8 panel of text lines (text, colour), one per LINE_HEIGHT; as wide as the longest line unless
  `width` is given (longer lines are cut with '...')."""
  needed = max((text_width(text) for text, _ in lines), default=0) + 2 * MARGIN
  width = needed if width is None else width
  height = max(height or 0, len(lines) * LINE_HEIGHT + 2 * MARGIN)
  panel = Image.new("RGB", (width, height), BACKGROUND)
  draw = ImageDraw.Draw(panel)
  for row, (text, colour) in enumerate(lines):
    draw.text((MARGIN, MARGIN + row * LINE_HEIGHT), fit_text(text, width - 2 * MARGIN), fill=colour, font=font())
  return np.asarray(panel)


def fit_text(text: str, width: int) -> str:
  """`text`, cut and ended with '...' where it is wider than `width` pixels."""
  if text_width(text) <= width:
    return text
  while text and text_width(text + "...") > width:
    text = text[:-1]
  return text + "..."


def wrap_text(text: str, width: int) -> list[str]:
  """`text` broken at spaces into lines at most `width` pixels wide (a longer word is cut)."""
  lines, current = [], ""
  for word in text.split(" "):
    candidate = f"{current} {word}" if current else word
    if text_width(candidate) <= width or not current:
      current = candidate
    else:
      lines.append(current)
      current = word
  return [fit_text(line, width) for line in lines + [current]]


def titled(panel: np.ndarray, title: str, colour: Colour = WHITE) -> np.ndarray:
  """`panel` under a band carrying `title`, wrapped to the panel's width."""
  lines = wrap_text(title, panel.shape[1] - 2 * MARGIN)
  return stack([text_panel([(line, colour) for line in lines], width=panel.shape[1]), panel])


def captioned(panel: np.ndarray, lines: Sequence[tuple[str, Colour]]) -> np.ndarray:
  """`panel` above a band of text lines cut to its width."""
  return stack([panel, text_panel(lines, width=panel.shape[1])])


def pad_to(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """`image` padded with the background colour at the bottom and right to (height, width)."""
  out = np.empty((height, width, 3), np.uint8)
  out[...] = BACKGROUND
  out[: image.shape[0], : image.shape[1]] = image
  return out


def side_by_side(panels: Sequence[np.ndarray], gap: int = MARGIN) -> np.ndarray:
  """Panels left to right, top-aligned, `gap` pixels apart."""
  height = max(p.shape[0] for p in panels)
  parts = []
  for index, panel in enumerate(panels):
    if index:
      parts.append(pad_to(np.zeros((0, 0, 3), np.uint8), height, gap))
    parts.append(pad_to(panel, height, panel.shape[1]))
  return np.concatenate(parts, axis=1)


def stack(panels: Sequence[np.ndarray]) -> np.ndarray:
  """Panels top to bottom, left-aligned."""
  width = max(p.shape[1] for p in panels)
  return np.concatenate([pad_to(p, p.shape[0], width) for p in panels], axis=0)


def same_size(pictures: Sequence[np.ndarray]) -> np.ndarray:
  """(N, H, W, 3): the pictures padded to the largest height and width (TensorBoard takes one size a tag)."""
  height, width = max(p.shape[0] for p in pictures), max(p.shape[1] for p in pictures)
  return np.stack([pad_to(p, height, width) for p in pictures])


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float = 0.6, where: np.ndarray | None = None) -> np.ndarray:
  """uint8 alpha blend of an overlay over an image; with `where`, only there (and the rest darkened, as what
  the overlay does not cover)."""
  mixed = (1 - alpha) * image.astype(np.float32) + alpha * overlay.astype(np.float32)
  if where is not None:
    mixed = np.where(where[..., None], mixed, 0.4 * image.astype(np.float32))
  return np.round(mixed).astype(np.uint8)


def draw_tag(draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, colour: Colour) -> tuple[float, ...]:
  """A filled label box with `text` in black at top-left `xy`; returns its (x1, y1, x2, y2)."""
  box = (xy[0], xy[1], xy[0] + text_width(text) + 4, xy[1] + LINE_HEIGHT - 2)
  draw.rectangle(box, fill=colour)
  draw.text((xy[0] + 2, xy[1] + 1), text, fill=BLACK, font=font())
  return box


def overlaps(box: Sequence[float], others: Sequence[Sequence[float]]) -> bool:
  """Whether rectangle `box` (x1, y1, x2, y2) intersects any of `others`."""
  return any(box[0] < o[2] and o[0] < box[2] and box[1] < o[3] and o[1] < box[3] for o in others)


def free_spot(
  candidates: Sequence[tuple[float, float]], size: tuple[float, float], taken: Sequence, bounds: tuple[int, int]
) -> tuple[float, float]:
  """The first top-left corner among `candidates` where a (width, height) label stays inside (height, width)
  `bounds` and clear of the `taken` rectangles; the first candidate (moved inside) when none is."""

  def inside(xy):
    return (min(max(xy[0], 0), bounds[1] - size[0]), min(max(xy[1], 0), bounds[0] - size[1]))

  for xy in candidates:
    xy = inside(xy)
    if not overlaps((xy[0], xy[1], xy[0] + size[0], xy[1] + size[1]), taken):
      return xy
  return inside(candidates[0])
