"""'/'-joined names of pytree leaves, the strings that freezing, decay and sharding regexes match."""

from typing import Any

import jax


def _key_name(key) -> str:
  for attr in ("key", "name", "idx"):
    if hasattr(key, attr):
      return str(getattr(key, attr))
  return str(key)


def path_string(path) -> str:
  """Joins a jax key path into 'a/b/c'."""
  return "/".join(_key_name(k) for k in path)


def path_strings(tree: Any) -> Any:
  """Returns a pytree of the same structure whose leaves are their '/'-joined paths."""
  return jax.tree_util.tree_map_with_path(lambda p, _: path_string(p), tree)
