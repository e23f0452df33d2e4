"""The one parser of config arguments (`--config=configs/x.py:ARG`) and the one loader of a config file."""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable, Mapping, Sequence

import ml_collections

from jaxgraphs.errors import ConfigError

Converter = Callable[[str], Any]


def choice(*options: str) -> Converter:
  """A converter that accepts one of `options`."""

  def convert(text: str) -> str:
    if text not in options:
      raise ValueError(f"expected one of {', '.join(options)}")
    return text

  return convert


def integer(minimum: int = 1) -> Converter:
  """A converter to an int of at least `minimum`."""

  def convert(text: str) -> int:
    value = int(text)
    if value < minimum:
      raise ValueError(f"expected an integer >= {minimum}")
    return value

  return convert


def switch(text: str) -> bool:
  """'1' -> True, '0' -> False."""
  if text not in ("0", "1"):
    raise ValueError("expected 0 or 1")
  return text == "1"


def dashed_ints(text: str) -> tuple[int, ...]:
  """'3-6-12' -> (3, 6, 12)."""
  return tuple(int(part) for part in text.split("-"))


def parse_arg(
  arg: str | None, *, words: Mapping[str, Sequence[str]], keys: Mapping[str, Converter], usage: str
) -> dict[str, Any]:
  """Parses a comma-separated config argument of bare words and key=value tokens.

  `words` maps a group name to its bare words (e.g. {'variant': ('fcn', 'fcn_a')}): a bare word sets its
  group to itself. `keys` maps each key to a converter that raises ValueError on bad text. Anything else is
  a `ConfigError` naming the token, followed by `usage`.
  """
  parsed: dict[str, Any] = {}
  for token in (t.strip() for t in (arg or "").split(",")):
    if not token:
      continue
    if "=" not in token:
      group = next((name for name, options in words.items() if token in options), None)
      if group is None:
        raise ConfigError(f"config argument {arg!r}: unknown {' or '.join(words)} {token!r}\n{usage}")
      if group in parsed:
        raise ConfigError(f"config argument {arg!r}: {parsed[group]!r} and {token!r} are both a {group}\n{usage}")
      parsed[group] = token
      continue
    key, value = (part.strip() for part in token.split("=", 1))
    if key not in keys:
      raise ConfigError(f"config argument {arg!r}: bad token {token!r} (unknown key {key!r})\n{usage}")
    try:
      parsed[key] = keys[key](value)
    except ValueError as error:
      raise ConfigError(f"config argument {arg!r}: bad token {token!r} ({error})\n{usage}") from None
  return parsed


def pop_words(arg: str | None, *words: str) -> tuple[str, set[str]]:
  """Splits bare words such as 'tiny' off a config argument: (the rest of the argument, the words found)."""
  tokens = [token.strip() for token in (arg or "").split(",") if token.strip()]
  return ",".join(t for t in tokens if t not in words), {t for t in tokens if t in words}


def tiny_run(config: ml_collections.ConfigDict, source: str, batch_size: int) -> None:
  """The `:tiny` form of a built-in-data config, what unit tests run: the tiny built-in data (32-64 px, 256
  train images), a small batch, a log line every step, evaluation only at the end, no warm-up."""
  config.data.source = source
  config.batch_size = batch_size
  config.log_every_steps = 1
  config.eval_every_steps = 0
  config.optimizer.schedule.warmup_steps = 0
  config.allow_random_frozen_backbone = True  # unit tests train without ImageNet weights


def shipped_configs_dir() -> str:
  """The directory of the configs that come with the package (configs/ in a checkout)."""
  spec = importlib.util.find_spec("jaxgraphs.shipped_configs")
  if spec is not None and spec.submodule_search_locations:
    return list(spec.submodule_search_locations)[0]
  return os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "configs")


def shipped_config_names() -> list[str]:
  """Names of the shipped configs ('ssgrl_coco', ...)."""
  directory = shipped_configs_dir()
  files = os.listdir(directory) if os.path.isdir(directory) else []
  return sorted(f[:-3] for f in files if f.endswith(".py") and not f.startswith("_"))


def resolve_config_path(given: str) -> str:
  """A config file path, or a shipped config's name ('ssgrl_coco', 'ssgrl_coco.py:arg') turned into its path."""
  path, arg = given.rsplit(":", 1) if ":" in os.path.basename(given) else (given, None)
  if not os.path.isfile(os.path.expanduser(path)):
    name = os.path.basename(path)
    name = name[:-3] if name.endswith(".py") else name
    if name not in shipped_config_names():
      raise ConfigError(
        f"--config={given}: no such config file, and no shipped config named {name!r} "
        f"(shipped: {', '.join(shipped_config_names())})"
      )
    path = os.path.join(shipped_configs_dir(), name + ".py")
  path = os.path.expanduser(path)
  return path if arg is None else f"{path}:{arg}"


def load_config(path: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """Runs `get_config` of a config file ('configs/x.py' or 'configs/x.py:ARG', or a shipped config's name)."""
  path = resolve_config_path(path)
  if arg is None and ":" in os.path.basename(path):
    path, arg = path.rsplit(":", 1)
  name = "jaxgraphs_config_" + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config() if arg is None else module.get_config(arg)


def config_differences(base: ml_collections.ConfigDict, final: ml_collections.ConfigDict) -> list[str]:
  """'key: file value -> value' for every leaf that differs between a config file's output and the run's config."""
  flat_base, flat_final = _flatten(base.to_dict()), _flatten(final.to_dict())
  return [
    f"{key}: {flat_base.get(key)!r} -> {value!r}" for key, value in flat_final.items() if flat_base.get(key) != value
  ]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  flat = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      flat.update(_flatten(value, f"{prefix}{key}."))
    else:
      flat[f"{prefix}{key}"] = value
  return flat
