"""What the head-statistics benchmarks share: a config with overrides, and a run's initial and trained states."""

from __future__ import annotations

from jaxgraphs.configs import common as config_loader
from jaxgraphs.data import pipeline
from jaxgraphs.data.image_statistics import network_images
from jaxgraphs.training.checkpointing import Checkpoints
from jaxgraphs.training.trainer import Experiment


def load_config(path: str, arg: str, overrides: list[str]):
  """get_config(arg) of a config file, with key.path=value overrides (values take the current value's type)."""
  config = config_loader.load_config(path, arg)
  for override in overrides:
    key, value = override.split("=", 1)
    *parents, leaf = key.split(".")
    node = config
    for part in parents:
      node = node[part]
    kind = type(node[leaf])
    # bool("0") is True: booleans are read from their spelling.
    if kind is type(None):  # an unset key (e.g. data.data_dir): the value as written
      node[leaf] = value
    else:
      node[leaf] = value.lower() in ("1", "true") if kind is bool else kind(value)
  return config


def initial_and_trained_states(config, workdir: str | None, num_images: int):
  """(experiment, the first `num_images` evaluation images as the network takes them, [(name, state)]): the
  initialisation, then the latest checkpoint of `workdir` when given."""
  experiment = Experiment(config)
  batches, _ = pipeline.build_eval_dataset(config.data, local_batch_size=num_images)
  batch = next(iter(batches))
  states = [("init", experiment.build_state(batch))]
  if workdir:
    checkpoints = Checkpoints(workdir, max_to_keep=1, async_save=False)
    trained, _ = checkpoints.restore(experiment.abstract_state)
    checkpoints.close()
    states.append((f"step {int(trained.step)}", trained))
  return experiment, network_images(batch["image"]), states  # the pipeline may leave normalisation to the device
