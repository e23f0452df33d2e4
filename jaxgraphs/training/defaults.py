"""Every config key the trainer reads, with its default; configs/*.py start from `base_config()`."""

import ml_collections
from ml_collections import config_dict

from jaxgraphs.data.data_config import default_data_config
from jaxgraphs.errors import ConfigError


def base_config() -> ml_collections.ConfigDict:
  """The full set of trainer keys, so an override of a key that does not exist fails naming it."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.batch_size = 32  # global, over all devices and processes
  config.total_steps = 1000
  config.log_every_steps = 50
  config.eval_every_steps = 500  # 0: only at the end
  config.profile_steps = ()  # e.g. (10, 15): trace steps 10-15 into <workdir>/profile
  # Training with config.optimizer.freeze but no backbone_init / init_from keeps random weights frozen: refused
  # unless this is True (the `:tiny` test configs set it; nobody wants it by accident).
  config.allow_random_frozen_backbone = False

  config.data = default_data_config()
  for key, value in config.data.items():
    if value is None:
      # A typed placeholder keeps "None = the source's default" and still takes `--config.data.x=...`.
      config.data[key] = config_dict.placeholder(str)
  config.task = ml_collections.ConfigDict({"name": "multilabel"})
  config.model = ml_collections.ConfigDict(
    {
      "name": "multilabel_classifier",
      "backbone": "resnet101",
      "backbone_kwargs": {},  # e.g. {'width': 8} for a tiny test network, {'frozen_bn': True}
      "feature_key": "layer4",
      "dtype": "float32",  # compute dtype; parameters stay float32
      "backbone_init": "",  # directory written by `python -m jaxgraphs.tools.convert_torchvision`
      "dont_load": (),  # regexes of parameter paths not taken from backbone_init
    }
  )
  config.optimizer = default_optimizer_config()
  config.checkpoint = ml_collections.ConfigDict(
    {
      "every_steps": 500,
      "keep": 3,  # the last N checkpoints
      "async_save": True,
      # Also keep the best checkpoint by an eval metric: 'task' = the task's own (mAP, accuracy, R@50, ...;
      # its direction too), a metric name (e.g. 'OF1', with best_mode), or '' for none.
      "best_metric": "task",
      "best_mode": "max",
    }
  )
  # Start from another run's weights (not its optimiser state or step), e.g. COCO pre-training for VOC.
  config.init_from = ml_collections.ConfigDict(
    {
      "workdir": "",
      "subdir": "checkpoints",  # or 'checkpoints_best'
      "step": -1,  # -1: the latest
      "dont_load": (),  # regexes over 'params/...' paths left freshly initialised (e.g. a new classifier)
    }
  )
  # (regex over parameter paths, PartitionSpec tuple) pairs; unmatched leaves are replicated.
  config.sharding = ml_collections.ConfigDict({"rules": ()})
  return config


def default_optimizer_config() -> ml_collections.ConfigDict:
  """The documented defaults of `config.optimizer`."""
  return ml_collections.ConfigDict(
    {
      "name": "adam",  # adam | adamw | sgd
      "learning_rate": 1e-4,
      "b1": 0.9,
      "b2": 0.999,
      "eps": 1e-8,
      "momentum": 0.9,  # sgd only
      "nesterov": False,  # sgd only
      # adam/sgd: L2 added to the gradient as torch's `weight_decay`; adamw: decoupled decay.
      "weight_decay": 0.0,
      # Parameters whose '/'-joined path matches one of these regexes get no weight decay.
      "weight_decay_exclude": (r"(^|/)bias$", r"(^|/)scale$"),
      # Parameters whose path matches one of these regexes are frozen (no update, no optimiser state).
      "freeze": (),
      "grad_clip_norm": 0.0,  # 0 disables clipping by global norm
      "schedule": {
        "name": "constant",  # constant | step | poly | cosine
        "warmup_steps": 0,  # linear warmup from 0, before any schedule
        "boundaries": (),  # step: the steps at which the rate is multiplied by decay_factor
        "decay_factor": 0.1,
        "power": 0.9,  # poly: lr * (1 - t / T) ** power
        "end_factor": 0.0,  # cosine/poly: final rate as a fraction of the peak
      },
      "plateau": {
        "enabled": False,  # multiply the rate by `factor` when the train loss stops improving
        "factor": 0.1,
        "patience": 10,  # in units of `accumulation_size` steps
        "cooldown": 0,
        "rtol": 1e-4,
        "accumulation_size": 100,
      },
    }
  )


# (key, smallest allowed value): checked before anything is built or written.
_MINIMUMS = (
  ("batch_size", 1),
  ("total_steps", 1),
  ("log_every_steps", 1),
  ("eval_every_steps", 0),
  ("checkpoint.every_steps", 1),
  ("checkpoint.keep", 1),
)


def check_config(config: ml_collections.ConfigDict, *, training: bool = True) -> None:
  """Fails with a ConfigError naming the key when a count in `config` is out of range, or when training would
  keep a random backbone frozen."""
  for key, minimum in _MINIMUMS:
    node = config
    for part in key.split("."):
      node = node.get(part) if hasattr(node, "get") else None
    if node is None:
      continue
    if not isinstance(node, int) or isinstance(node, bool) or node < minimum:
      raise ConfigError(f"config.{key}={node!r}: must be an integer >= {minimum}")
  if config.checkpoint.get("best_mode") not in ("max", "min"):
    raise ConfigError(f"config.checkpoint.best_mode={config.checkpoint.best_mode!r}: must be 'max' or 'min'")
  if training:
    _check_detector_run(config)
    _check_frozen_backbone(config)


def _check_detector_run(config: ml_collections.ConfigDict) -> None:
  """A `config.model.detector_run` must be a Faster R-CNN workdir with a checkpoint: fail before building anything."""
  from jaxgraphs.training import run_dirs

  run = config.model.get("detector_run")
  if not run:
    return
  if not any(run_dirs.complete_steps(run_dirs.join(run, sub)) for sub in ("checkpoints_best", "checkpoints")):
    raise ConfigError(
      f"config.model.detector_run={run!r}: no detector checkpoint there (expected {run}/checkpoints/<step>); train "
      "one first, e.g. `python -m jaxgraphs.main --config=configs/faster_rcnn_shapes.py --workdir=RUN`"
    )


def _check_frozen_backbone(config: ml_collections.ConfigDict) -> None:
  """Refuses frozen layers that nothing initialises (the paper configs freeze ImageNet-initialised layers)."""
  frozen = tuple(config.optimizer.get("freeze", ()))
  loads_weights = (
    config.model.get("backbone_init") or config.init_from.get("workdir") or config.model.get("detector_run")
  )
  if frozen and not loads_weights and not config.get("allow_random_frozen_backbone", False):
    backbone = config.model.get("backbone", "ARCH")
    raise ConfigError(
      f"config.model.backbone_init is empty but config.optimizer.freeze={frozen} keeps those layers fixed: they "
      f"would train nothing from random weights. Convert ImageNet weights with `python -m "
      f"jaxgraphs.tools.convert_torchvision --arch={backbone} --src=FILE.pth --dst=DIR` and pass "
      "--config.model.backbone_init=DIR (or --config.init_from.workdir=RUN), or set "
      "--config.allow_random_frozen_backbone=True to do it on purpose"
    )
