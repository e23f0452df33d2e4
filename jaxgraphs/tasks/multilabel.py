"""Multi-label recognition (SSGRL and its ResNet baseline): sigmoid cross-entropy and mAP / CF1 / OF1.

Models with class-specific attention (SSGRL's semantic decoupling, output 'attention' (B, C, h, w)) also get
pictures: per image the attention maps of its three most probable classes over the image (the paper's Fig. 4),
in TensorBoard at each evaluation and from `python -m jaxgraphs.predict --out_dir=...`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgraphs.evaluation.multilabel_metrics import MultiLabelEvaluator
from jaxgraphs.tasks import base
from jaxgraphs.tasks.display import images_for_display

THRESHOLD = 0.5  # a class is predicted at probability >= 0.5 (the CF1/OF1 convention)
MAX_PICTURES = 4  # eval images with attention pictures per evaluation
TOP_CLASSES = 3  # attention maps shown per image (Fig. 4)
MIN_PANEL_SIDE = 160  # small inputs are enlarged so that captions fit


def weighted_sigmoid_cross_entropy(logits: jax.Array, labels: jax.Array, weights: jax.Array) -> jax.Array:
  """Mean binary cross-entropy over the entries whose weight is non-zero."""
  per_entry = optax.sigmoid_binary_cross_entropy(logits.astype(jnp.float32), labels)
  # Ignored entries (e.g. VOC classes present only as "difficult") neither help nor hurt.
  return jnp.sum(per_entry * weights) / jnp.maximum(jnp.sum(weights), 1.0)


class _Evaluator(base.Evaluator):
  """Adapts the streaming multi-label metrics to the trainer's dict of gathered outputs."""

  def __init__(self):
    self._metrics = MultiLabelEvaluator()

  def update(self, outputs: Mapping[str, np.ndarray]) -> None:
    self._metrics.update(outputs["probs"], outputs["labels"], outputs["label_weights"], outputs["mask"])

  def result(self) -> dict[str, Any]:
    return self._metrics.result()


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
    }

  def make_evaluator(self):
    return _Evaluator()

  def summary_images(self, batch):
    return {"train/images": images_for_display(batch["image"][:4])}

  def eval_images(self, outputs, batch):
    if "attention" not in outputs:
      return {}
    keep = np.flatnonzero(np.asarray(batch["mask"]) > 0)[:MAX_PICTURES]
    if keep.size == 0:
      return {}
    probs = _sigmoid(outputs["logits"][keep])
    return {
      "eval/attention_top3": attention_pictures(
        batch["image"][keep],
        probs,
        np.asarray(outputs["attention"])[keep],
        self._names(probs.shape[-1]),
        np.asarray(batch["labels"])[keep],
      )
    }

  # ---- jaxgraphs.predict hooks ---------------------------------------------------------------------------
  def predict_json(self, outputs: Mapping[str, np.ndarray], index: int) -> dict[str, Any]:
    """The classes with probability >= 0.5 and the five most probable ones, as {'label', 'probability'} lists."""
    probs = _sigmoid(np.asarray(outputs["logits"])[index])
    names = self._names(probs.size)
    order = np.argsort(-probs, kind="stable")
    entry = lambda c: {"label": names[c], "probability": round(float(probs[c]), 4)}
    return {"labels": [entry(c) for c in order if probs[c] >= THRESHOLD], "top5": [entry(c) for c in order[:5]]}

  def predict_pictures(self, outputs: Mapping[str, np.ndarray], image: np.ndarray, index: int) -> dict[str, np.ndarray]:
    """The attention maps of the three most probable classes over `image` (none without attention)."""
    if "attention" not in outputs:
      return {}
    probs = _sigmoid(np.asarray(outputs["logits"])[index : index + 1])
    attention = np.asarray(outputs["attention"])[index : index + 1]
    return {
      "attention_top3": attention_pictures(np.asarray(image)[None], probs, attention, self._names(probs.shape[-1]))[0]
    }

  def _names(self, num_classes: int) -> tuple[str, ...]:
    if len(self.class_names) == num_classes:
      return self.class_names
    return tuple(str(c) for c in range(num_classes))


def _sigmoid(logits) -> np.ndarray:
  return 1.0 / (1.0 + np.exp(-np.asarray(logits, np.float64)))


# ---- pictures (host side, NumPy) -----------------------------------------------------------------------------
def attention_pictures(
  images: np.ndarray,
  probs: np.ndarray,
  attention: np.ndarray,
  class_names: Sequence[str],
  labels: np.ndarray | None = None,
  top: int = TOP_CLASSES,
) -> np.ndarray:
  """Fig. 4 strips, uint8 (N, H', (1 + top) W', 3): the image, then each top class's attention map over it with
  its name and probability underneath (green when the class is a true label, red when not, white unknown)."""
  from jaxgraphs.tasks.aesthetics import blend, heat_colours, min_max, upsample

  images = np.asarray(images)
  display = images if images.dtype == np.uint8 else images_for_display(images)
  scale = max(1, -(-MIN_PANEL_SIDE // min(display.shape[1:3])))
  strips = []
  for i, image in enumerate(display):
    image = image.repeat(scale, axis=0).repeat(scale, axis=1)
    panels = [_captioned(image, "", (255, 255, 255))]
    for c in np.argsort(-probs[i], kind="stable")[:top]:
      heat = heat_colours(min_max(upsample(attention[i, c], image.shape[:2])))
      colour = (255, 255, 255) if labels is None else ((80, 220, 80) if labels[i, c] > 0 else (240, 80, 80))
      panels.append(_captioned(blend(image, heat, 0.5), f"{class_names[c]} {probs[i, c]:.2f}", colour))
    strips.append(np.concatenate(panels, axis=1))
  return np.stack(strips)


def _captioned(panel: np.ndarray, text: str, colour) -> np.ndarray:
  """`panel` with a black band below carrying `text`, cut to the panel's width."""
  from PIL import Image, ImageDraw, ImageFont

  font = ImageFont.load_default()
  band = Image.new("RGB", (panel.shape[1], 16))
  ImageDraw.Draw(band).text((2, 1), text, fill=colour, font=font)
  return np.concatenate([panel, np.asarray(band)], axis=0)
