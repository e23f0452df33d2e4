"""Finding a finished run's pieces on disk: which checkpoint a path names, and the config it was trained with.

Shared by the command-line tools (predict, fused_eval); it defines no flags, so any entry point can import it.
"""

from __future__ import annotations

import json
import os

CHECKPOINT_SUBDIRS = ("checkpoints", "checkpoints_best")


def resolve_checkpoint(path: str) -> tuple[str, str, int | None]:
  """(workdir, subdir, step or None for the latest) of a workdir, a checkpoints folder or a step folder."""
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(os.path.join(path, "checkpoints")):
    return path, "checkpoints", None
  name, parent = os.path.basename(path), os.path.dirname(path)
  if name in CHECKPOINT_SUBDIRS and os.path.isdir(path):
    return parent, name, None
  if name.isdigit() and os.path.basename(parent) in CHECKPOINT_SUBDIRS and os.path.isdir(path):
    return os.path.dirname(parent), os.path.basename(parent), int(name)
  raise FileNotFoundError(
    f"--checkpoint={path}: no checkpoint there (give a workdir, its checkpoints/ or "
    "checkpoints_best/ folder, or a step folder in them)"
  )


def config_from_workdir(workdir: str):
  """The config the trainer saved as <workdir>/config.json."""
  import ml_collections

  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} does not exist; pass --config=configs/<the training config>.py")
  with open(path) as f:
    saved = json.load(f)
  # Runs saved before the model config carried them: RGNet's kind and LinkNet's mode were only task keys.
  model, task = saved.get("model", {}), saved.get("task", {})
  for model_name, key in (("rgnet", "kind"), ("linknet", "mode")):
    if model.get("name") == model_name and key not in model and key in task:
      model[key] = task[key]
  return ml_collections.ConfigDict(saved)
