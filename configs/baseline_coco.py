r"""Multi-label baseline on MS-COCO 2014 (the "ResNet-101" row of SSGRL's Table 1): train -> validation.

ResNet-101 from torchvision's ImageNet weights, global average pooling, one linear layer; SSGRL's
transforms (resize 640, crop of a random size from {640, 576, 512, 384, 320}, resize 576) plus a random
horizontal flip that the official SSGRL code does not have (configs/ssgrl_coco.py:baseline trains without it).

  python -m jaxgraphs.tools.convert_torchvision --arch=resnet101 --src=resnet101-63fe2227.pth --dst=~/weights/resnet101
  python -m jaxgraphs.main --config=configs/baseline_coco.py --workdir=~/runs/baseline_coco \
      --config.model.backbone_init=~/weights/resnet101
"""

from jaxgraphs.training.defaults import base_config

SSGRL_TRAIN_PP = (
  "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|flip_lr|normalize_imagenet"
)
SSGRL_EVAL_PP = "decode|resize(640)|center_crop(576)|normalize_imagenet"


def get_config():
  """COCO 2014 baseline configuration."""
  config = base_config()
  config.data.source = "coco/2014"
  config.data.train_split = "train"
  config.data.eval_split = "validation"
  config.data.pp_train = SSGRL_TRAIN_PP
  config.data.pp_eval = SSGRL_EVAL_PP
  config.batch_size = 32
  config.total_steps = 82783 // 32 * 20  # 20 epochs
  config.eval_every_steps = 82783 // 32 * 2
  config.checkpoint.every_steps = 2000
  # COCO's labelled test set is val2014 itself: report the last checkpoint, select nothing on it.
  config.checkpoint.best_metric = ""
  config.model.backbone = "resnet101"
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-4
  config.optimizer.schedule.name = "step"
  config.optimizer.schedule.boundaries = (82783 // 32 * 10,)
  return config
