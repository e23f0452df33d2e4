"""A run's files: reading and writing in a workdir, which checkpoint a path names, the config a run used.

Every read and write in a workdir goes through `etils.epath`, the path API Orbax and TFDS use, so a workdir may be
local or remote (`gs://bucket/run` on a TPU pod): the trainer's config.json and eval JSON land next to the
checkpoints and TensorBoard files, not in a local folder named `gs:`. JSON is written to a temporary name and
renamed, which is atomic on local and POSIX file systems; on object stores a reader sees the old or the new file.
Shared by the trainer and the command-line tools (predict, fused_eval); it defines no flags.
"""

from __future__ import annotations

import json
import os
from typing import Any

from etils import epath

CHECKPOINT_SUBDIRS = ("checkpoints", "checkpoints_best")


def is_remote(path: str) -> bool:
  """True for a URL-style path such as gs://bucket/run."""
  return "://" in str(path)


def absolute(path: str) -> str:
  """`path` with `~` expanded and made absolute; remote paths unchanged."""
  return str(path) if is_remote(path) else os.path.abspath(os.path.expanduser(str(path)))


def join(*parts: str) -> str:
  """Joins path parts, remote or local."""
  return str(epath.Path(parts[0]).joinpath(*parts[1:]))


def exists(path: str) -> bool:
  """Whether a file or directory exists at `path`."""
  return epath.Path(path).exists()


def is_dir(path: str) -> bool:
  """Whether `path` is a directory."""
  return epath.Path(path).is_dir()


def make_dirs(path: str) -> None:
  """Creates `path` and its parents if missing."""
  epath.Path(path).mkdir(parents=True, exist_ok=True)


def list_dir(path: str) -> list[str]:
  """Names of the entries of directory `path` (empty if it does not exist)."""
  directory = epath.Path(path)
  return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else []


def write_json(path: str, payload: Any) -> None:
  """Writes `payload` as indented JSON: to a temporary name first, then renamed over `path`."""
  target = epath.Path(path)
  tmp = target.parent / (target.name + ".tmp")
  tmp.write_text(json.dumps(payload, indent=2, default=float))
  tmp.replace(target)


def read_json(path: str) -> Any:
  """The JSON value stored at `path`."""
  return json.loads(epath.Path(path).read_text())


def complete_steps(directory: str) -> list[int]:
  """The steps of the complete checkpoints in a checkpoints folder (empty if there is none)."""
  # Orbax renames a step's folder to its number once the step is complete.
  return sorted(int(name) for name in list_dir(directory) if name.isdigit())


def checkpoint_directory(workdir: str, checkpoint: str) -> str:
  """The folder `--checkpoint` ('latest', 'best' or a step) reads from, after checking, without creating
  anything, that it holds that checkpoint; a ConfigError naming the flag otherwise."""
  from jaxgraphs.errors import ConfigError

  checkpoint = str(checkpoint)
  if checkpoint not in ("latest", "best") and not checkpoint.isdigit():
    raise ConfigError(f"--checkpoint={checkpoint}: expected 'latest', 'best' or a step number")
  directory = join(absolute(workdir), "checkpoints_best" if checkpoint == "best" else "checkpoints")
  if not is_dir(directory):
    raise ConfigError(f"--checkpoint={checkpoint}: {directory} does not exist (no run has saved there)")
  steps = complete_steps(directory)
  if not steps:
    raise ConfigError(f"--checkpoint={checkpoint}: {directory} holds no complete checkpoint")
  if checkpoint.isdigit() and int(checkpoint) not in steps:
    raise ConfigError(f"--checkpoint={checkpoint}: no such step in {directory}; it has {steps}")
  return directory


def resolve_checkpoint(path: str) -> tuple[str, str, int | None]:
  """(workdir, subdir, step or None for the latest) of a workdir, a checkpoints folder or a step folder."""
  path = absolute(path).rstrip("/")
  if is_dir(join(path, "checkpoints")):
    return path, "checkpoints", None
  name, parent = path.rsplit("/", 1)[1], path.rsplit("/", 1)[0]
  if name in CHECKPOINT_SUBDIRS and is_dir(path):
    return parent, name, None
  if name.isdigit() and parent.rsplit("/", 1)[-1] in CHECKPOINT_SUBDIRS and is_dir(path):
    return parent.rsplit("/", 1)[0], parent.rsplit("/", 1)[1], int(name)
  raise FileNotFoundError(
    f"--checkpoint={path}: no checkpoint there (give a workdir, its checkpoints/ or "
    "checkpoints_best/ folder, or a step folder in them)"
  )


def config_from_workdir(workdir: str):
  """The config the trainer saved as <workdir>/config.json."""
  import ml_collections

  path = join(workdir, "config.json")
  if not exists(path):
    raise FileNotFoundError(f"{path} does not exist; pass --config=configs/<the training config>.py")
  saved = read_json(path)
  # Runs saved before the model config carried them: RGNet's kind and LinkNet's mode were only task keys.
  model, task = saved.get("model", {}), saved.get("task", {})
  for model_name, key in (("rgnet", "kind"), ("linknet", "mode")):
    if model.get("name") == model_name and key not in model and key in task:
      model[key] = task[key]
  # Runs saved before config.data had these keys decoded op by op and normalised on the host: read theirs the same way.
  data = saved.setdefault("data", {})
  data.setdefault("fuse_decode", False)
  data.setdefault("normalize_on_device", False)
  data.setdefault("decode_chunk_size", -1)  # only the speed depends on it
  return ml_collections.ConfigDict(saved)
