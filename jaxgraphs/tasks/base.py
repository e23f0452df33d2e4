"""The task contract: what a batch holds, the loss, and how evaluation turns outputs into metrics.

The trainer knows nothing about aesthetics, labels or scene graphs. A task tells it which batch entries
feed the Flax module, how to turn the module's output dict into a scalar loss, which per-example arrays
to bring back to the host at evaluation, and how a host-side evaluator reduces them to metrics. Keeping
this apart from the module (as Scenic does) lets one module serve several tasks and one loop serve all.
"""

from __future__ import annotations

import abc
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Batch = Mapping[str, jax.Array]
Outputs = Mapping[str, jax.Array]


def masked_mean(values: jax.Array, mask: jax.Array) -> jax.Array:
  """Mean of `values` where `mask` is non-zero (0 when it is zero everywhere): losses over padded entries."""
  mask = mask.astype(jnp.float32)
  return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


class Evaluator(abc.ABC):
  """Host-side accumulator of evaluation outputs; padded rows are dropped by their mask."""

  @abc.abstractmethod
  def update(self, outputs: Mapping[str, np.ndarray]) -> None:
    """Adds one gathered global batch (numpy arrays that include a 'mask' entry)."""

  @abc.abstractmethod
  def result(self) -> dict[str, Any]:
    """Returns the metrics: floats for scalars, lists for per-class values."""


class Task(abc.ABC):
  """Loss, evaluation outputs and metrics of one problem, separate from any network."""

  # The eval metric that the best checkpoint follows by default, and whether higher ('max') or lower is better.
  default_metric: str = "loss"
  default_metric_mode: str = "max"
  # The entries of the module's output dict that the task reads; the trainer checks them at start-up.
  required_outputs: tuple[str, ...] = ()

  @abc.abstractmethod
  def model_inputs(self, batch: Batch) -> dict[str, jax.Array]:
    """Returns the keyword arguments of the module's `__call__` taken from the batch."""

  @abc.abstractmethod
  def loss(self, outputs: Outputs, batch: Batch) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Returns the scalar training loss and scalar metrics to log with it."""

  @abc.abstractmethod
  def eval_outputs(self, outputs: Outputs, batch: Batch) -> dict[str, jax.Array]:
    """Returns the per-example arrays the evaluator needs (must include batch['mask'])."""

  @abc.abstractmethod
  def make_evaluator(self) -> Evaluator:
    """Returns a fresh evaluator for one pass over an evaluation split."""

  def summary_images(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Returns uint8 images (N, H, W, 3) worth showing in TensorBoard for a host train batch."""
    return {}

  def eval_images(self, outputs: Mapping[str, np.ndarray], batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Returns uint8 pictures (N, H, W, 3) made from the module's raw outputs on the first eval batch.

    This is where attention maps, region similarities and drawn scene graphs go; the default is none.
    """
    return {}

  # ---- jaxgraphs.predict hooks ---------------------------------------------------------------------------
  def predict_json(self, outputs: Mapping[str, np.ndarray], index: int, frame=None) -> dict[str, Any]:
    """JSON-able prediction for example `index` of the module's host outputs (used by `python -m jaxgraphs.predict`);
    `frame` (an input_frame.InputFrame) places the network input on the photo, for outputs in pixels."""
    raise NotImplementedError(
      f"{type(self).__name__} has no predict_json: `python -m jaxgraphs.predict` cannot describe its predictions"
    )

  def predict_pictures(
    self, outputs: Mapping[str, np.ndarray], image: np.ndarray, index: int, frame=None
  ) -> dict[str, np.ndarray]:
    """uint8 (H, W, 3) pictures by name for example `index` drawn over `image`: the photo, with `frame` (an
    input_frame.InputFrame) placing the network input on it, or without a frame the network input; the
    default is none."""
    return {}
