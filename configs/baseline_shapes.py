r"""Multi-label baseline (ResNet + global pooling + linear) on the built-in shapes dataset: the quickstart.

A tiny ResNet-18-shaped network (base width 16) at 64x64 trains to a high mAP in a few minutes on 2 CPU
cores; nothing is downloaded, the dataset is generated on first use.

  python -m jaxgraphs.main --config=configs/baseline_shapes.py --workdir=/tmp/jaxgraphs/baseline_shapes
"""

from jaxgraphs.training.defaults import base_config


def get_config():
  """Quickstart configuration."""
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
  return config
