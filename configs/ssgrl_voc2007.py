r"""SSGRL on PASCAL VOC 2007 (the paper's Table 2): trainval -> test.

The network and training of configs/ssgrl_coco.py (ResNet-101 frozen before layer4, Adam 1e-5, batch 4,
learning rate /10 on a plateau of the training loss; 20 epochs, the paper gives no count) and its transforms
(no horizontal flip, as in the official code; `:flip` or `:<variant>,flip` adds one). Classes whose
instances in an image are all "difficult" are ignored in the loss and in AP (the standard protocol;
`--config.data.voc_difficult=negative` counts them as negatives as the SSGRL code does). The last
checkpoint is reported; nothing is selected on the test split.

  python -m jaxgraphs.tools.prepare_dataset --dataset=voc/2007
  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=voc/2007 \
      --out=~/jaxgraphs/word_vectors/voc_glove.npy
  python -m jaxgraphs.main --config=configs/ssgrl_voc2007.py --workdir=~/runs/ssgrl_voc2007 \
      --config.model.backbone_init=~/weights/resnet101

Table 2's "Ours (pre)": start from a finished COCO run instead of ImageNet. Every parameter but the 80 COCO
classifiers carries over (none of them depends on the number of classes; `init_from.dont_load` below leaves
the classifiers fresh); the VOC word vectors and adjacency replace COCO's as module constants:

  python -m jaxgraphs.main --config=configs/ssgrl_voc2007.py --workdir=~/runs/ssgrl_voc2007_pre \
      --config.init_from.workdir=~/runs/ssgrl_coco
"""

from jaxgraphs.configs import ssgrl
from jaxgraphs.models.ssgrl import freeze_regexes
from jaxgraphs.training.defaults import base_config

NUM_TRAIN = 5011
BATCH_SIZE = 4
EPOCHS = 20  # the paper gives no count
STEPS_PER_EPOCH = NUM_TRAIN // BATCH_SIZE


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on VOC 2007."""
  config = base_config()
  config.data.source = "voc/2007"
  config.data.train_split = "train+validation"
  config.data.eval_split = "test"
  # Train: resize 640x640, a random square crop with a side from {640, 576, 512, 384, 320}, resize 576; no flip
  # as in the official code (',flip' in the config argument adds one). Test: resize 640, centre crop 576.
  config.data.pp_train = (
    "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|normalize_imagenet"
  )
  config.data.pp_eval = "decode|resize(640)|center_crop(576)|normalize_imagenet"
  config.batch_size = BATCH_SIZE
  config.total_steps = STEPS_PER_EPOCH * EPOCHS
  config.log_every_steps = 100
  config.eval_every_steps = 0  # once, at the end

  config.model.update(ssgrl.model_config(word_vectors="~/jaxgraphs/word_vectors/voc_glove.npy"))
  config.model.dont_load = (r"params/backbone/fc/.*",)  # torchvision's ImageNet classifier
  ssgrl.apply_arg(config, arg)  # the Table 5 row
  # Initialising from another dataset's run (Table 2 "pre"): every parameter but the per-class classifiers.
  config.init_from.dont_load = (r"params/head/classifier/.*", r"params/classifier/.*")

  # Adam 1e-5 on layer4 and the head; the learning rate / 10 when the epoch-mean training loss plateaus.
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-5
  config.optimizer.freeze = freeze_regexes(config.model.frozen_stages)
  config.optimizer.plateau.enabled = True
  config.optimizer.plateau.factor = 0.1
  config.optimizer.plateau.accumulation_size = STEPS_PER_EPOCH
  config.optimizer.plateau.patience = 1

  config.checkpoint.every_steps = 1000
  config.checkpoint.best_metric = ""  # the last checkpoint is the result: nothing is selected on the eval split
  return config
