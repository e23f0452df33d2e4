r"""Multi-label baseline on PASCAL VOC 2007 (the "ResNet-101" row of SSGRL's Table 2): trainval -> test.

Classes whose instances in an image are all "difficult" are ignored in the loss and in AP (the standard
protocol); `--config.data.voc_difficult=negative` counts them as negatives as the SSGRL code does.
The last checkpoint is reported; nothing is selected on the test split.

  python -m jaxgraphs.main --config=configs/baseline_voc2007.py --workdir=~/runs/baseline_voc2007 \
      --config.model.backbone_init=~/weights/resnet101
"""

from jaxgraphs.training.defaults import base_config

SSGRL_TRAIN_PP = (
  "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|flip_lr|normalize_imagenet"
)
SSGRL_EVAL_PP = "decode|resize(640)|center_crop(576)|normalize_imagenet"


def get_config():
  """VOC 2007 baseline configuration."""
  config = base_config()
  config.data.source = "voc/2007"
  config.data.train_split = "train+validation"
  config.data.eval_split = "test"
  config.data.pp_train = SSGRL_TRAIN_PP
  config.data.pp_eval = SSGRL_EVAL_PP
  config.batch_size = 16
  config.total_steps = 5011 // 16 * 30  # 30 epochs
  config.eval_every_steps = 0
  config.checkpoint.every_steps = 1000
  config.checkpoint.best_metric = ""  # evaluated on test, once: nothing is selected
  config.model.backbone = "resnet101"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-4
  config.optimizer.schedule.name = "step"
  config.optimizer.schedule.boundaries = (5011 // 16 * 20,)
  return config
