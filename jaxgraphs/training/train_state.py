"""The whole training state as one pytree: step, parameters, batch statistics, optimiser state, RNG."""

from typing import Any

import flax.struct
import jax


class TrainState(flax.struct.PyTreeNode):
  """Everything a resumed run needs besides the input position (kept in the checkpoint's metadata)."""

  step: jax.Array
  params: Any
  model_state: Any  # non-trainable collections, e.g. {'batch_stats': ...}
  opt_state: Any
  rng: jax.Array  # a raw uint32 key, so it checkpoints as a plain array
