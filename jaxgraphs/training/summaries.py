"""TensorBoard event files (process 0 only) and the console progress line."""

from __future__ import annotations

import datetime
import os
import time
from typing import Any, Mapping

import jax
import numpy as np


def format_metric(value: float) -> str:
  """A metric for a log line: counts as integers, rates with four decimals."""
  return str(value) if isinstance(value, int) else f"{value:.4f}"


class SummaryWriter:
  """Writes scalars, images and text to `<workdir>/tensorboard`; a no-op on every process but 0."""

  def __init__(self, workdir: str):
    self._writer = None
    if jax.process_index() == 0:
      import tensorflow as tf  # imported here: only process 0 writes, and tf stays on the host

      self._tf = tf
      self._writer = tf.summary.create_file_writer(os.path.join(workdir, "tensorboard"))

  def scalars(self, step: int, values: Mapping[str, Any]) -> None:
    """Writes each finite-or-not scalar under its name."""
    if self._writer is None:
      return
    with self._writer.as_default(step=step):
      for name, value in values.items():
        self._tf.summary.scalar(name, float(value))

  def images(self, step: int, images: Mapping[str, np.ndarray], max_outputs: int = 4) -> None:
    """Writes uint8 image batches (N, H, W, 3)."""
    if self._writer is None:
      return
    with self._writer.as_default(step=step):
      for name, batch in images.items():
        self._tf.summary.image(name, np.asarray(batch), max_outputs=max_outputs)

  def text(self, step: int, name: str, value: str) -> None:
    """Writes a markdown text summary (e.g. the config)."""
    if self._writer is None:
      return
    with self._writer.as_default(step=step):
      self._tf.summary.text(name, value)

  def hparams(self, config: Mapping[str, Any]) -> None:
    """Writes the run's settings (flattened config) to TensorBoard's HParams dashboard, to compare runs."""
    if self._writer is None:
      return
    from tensorboard.plugins.hparams import api as hp

    flat = {}

    def visit(prefix: str, node: Mapping[str, Any]) -> None:
      for key, value in node.items():
        if isinstance(value, Mapping):
          visit(f"{prefix}{key}.", value)
        elif isinstance(value, (bool, int, float, str)):
          flat[f"{prefix}{key}"] = value
        elif value is not None:
          flat[f"{prefix}{key}"] = str(value)  # tuples of regexes, pp lists: shown as text

    visit("", config)
    with self._writer.as_default(step=0):
      hp.hparams(flat)

  def flush(self) -> None:
    """Pushes buffered events to disk."""
    if self._writer is not None:
      self._writer.flush()


class Progress:
  """Measures steps/s over the last logging window and formats a progress line with an ETA."""

  def __init__(self, total_steps: int, start_step: int, global_batch_size: int):
    self.total_steps, self.global_batch_size = total_steps, global_batch_size
    self._last_step, self._last_time = start_step, time.perf_counter()

  def tick(self, step: int) -> dict[str, float]:
    """Returns steps/s and images/s since the previous tick."""
    now = time.perf_counter()
    rate = (step - self._last_step) / max(now - self._last_time, 1e-9)
    self._last_step, self._last_time = step, now
    return {"steps_per_sec": rate, "images_per_sec": rate * self.global_batch_size}

  def line(self, step: int, rates: Mapping[str, float], values: Mapping[str, float]) -> str:
    """'step 120/1000 (12%) | loss 0.43 | ... | 5.1 steps/s | ETA 0:02:53'."""
    rate = rates["steps_per_sec"]
    eta = str(datetime.timedelta(seconds=int((self.total_steps - step) / rate))) if rate > 0 else "unknown"
    parts = [f"step {step}/{self.total_steps} ({100 * step / max(self.total_steps, 1):.0f}%)"]
    parts += [f"{k} {v:.4g}" for k, v in values.items()]
    parts += [
      f"{rates['steps_per_sec']:.2f} steps/s",
      f"{rates['images_per_sec']:.1f} img/s",
      f"ETA {eta}",
    ]
    return " | ".join(parts)
