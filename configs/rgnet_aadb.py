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

Variants: `--config=configs/rgnet_aadb.py:ARG` with ARG as for rgnet_ava.py (jaxgraphs.models.rgnet.
VARIANT_ARG_HELP), e.g. `:fcn`, `:backbone=resnet101`, `:r=2,layers=1`; kind=binary trains on AADB's
score >= 0.5 label instead (AADB has no rating histogram, so kind=distribution is refused).
"""

from jaxgraphs.models import rgnet
from jaxgraphs.training.defaults import base_config

AADB_TRAIN_IMAGES = 8_458
EPOCHS = 80
BATCH_SIZE = 32
FC_CNN_SIZE = 224


def get_config(arg=None):
  """AADB configuration; `arg` selects a variant (module docstring)."""
  config = base_config()
  config.task = rgnet.aesthetics_task_config("regression")
  rgnet.configure_model(config)
  rgnet.apply_variant_arg(config, arg)
  config.data.source = "aadb"
  if config.model.variant == rgnet.FC_CNN:
    config.data.pp_train, config.data.pp_eval = rgnet.paper_preprocessing(FC_CNN_SIZE)
  config.batch_size = BATCH_SIZE
  steps_per_epoch = AADB_TRAIN_IMAGES // BATCH_SIZE
  config.total_steps = EPOCHS * steps_per_epoch
  config.log_every_steps = 50
  config.eval_every_steps = steps_per_epoch
  config.checkpoint.every_steps = 1000
  config.checkpoint.best_metric, config.checkpoint.best_mode = rgnet.BEST_CHECKPOINT_METRIC[config.task.kind]
  rgnet.paper_optimizer(config)
  return config
