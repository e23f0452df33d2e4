"""Every config key the trainer reads, with its default; configs/*.py start from `base_config()`."""

import ml_collections
from ml_collections import config_dict

from jaxgraphs.data import pipeline
from jaxgraphs.training.optimizers import default_optimizer_config


def base_config() -> ml_collections.ConfigDict:
  """The full set of trainer keys, so an override of a key that does not exist fails naming it."""
  config = ml_collections.ConfigDict()
  config.seed = 0
  config.batch_size = 32  # global, over all devices and processes
  config.total_steps = 1000
  config.log_every_steps = 50
  config.eval_every_steps = 500  # 0: only at the end
  config.profile_steps = ()  # e.g. (10, 15): trace steps 10-15 into <workdir>/profile

  config.data = pipeline.default_data_config()
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
