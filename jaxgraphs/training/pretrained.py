"""Strict loading of converted pretrained weights into a freshly initialised variables tree.

Every entry is addressed by its '/'-joined path including the collection, e.g.
`params/backbone/layer4_2/conv3/kernel` or `batch_stats/backbone/bn1/mean`. A `dont_load` pattern is a
regular expression that must match a whole path (re.fullmatch): covered model entries keep their fresh
initialisation and covered checkpoint entries are ignored, e.g. dont_load=("params/backbone/fc/.*",).
"""

import os
import re
from typing import Any, Iterable, Mapping, Sequence

import jax
import numpy as np
from flax import traverse_util


def load_pretrained(variables, path: str, *, subtree: Sequence[str] = ("backbone",), dont_load: Iterable[str] = ()):
  """Returns `variables` with the Orbax checkpoint at `path` merged in at `subtree`, failing on any mismatch."""
  return merge_pretrained(variables, restore_tree(path), subtree=subtree, dont_load=dont_load, source=path)


def restore_tree(path: str) -> dict:
  """The {"params", "batch_stats"} tree that jaxgraphs.tools.convert_torchvision saved at `path`."""
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  path = os.path.abspath(path)
  if not os.path.isdir(path):
    raise FileNotFoundError(
      f"pretrained checkpoint {path} does not exist (make it with `python -m jaxgraphs.tools.convert_torchvision`)"
    )
  return ocp.StandardCheckpointer().restore(path)


def merge_pretrained(
  variables,
  checkpoint: Mapping[str, Any],
  *,
  subtree: Sequence[str] = ("backbone",),
  dont_load: Iterable[str] = (),
  source: str = "checkpoint",
):
  """Returns `variables` with `checkpoint`'s collections placed at `subtree`; strict unless `dont_load` covers."""
  subtree = tuple(subtree.split("/") if isinstance(subtree, str) else subtree)
  patterns = [re.compile(pattern) for pattern in dont_load]
  model_flat = traverse_util.flatten_dict(_to_dict(variables), sep="/")
  prefix = lambda collection: "/".join((collection,) + subtree)
  # Empty collections (batch_stats of a network without batch norm) carry nothing to match.
  checkpoint = {collection: tree for collection, tree in _to_dict(checkpoint).items() if tree}
  checkpoint_flat = {
    f"{prefix(collection)}/{key}": value
    for collection, tree in checkpoint.items()
    for key, value in traverse_util.flatten_dict(tree, sep="/").items()
  }
  for collection in checkpoint:
    if subtree and not any(key.startswith(prefix(collection) + "/") for key in model_flat):
      raise ValueError(
        f"the model has no {prefix(collection)!r} to load {source} into; its submodules "
        f"are {sorted(_to_dict(variables).get(collection, {}))}"
      )
  in_scope = {
    key: value
    for key, value in model_flat.items()
    if any(key.startswith(prefix(collection) + "/") for collection in checkpoint)
  }
  raise_on_mismatch(in_scope, checkpoint_flat, patterns, source)

  merged = dict(model_flat)
  for key, value in checkpoint_flat.items():
    if key in model_flat and not _covered(key, patterns):
      merged[key] = _like(value, model_flat[key])
  return traverse_util.unflatten_dict(merged, sep="/")


def check_matches(expected, checkpoint: Mapping[str, Any], *, source: str = "checkpoint") -> None:
  """Raises naming every path where `checkpoint` and the (possibly abstract) `expected` tree differ."""
  expected_flat = traverse_util.flatten_dict(_to_dict(expected), sep="/")
  raise_on_mismatch(expected_flat, traverse_util.flatten_dict(_to_dict(checkpoint), sep="/"), [], source)


def raise_on_mismatch(model_flat, checkpoint_flat, patterns, source) -> None:
  """One ValueError listing every missing, extra and mis-shaped path not covered by `patterns`."""
  problems = []
  for key in sorted(model_flat.keys() - checkpoint_flat.keys()):
    if not _covered(key, patterns):
      problems.append(f"missing in {source}: {key} (model shape {tuple(np.shape(model_flat[key]))})")
  for key in sorted(checkpoint_flat.keys() - model_flat.keys()):
    if not _covered(key, patterns):
      problems.append(f"not in the model: {key} ({source} shape {tuple(np.shape(checkpoint_flat[key]))})")
  for key in sorted(model_flat.keys() & checkpoint_flat.keys()):
    model_shape, loaded_shape = tuple(np.shape(model_flat[key])), tuple(np.shape(checkpoint_flat[key]))
    if model_shape != loaded_shape and not _covered(key, patterns):
      problems.append(f"shape mismatch at {key}: model {model_shape}, {source} {loaded_shape}")
  if problems:
    raise ValueError(
      f"pretrained weights {source} do not match the model (add a dont_load pattern to skip "
      "an entry):\n  " + "\n  ".join(problems)
    )


def _covered(key, patterns) -> bool:
  return any(pattern.fullmatch(key) for pattern in patterns)


def _like(value, reference):
  """`value` with the dtype (and, for a jax.Array, the sharding) of the freshly initialised `reference`."""
  value = np.asarray(value, dtype=reference.dtype)
  if isinstance(reference, jax.Array):
    return jax.device_put(value, reference.sharding)
  return value


def _to_dict(tree):
  """Plain nested dicts (flax FrozenDicts and other mappings converted)."""
  if isinstance(tree, Mapping):
    return {key: _to_dict(value) for key, value in tree.items()}
  return tree
