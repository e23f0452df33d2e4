r"""LinkNet's Table 3 on diagnostic_objects: predicates that a distant marker's colour decides (PredCls, minutes).

diagnostic_objects/small (160 x 160, 4,000 train / 1,000 validation images, generated on first use): a red or
blue ring (the marker) along one side, three shapes along the opposite side at least 80 px away, and every
ordered pair of the three labelled with its geometric predicate combined with the marker's colour ('left of
(red)', ..., 'below (blue)'). No RoI or union-box feature of the pair reaches the marker and the pair's
classes and layout say nothing about it (jaxgraphs/data/builders/diagnostics.py), so without the relational
embedding and the global context a model can get the geometric half right and must guess the colour half:
R@50 at most about 50. The network is configs/linknet_shapes.py's (toy VGG, 8 x 8 ... 10 x 10 conv5_3 here),
PredCls, Adam with lr 1e-3 and cosine decay, 600 steps of 16.

  python -m jaxgraphs.main --config=configs/linknet_diagnostic.py --workdir=/tmp/jaxgraphs/linknet_diagnostic
  python -m jaxgraphs.main --config=configs/linknet_diagnostic.py:rem=0,gcem=0 --workdir=/tmp/jaxgraphs/ld_base

Variants as configs/linknet_shapes.py (rem=, glem=, gcem=, norm=, sim=, ...; the mode stays predcls); seeds with
--config.seed=N; `,tiny`: the unit tests' size (diagnostic_objects/tiny at 64 px, tiny widths, batch 2).
"""

from jaxgraphs.configs import common, linknet
from jaxgraphs.training.defaults import base_config

TOY_BACKBONE = {"width": 8, "fc_width": 128, "stage_sizes": (1, 1, 1, 1, 1)}
TOY_WIDTHS = {"embed_dim": 32, "hidden_dim": 64, "geometry_dim": 32}
TINY_BACKBONE = {"width": 4, "fc_width": 32, "stage_sizes": (1, 1, 1, 1, 1)}
TINY_WIDTHS = {"embed_dim": 8, "hidden_dim": 16, "geometry_dim": 8}


def get_config(arg=None):
  """diagnostic_objects configuration; `arg` picks the Table 3 ablations (module docstring), ',tiny' test widths."""
  arg, words = common.pop_words(arg, "tiny")
  config = base_config()
  linknet.configure(config, arg)
  if config.task.mode != "predcls":
    raise common.ConfigError(f"config argument {arg!r}: diagnostic_objects is a PredCls diagnostic")
  config.model.backbone_kwargs = dict(TINY_BACKBONE if "tiny" in words else TOY_BACKBONE)
  config.model.update(TINY_WIDTHS if "tiny" in words else TOY_WIDTHS)
  config.model.geometry_bn_momentum = 0.9  # as configs/linknet_shapes.py: a short run
  config.data.source = "diagnostic_objects/small"
  config.seed = 0
  config.batch_size = 16
  config.total_steps = 600
  config.log_every_steps = 50
  config.eval_every_steps = 300
  config.checkpoint.every_steps = 300
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "cosine"
  config.optimizer.schedule.warmup_steps = 50
  if "tiny" in words:
    common.tiny_run(config, "diagnostic_objects/tiny", batch_size=2)
  return config
