r"""Multi-label baseline (ResNet + global pooling + linear) on the built-in shapes dataset: the quickstart.

A tiny ResNet-18-shaped network (base width 16) at 64x64 trains to a high mAP in a few minutes on 2 CPU
cores; nothing is downloaded, the dataset is generated on first use. `:tiny` is the unit tests' size
(builtin_shapes/tiny at 32 px, base width 4, batch 8).

  python -m jaxgraphs.main --config=configs/baseline_shapes.py --workdir=/tmp/jaxgraphs/baseline_shapes
"""

from jaxgraphs.configs import common
from jaxgraphs.training.defaults import base_config


def get_config(arg=None):
  """Quickstart configuration; 'tiny' for the unit tests' size."""
  arg, words = common.pop_words(arg, "tiny")
  common.parse_arg(arg, words={}, keys={}, usage="get_config(arg): nothing, or 'tiny'")
  config = base_config()
  config.data.source = "builtin_shapes/small"
  config.batch_size = 32
  config.total_steps = 600
  config.log_every_steps = 50
  config.eval_every_steps = 300
  config.model.backbone = "resnet18"
  config.model.backbone_kwargs = {"width": 16}
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.schedule.name = "cosine"
  config.optimizer.schedule.warmup_steps = 50
  config.checkpoint.every_steps = 200
  config.checkpoint.best_metric = "mAP"
  if "tiny" in words:
    common.tiny_run(config, "builtin_shapes/tiny", batch_size=8)
    config.model.backbone_kwargs.width = 4
  return config
