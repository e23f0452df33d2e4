r"""RGNet's Table 1 on diagnostic_regions: two distant objects, high iff they share a colour (3 seeds in minutes).

diagnostic_regions/small (96 x 96, 4,000 train / 1,000 validation images, generated on first use) puts the two
objects at opposite ends of the image, at least 57 px apart, while each region of this network sees 55 px:
a DenseNet stem with one dense layer in each of two blocks (growth 12, 24 stem features) at output stride 8
(12 x 12 regions) and a DenseASPP with the single rate 1. The receptive-field computation and the argument that
region scores pooled by LSE (FCN, FCN-A) and a linear classifier on pooled features (FC-CNN) cannot beat chance
are in jaxgraphs/data/builders/diagnostics.py; the region graph (FCN-G, FCN-A-G) links the two objects.
Adam with poly(0.9) decay, lr 1e-3, weight decay 1e-5 (as configs/rgnet_shapes.py), 600 steps of 32.

  python -m jaxgraphs.main --config=configs/rgnet_diagnostic.py --workdir=/tmp/jaxgraphs/rgnet_diagnostic
  python -m jaxgraphs.main --config=configs/rgnet_diagnostic.py:fcn_a --workdir=/tmp/jaxgraphs/rgnet_diagnostic_fcn_a

Variants as configs/rgnet_shapes.py (jaxgraphs.configs.rgnet.VARIANT_ARG_HELP); seeds with --config.seed=N.
`,tiny`: the unit tests' size (diagnostic_regions/tiny at 48 px, widths of a few channels, batch 8).
"""

from jaxgraphs.configs import common, rgnet
from jaxgraphs.training.defaults import base_config

# The receptive field of a region is 55 px with these (diagnostics.py); more layers or rates widen it.
DIAGNOSTIC_BACKBONE = {"growth_rate": 12, "block_config": (1, 1), "num_init_features": 24}
DIAGNOSTIC_HEAD = {"aspp_inter_features": 32, "aspp_out_features": 16, "aspp_rates": (1,)}
TINY_BACKBONE = {"growth_rate": 4, "block_config": (1, 1), "num_init_features": 8}
TINY_HEAD = {"aspp_inter_features": 8, "aspp_out_features": 4, "aspp_rates": (1,)}


def get_config(arg=None):
  """diagnostic_regions configuration; `arg` selects a Table 1 variant (module docstring), ',tiny' test widths."""
  arg, words = common.pop_words(arg, "tiny")
  config = base_config()
  rgnet.configure(config, "binary")
  config.model.head.update(TINY_HEAD if "tiny" in words else DIAGNOSTIC_HEAD)
  rgnet.apply_arg(config, arg)
  config.model.backbone_kwargs = dict(TINY_BACKBONE if "tiny" in words else DIAGNOSTIC_BACKBONE)
  config.data.source = "diagnostic_regions/small"
  config.seed = 0
  config.batch_size = 32
  config.total_steps = 600
  config.log_every_steps = 50
  config.eval_every_steps = 300
  config.checkpoint.every_steps = 300
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-5
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.schedule.name = "poly"
  config.optimizer.schedule.power = 0.9
  config.optimizer.schedule.warmup_steps = 0
  if "tiny" in words:
    common.tiny_run(config, "diagnostic_regions/tiny", batch_size=8)
  return config
