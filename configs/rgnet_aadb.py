r"""RGNet on AADB (Liu et al., Sec. 4.1, Table 5): score regression with MSE, Spearman's rho.

As configs/rgnet_ava.py (DenseNet-121 at output stride 8, DenseASPP, three graph convolutions, LSE pooling
r = 4, 300 x 300 inputs with flip and 1.05-1.25 scale + crop, Adam 1e-4 with poly(0.9), weight decay 1e-5,
batch 32, 80 epochs) with one regression output per region ("replacing the cross entropy loss with mean
square error loss") on AADB's score in [0, 1]. Evaluated on the 500-image validation split while training
(best checkpoint by Spearman's rho); the paper reports the 1,000-image test split:

  python -m jaxgraphs.tools.prepare_dataset --dataset=aadb --manual_dir=~/AADB
  python -m jaxgraphs.tools.convert_torchvision --arch=densenet121 --src=densenet121-a639ec97.pth \
      --dst=~/weights/densenet121
  python -m jaxgraphs.main --config=configs/rgnet_aadb.py --workdir=~/runs/rgnet_aadb \
      --config.model.backbone_init=~/weights/densenet121
  python -m jaxgraphs.main --config=configs/rgnet_aadb.py --workdir=~/runs/rgnet_aadb --mode=eval \
      --checkpoint=best --eval_split=test

Variants: `--config=configs/rgnet_aadb.py:ARG` with ARG as for rgnet_ava.py (jaxgraphs.configs.rgnet.
VARIANT_ARG_HELP), e.g. `:fcn`, `:backbone=resnet101`, `:r=2,layers=1`; kind=binary trains on AADB's
score >= 0.5 label instead (AADB has no rating histogram, so kind=distribution is refused).

Batch norm before each weight layer (Sec. 3.3; phi, theta, each graph W, the classifier) is off by default and
switchable with --config.model.head.batch_norm_before_weights=True. On the composition data (configs/rgnet_shapes.py,
one seed, from scratch) it keeps the regions apart after the graph (mean cosine 0.47 instead of 0.95) but S stays
one-hot (row entropy / log N 0.05, largest weight 0.91), and FCN-A-G's validation accuracy after 150 steps drops
from 0.747 to 0.732 with the paper's unscaled S and from 0.843 to 0.780 with graph_scale = 1/sqrt(d') (FCN-A:
0.850; after 500 steps 0.788 with BN and unscaled S, 0.874 without BN and scaled); table in
(docs/paper_details.md, RGNet network).
"""

from jaxgraphs.configs import rgnet
from jaxgraphs.training.defaults import base_config

AADB_TRAIN_IMAGES = 8_458
EPOCHS = 80
BATCH_SIZE = 32
SIZE = 300
FC_CNN_SIZE = 224  # "FC-CNN is fine-tuned on the pretrained fully connected DenseNet-121": ImageNet's size


def get_config(arg=None):
  """AADB configuration; `arg` selects a variant (module docstring)."""
  config = base_config()
  rgnet.configure(config, "regression")  # DenseNet-121 at output stride 8 + the FCN-A-G head
  rgnet.apply_arg(config, arg)
  config.data.source = "aadb"
  # Sec. 3.3: resize to the input size, flip, scale by 1.05-1.25 and crop back; test: resize only.
  size = FC_CNN_SIZE if config.model.variant == "fc_cnn" else SIZE
  config.data.pp_train = f"decode|resize({size})|flip_lr|random_scale_crop(1.05, 1.25, {size})|normalize_imagenet"
  config.data.pp_eval = f"decode|resize({size})|normalize_imagenet"
  config.batch_size = BATCH_SIZE
  steps_per_epoch = AADB_TRAIN_IMAGES // BATCH_SIZE
  config.total_steps = EPOCHS * steps_per_epoch
  config.log_every_steps = 50
  config.eval_every_steps = steps_per_epoch
  config.checkpoint.every_steps = 1000
  # Sec. 3.3: Adam, lr 1e-4 decayed as (1 - t/T)^0.9 (per step here, per epoch in the paper), weight decay 1e-5 added
  # to the gradient of every parameter (biases and batch-norm scales too), as torch.optim.Adam(weight_decay=1e-5).
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-4
  config.optimizer.weight_decay = 1e-5
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.schedule.name = "poly"
  config.optimizer.schedule.power = 0.9
  config.optimizer.schedule.warmup_steps = 0
  return config
