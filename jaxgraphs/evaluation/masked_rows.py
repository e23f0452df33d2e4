"""Host-side collection of the unpadded rows of evaluation batches, shared by the streaming evaluators."""

from __future__ import annotations

import numpy as np


class MaskedRowAccumulator:
  """Collects, batch by batch, the rows of named arrays whose mask is set, and concatenates them on demand."""

  def __init__(self, *names: str):
    if not names:
      raise ValueError("MaskedRowAccumulator needs at least one array name")
    self._names = names
    self._chunks: dict[str, list[np.ndarray]] = {name: [] for name in names}

  @property
  def num_rows(self) -> int:
    """Number of rows kept so far (padded rows excluded)."""
    return sum(len(chunk) for chunk in self._chunks[self._names[0]])

  def add(self, mask=None, **arrays) -> None:
    """Keeps the rows of every array where `mask` is nonzero; `mask=None` keeps all rows."""
    if set(arrays) != set(self._names):
      raise ValueError(f"expected arrays {sorted(self._names)}, got {sorted(arrays)}")
    # np.asarray also copies jax.Arrays to the host; multi-host arrays must be gathered by the caller.
    arrays = {name: np.asarray(value) for name, value in arrays.items()}
    num_rows = {name: value.shape[0] if value.ndim else None for name, value in arrays.items()}
    if len(set(num_rows.values())) != 1 or None in num_rows.values():
      raise ValueError(f"all arrays need the same leading (batch) dimension, got {num_rows}")
    batch_size = next(iter(num_rows.values()))
    if mask is None:
      keep = np.ones(batch_size, dtype=bool)
    else:
      mask = np.asarray(mask)
      if mask.shape != (batch_size,):
        raise ValueError(f"mask must have shape ({batch_size},) (one entry per row), got {mask.shape}")
      keep = mask != 0
    for name, value in arrays.items():
      self._chunks[name].append(value[keep])

  def concatenated(self) -> dict[str, np.ndarray]:
    """All kept rows of each array, in the order they were added."""
    if not self._chunks[self._names[0]]:
      raise ValueError("no batch was added: call update(...) before result()")
    return {name: np.concatenate(chunks, axis=0) for name, chunks in self._chunks.items()}

  def reset(self) -> None:
    """Forgets every row added so far."""
    self._chunks = {name: [] for name in self._names}
