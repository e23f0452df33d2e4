"""Multi-label recognition (SSGRL and its ResNet baseline): sigmoid cross-entropy and mAP / CF1 / OF1."""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgraphs.evaluation.multilabel_metrics import MultiLabelEvaluator
from jaxgraphs.tasks import base
from jaxgraphs.tasks.display import images_for_display


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

  default_metric = "mAP"

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
