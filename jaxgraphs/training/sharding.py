"""The device mesh, and the shardings of batches (split over 'data') and state (rules over param paths)."""

from __future__ import annotations

import re
from typing import Any, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P

from jaxgraphs.training.tree_paths import path_strings
from jaxgraphs.errors import ConfigError

DATA_AXIS = "data"


def make_mesh() -> jax.sharding.Mesh:
  """A 1-D mesh over every device of every process, named 'data'."""
  # Auto axes: shardings are hints and XLA propagates them, which keeps module code sharding-agnostic.
  return jax.make_mesh((jax.device_count(),), (DATA_AXIS,), axis_types=(AxisType.Auto,))


def batch_sharding(mesh) -> NamedSharding:
  """Leading (batch) axis split over the data axis, the rest replicated."""
  return NamedSharding(mesh, P(DATA_AXIS))


def replicated(mesh) -> NamedSharding:
  """Fully replicated over the mesh."""
  return NamedSharding(mesh, P())


def state_shardings(abstract_state: Any, mesh, rules: Sequence[tuple[str, tuple]] = ()) -> Any:
  """Shardings for every leaf: the first rule whose regex matches its path wins; replicated otherwise."""
  compiled = [(re.compile(pattern), P(*spec)) for pattern, spec in rules]

  def for_leaf(path, leaf):
    for pattern, spec in compiled:
      if pattern.search(path):
        return NamedSharding(mesh, spec)
    return replicated(mesh)

  return jax.tree.map(for_leaf, path_strings(abstract_state), abstract_state)


def global_batch(local_batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
  """Assembles this process's slice of the batch into global arrays sharded over 'data'."""
  sharding = batch_sharding(mesh)
  return {k: jax.make_array_from_process_local_data(sharding, np.asarray(v)) for k, v in local_batch.items()}


def check_batch_size(global_batch_size: int) -> int:
  """Returns the per-process batch size, or fails naming `config.batch_size`."""
  devices, processes = jax.device_count(), jax.process_count()
  if global_batch_size % devices:
    raise ConfigError(f"config.batch_size={global_batch_size} is not divisible by the {devices} devices")
  return global_batch_size // processes
