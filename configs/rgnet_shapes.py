r"""RGNet on the built-in dataset's composition labels: every Table 1 variant trains in minutes on a CPU.

builtin_shapes/small (96 x 96, 5,000 train / 1,000 validation images, generated on first use) labels each
image low/high by relations between its regions (balance, spacing, alignment), so composition is all
there is to learn. The network is RGNet's shape at toy widths, from scratch: a DenseNet (growth 12,
3 layers per block, 24 stem features; 70 channels) at output stride 8 -> 12 x 12 regions, a DenseASPP
with 32 / 16 channels (d' = 134) and dilation rates scaled from the paper's (3, 6, 12, 18) on a 37 x 37
map to (1, 2, 4, 6) on 12 x 12, three graph convolutions, LSE pooling r = 4. Inputs keep their 96 px and
only flip (a scaled crop can cut a shape at the border and change the label). Adam with poly(0.9) decay and
weight decay 1e-5 as in the paper, at lr 1e-3 (training from scratch); 1,000 steps of 32 (6.4 epochs).

  python -m jaxgraphs.main --config=configs/rgnet_shapes.py --workdir=/tmp/jaxgraphs/rgnet_shapes
  python -m jaxgraphs.main --config=configs/rgnet_shapes.py:fcn_g --workdir=/tmp/jaxgraphs/rgnet_shapes_fcn_g

Variants: `--config=configs/rgnet_shapes.py:ARG` with ARG as in jaxgraphs.configs.rgnet.VARIANT_ARG_HELP
(fc_cnn, fcn, fcn_a, fcn_g, fcn_c_c, fcn_a_g; backbone=vgg16|resnet101 at toy widths too; rates=, r=,
layers=, pool=, kind=regression|distribution on the composition score / rating histogram). Adding `,tiny`
gives the unit tests' size: builtin_shapes/tiny (48 px), widths a few channels wide, batch 8.

Batch norm before each weight layer (Sec. 3.3; phi, theta, each graph W, the classifier) is off by default and
switchable with --config.model.head.batch_norm_before_weights=True. On the composition data (configs/rgnet_shapes.py,
one seed, from scratch) it keeps the regions apart after the graph (mean cosine 0.47 instead of 0.95) but S stays
one-hot (row entropy / log N 0.05, largest weight 0.91), and FCN-A-G's validation accuracy after 150 steps drops
from 0.747 to 0.732 with the paper's unscaled S and from 0.843 to 0.780 with graph_scale = 1/sqrt(d') (FCN-A:
0.850; after 500 steps 0.788 with BN and unscaled S, 0.874 without BN and scaled); table in
(docs/paper_details.md, RGNet network).
"""

from jaxgraphs.configs import common, rgnet
from jaxgraphs.training.defaults import base_config

# Toy widths of each backbone family (the layout of the paper's networks, a fraction of their width).
TOY_BACKBONES = {
  "densenet": {"growth_rate": 12, "block_config": (3, 3, 3, 3), "num_init_features": 24},
  "resnet": {"width": 8, "stage_sizes": (1, 1, 1, 1)},
  "vgg": {"width": 8, "fc_width": 64, "stage_sizes": (1, 1, 1, 1, 1)},
}
TOY_HEAD = {"aspp_inter_features": 32, "aspp_out_features": 16, "aspp_rates": (1, 2, 4, 6)}
# ',tiny': the unit tests' widths, which compile in seconds.
TINY_BACKBONES = {
  "densenet": {"growth_rate": 4, "block_config": (1, 1, 1, 1), "num_init_features": 8},
  "resnet": {"width": 4, "stage_sizes": (1, 1, 1, 1)},
  "vgg": {"width": 4, "fc_width": 8, "stage_sizes": (1, 1, 1, 1, 1)},
}
TINY_HEAD = {"aspp_inter_features": 8, "aspp_out_features": 4, "aspp_rates": (1, 2)}


def get_config(arg=None):
  """builtin_shapes composition configuration; `arg` selects a variant (module docstring), ',tiny' test widths."""
  arg, words = common.pop_words(arg, "tiny")
  config = base_config()
  rgnet.configure(config, "binary")
  config.model.head.update(TINY_HEAD if "tiny" in words else TOY_HEAD)
  rgnet.apply_arg(config, arg)
  backbones = TINY_BACKBONES if "tiny" in words else TOY_BACKBONES
  config.model.backbone_kwargs = dict(backbones[rgnet.backbone_family(config.model.backbone)])
  config.data.source = "builtin_shapes/small:composition"
  config.seed = 0
  config.batch_size = 32
  config.total_steps = 1000
  config.log_every_steps = 50
  config.eval_every_steps = 500
  config.checkpoint.every_steps = 500
  # Sec. 3.3: Adam, lr 1e-3 decayed as (1 - t/T)^0.9 (per step here, per epoch in the paper), weight decay 1e-5 added
  # to the gradient of every parameter (biases and batch-norm scales too), as torch.optim.Adam(weight_decay=1e-5).
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-5
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.schedule.name = "poly"
  config.optimizer.schedule.power = 0.9
  config.optimizer.schedule.warmup_steps = 0
  if "tiny" in words:
    common.tiny_run(config, "builtin_shapes/tiny:composition", batch_size=8)
  return config
