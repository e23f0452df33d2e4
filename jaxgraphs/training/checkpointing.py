"""Orbax checkpoints of the whole train state plus the input position, the last N and the best one.

Orbax writes each step into a temporary directory and renames it only once every file is on disk, so a
run killed in the middle of a save leaves the previous step as the latest complete checkpoint.
Restoring goes through an abstract target that carries the current shardings, so a checkpoint written on
one device count restores on another.
"""

from __future__ import annotations

import os
from typing import Any

import flax.serialization
import jax
import orbax.checkpoint as ocp

from jaxgraphs.training.train_state import TrainState


class Checkpoints:
  """Saves and restores (train state, metadata) pairs under `<workdir>/<subdir>`."""

  def __init__(self, workdir: str, *, max_to_keep: int, subdir: str = "checkpoints", async_save: bool = True):
    self.directory = os.path.abspath(os.path.join(workdir, subdir))
    options = ocp.CheckpointManagerOptions(
      max_to_keep=max_to_keep, create=True, cleanup_tmp_directories=True, enable_async_checkpointing=async_save
    )
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    """The newest complete checkpoint's step, or None."""
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    """Steps of every complete checkpoint kept."""
    return list(self._manager.all_steps())

  def save(self, state: TrainState, meta: dict[str, Any]) -> None:
    """Starts writing `state` (asynchronously by default) with JSON metadata at its step."""
    step = int(jax.device_get(state.step))
    self._manager.save(
      step,
      args=ocp.args.Composite(
        state=ocp.args.StandardSave(flax.serialization.to_state_dict(state)), meta=ocp.args.JsonSave(meta)
      ),
      force=True,
    )

  def restore(self, abstract_state: TrainState, step: int | None = None) -> tuple[TrainState, dict[str, Any]]:
    """Restores the state onto the shardings carried by `abstract_state`, with its metadata."""
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no complete checkpoint in {self.directory}")
    if step not in self.all_steps():
      raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory}; have {self.all_steps()}")
    target = flax.serialization.to_state_dict(abstract_state)
    restored = self._manager.restore(
      step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target), meta=ocp.args.JsonRestore())
    )
    state = flax.serialization.from_state_dict(abstract_state, restored["state"])
    return state, dict(restored["meta"])

  def restore_raw(self, step: int) -> dict[str, Any]:
    """The saved state of `step` as plain arrays, without a target (for initialising another model)."""
    restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    return dict(restored["state"])

  def wait(self) -> None:
    """Blocks until any asynchronous save has finished."""
    self._manager.wait_until_finished()

  def close(self) -> None:
    """Finishes pending saves and releases the manager."""
    self._manager.wait_until_finished()
    self._manager.close()
