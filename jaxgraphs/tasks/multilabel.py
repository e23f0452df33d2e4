"""Multi-label recognition (SSGRL and its ResNet baseline): sigmoid cross-entropy and mAP / CF1 / OF1.

Models with class-specific attention (SSGRL's semantic decoupling, output 'attention' (B, C, h, w)) also get
pictures: per image the attention maps of its three most probable classes over the image (the paper's Fig. 4),
in TensorBoard at each evaluation (over the network input, enlarged to at least 256 px) and from
`python -m jaxgraphs.predict --out_dir=...` (over the photo). Each map is coloured on one fixed log scale
(ATTENTION_SCALE, drawn as a colour bar under the maps), captioned with its class and probability, and in
TensorBoard marked as a true label or not.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgraphs.evaluation.masked_rows import MaskedRowAccumulator
from jaxgraphs.evaluation.multilabel_metrics import MultiLabelEvaluator, hidden_label_metrics
from jaxgraphs.tasks import base
from jaxgraphs.tasks.display import (
  GREEN,
  RED,
  WHITE,
  ColourScale,
  as_uint8_image,
  blend,
  captioned,
  colour_bar,
  images_for_display,
  resize_for_display,
  same_size,
  side_by_side,
  stack,
  titled,
)
from jaxgraphs.tasks.input_frame import InputFrame

THRESHOLD = 0.5  # a class is predicted at probability >= 0.5 (the CF1/OF1 convention)
MAX_PICTURES = 4  # eval images with attention pictures per evaluation
TOP_CLASSES = 3  # attention maps shown per image (Fig. 4)
# The attention weights of a class sum to 1 over the grid: one fixed log scale from 1/1000 to 1 shows a map
# spread over a 32 x 32 grid and one peaked on a single cell alike, the same weight in the same colour.
ATTENTION_SCALE = ColourScale(1e-3, 1.0, "attention weight of a cell", log=True)


def weighted_sigmoid_cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
  """Mean binary cross-entropy over the entries whose weight is non-zero."""
  per_entry = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), labels)
  # Ignored entries (e.g. VOC classes present only as "difficult") neither help nor hurt.
  return jnp.sum(per_entry * weights) / jnp.maximum(jnp.sum(weights), 1.0)


class _Evaluator(base.Evaluator):
  """Adapts the streaming multi-label metrics to the trainer's dict of gathered outputs."""

  def __init__(self, class_names: Sequence[str] = ()):
    self._metrics = MultiLabelEvaluator()
    self._class_names = tuple(class_names)
    # Datasets that mark labels without a visible object (diagnostic_labels) also get mAP on those apart.
    self._hidden = MaskedRowAccumulator("probs", "labels", "hidden", "weights")

  def update(self, outputs: Mapping[str, np.ndarray]) -> None:
    self._metrics.update(outputs["probs"], outputs["labels"], outputs["label_weights"], outputs["mask"])
    if "hidden" in outputs:
      self._hidden.add(
        mask=outputs["mask"],
        probs=outputs["probs"],
        labels=outputs["labels"],
        hidden=outputs["hidden"],
        weights=outputs["label_weights"],
      )

  def result(self) -> dict[str, Any]:
    metrics = self._metrics.result()
    # Keyed by class name in the eval JSON (NaN: no positive example in the split).
    aps = metrics["per_class_AP"]
    names = self._class_names if len(self._class_names) == len(aps) else [str(c) for c in range(len(aps))]
    metrics["per_class_AP"] = dict(zip(names, aps))
    if self._hidden.num_rows:
      metrics.update(hidden_label_metrics(**self._hidden.concatenated()))
    return metrics


class MultiLabelTask(base.Task):
  """Images in, one independent sigmoid per class out."""

  required_outputs = ("logits",)

  default_metric = "mAP"

  def __init__(self, class_names: Sequence[str] = ()):
    self.class_names = tuple(class_names)  # for captions and predictions; class i is called str(i) without them

  def model_inputs(self, batch):
    return {"images": batch["image"]}

  def loss(self, outputs, batch):
    weights = batch.get("label_weights", jnp.ones_like(batch["labels"]))
    loss = weighted_sigmoid_cross_entropy(outputs["logits"], batch["labels"], weights)
    return loss, {}

  def eval_outputs(self, outputs, batch):
    return {
      "probs": jax.nn.sigmoid(outputs["logits"].astype(jnp.float32)),
      "labels": batch["labels"],
      "label_weights": batch.get("label_weights", jnp.ones_like(batch["labels"])),
      "mask": batch["mask"],
      **({"hidden": batch["hidden"]} if "hidden" in batch else {}),
    }

  def make_evaluator(self):
    return _Evaluator(self.class_names)

  def summary_images(self, batch):
    return {"train/images": images_for_display(batch["image"][:4])}

  def eval_images(self, outputs, batch):
    if "attention" not in outputs:
      return {}
    keep = np.flatnonzero(np.asarray(batch["mask"]) > 0)[:MAX_PICTURES]
    if keep.size == 0:
      return {}
    probs = _sigmoid(np.asarray(outputs["logits"])[keep])
    names = self._names(probs.shape[-1])
    pictures = []
    for row, index in enumerate(keep):
      image = as_uint8_image(batch["image"][index])
      pictures.append(
        attention_picture(
          image,
          InputFrame.identity(image.shape[:2]),
          probs[row],
          np.asarray(outputs["attention"])[index],
          names,
          np.asarray(batch["labels"])[index],
        )
      )
    return {"eval/attention_top3": same_size(pictures)}

  # ---- jaxgraphs.predict hooks ---------------------------------------------------------------------------
  def predict_json(self, outputs: Mapping[str, np.ndarray], index: int, frame=None) -> dict[str, Any]:
    """The classes with probability >= 0.5 and the five most probable ones, as {'label', 'probability'} lists."""
    probs = _sigmoid(np.asarray(outputs["logits"])[index])
    names = self._names(probs.size)
    order = np.argsort(-probs, kind="stable")
    entry = lambda c: {"label": names[c], "probability": round(float(probs[c]), 4)}
    return {"labels": [entry(c) for c in order if probs[c] >= THRESHOLD], "top5": [entry(c) for c in order[:5]]}

  def predict_pictures(
    self, outputs: Mapping[str, np.ndarray], image: np.ndarray, index: int, frame: InputFrame | None = None
  ) -> dict[str, np.ndarray]:
    """The attention maps of the three most probable classes over `image` (the photo, with `frame` placing the
    network input on it; without, `image` is the network input); none without attention."""
    if "attention" not in outputs:
      return {}
    image = as_uint8_image(image)
    frame = frame or InputFrame.identity(image.shape[:2])
    probs = _sigmoid(np.asarray(outputs["logits"])[index])
    attention = np.asarray(outputs["attention"])[index]
    return {"attention_top3": attention_picture(image, frame, probs, attention, self._names(probs.shape[-1]))}

  def _names(self, num_classes: int) -> tuple[str, ...]:
    if len(self.class_names) == num_classes:
      return self.class_names
    return tuple(str(c) for c in range(num_classes))


def _sigmoid(logits) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


# ---- pictures (host side, NumPy) -----------------------------------------------------------------------------
def attention_picture(
  image: np.ndarray,
  frame: InputFrame,
  probs: np.ndarray,
  attention: np.ndarray,
  class_names: Sequence[str],
  labels: np.ndarray | None = None,
  top: int = TOP_CLASSES,
) -> np.ndarray:
  """Fig. 4 for one image, uint8 (H, W, 3): a title, the image, then the attention map of each of the `top`
  most probable classes over it, captioned with the class, its probability and (with `labels`) whether it is
  a true label (green) or not (red); under them the colour bar of ATTENTION_SCALE. `image` is the canvas
  (the photo, or the network input) and `frame` places the network input on it."""
  canvas, scale = resize_for_display(image)
  frame = frame.resized(scale)
  panels = [captioned(canvas, [("image", WHITE)])]
  for c in np.argsort(-probs, kind="stable")[:top]:
    values, inside = frame.grid_on_canvas(attention[c])
    overlay = blend(canvas, ATTENTION_SCALE.colours(values), 0.55, where=inside)
    if labels is None:
      caption, colour = f"{class_names[c]}  p={probs[c]:.2f}", WHITE
    else:
      truth = labels[c] > 0
      caption, colour = (
        f"{class_names[c]}  p={probs[c]:.2f}  ({'true' if truth else 'not a'} label)",
        (GREEN if truth else RED),
      )
    panels.append(captioned(overlay, [(caption, colour)]))
  strip = side_by_side(panels)
  title = f"Attention of the {top} most probable classes (semantic decoupling, Fig. 4)"
  if labels is not None:
    true_names = [class_names[c] for c in np.flatnonzero(np.asarray(labels) > 0)]
    title += f"; true labels: {', '.join(true_names) or 'none'}"
  parts = [strip, colour_bar(min(strip.shape[1], 3 * canvas.shape[1]), ATTENTION_SCALE)]
  return titled(stack(parts), title)
