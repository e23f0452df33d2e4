r"""SSGRL on MS-COCO 2014 (the paper's Table 1 and, with `:arg`, the Table 5 ablations): train -> validation.

ResNet-101 (torchvision's ImageNet weights) + 2x2 average pool + semantic decoupling + GGNN (T=3) + 80 unshared
classifiers, as in the official code: everything before layer4 frozen (batch norm in inference mode, no
gradient, no optimiser state), Adam lr 1e-5 (betas 0.9, 0.999, no weight decay), batch 4, the learning rate
divided by 10 when the training loss plateaus (the paper: "when the error plateaus"; the official scripts never
lower it; the paper gives no epoch count, 20 epochs here). Transforms: the official code's resize 640x640, random
crop of a side from {640, 576, 512, 384, 320}, resize 576 (test: resize 640, center crop 576), and no horizontal
flip, as there (`:flip` or `:<variant>,flip` adds a random one, p = 0.5). GGNN gates: the correct ones (a version of the released code
reuses U_z in the reset gate: `--config.model.shared_reset_gate_bug=True`).
COCO has no labelled test split: val2014 is the reported set, so nothing is selected on it; the last
checkpoint is the result (the official code keeps the best val2014 mAP, which is model selection on test).
More on the official code and where this config departs from it: (docs/paper_details.md, SSGRL training).

  # once: ImageNet weights, GloVe class vectors, COCO (TFDS, ~38 GB)
  python -m jaxgraphs.tools.convert_torchvision --arch=resnet101 --src=resnet101-63fe2227.pth --dst=~/weights/resnet101
  python -m jaxgraphs.tools.prepare_dataset --dataset=coco/2014
  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=coco/2014 \
      --out=~/jaxgraphs/word_vectors/coco2014_glove.npy
  # train + evaluate (variants: full (default), baseline, without_sd, without_sd_concat, without_si)
  python -m jaxgraphs.main --config=configs/ssgrl_coco.py --workdir=~/runs/ssgrl_coco \
      --config.model.backbone_init=~/weights/resnet101
  python -m jaxgraphs.main --config=configs/ssgrl_coco.py:without_si --workdir=~/runs/ssgrl_coco_without_si \
      --config.model.backbone_init=~/weights/resnet101
  # the same with a random horizontal flip in training (not in the official code)
  python -m jaxgraphs.main --config=configs/ssgrl_coco.py:full,flip --workdir=~/runs/ssgrl_coco_flip \
      --config.model.backbone_init=~/weights/resnet101
"""

from jaxgraphs.configs import ssgrl
from jaxgraphs.models.ssgrl import freeze_regexes
from jaxgraphs.training.defaults import base_config

NUM_TRAIN = 82783
BATCH_SIZE = 4
EPOCHS = 20  # the paper gives no count
STEPS_PER_EPOCH = NUM_TRAIN // BATCH_SIZE


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on COCO 2014."""
  config = base_config()
  config.data.source = "coco/2014"
  config.data.train_split = "train"
  config.data.eval_split = "validation"
  # Train: resize 640x640, a random square crop with a side from {640, 576, 512, 384, 320}, resize 576; no flip
  # as in the official code (',flip' in the config argument adds one). Test: resize 640, centre crop 576.
  config.data.pp_train = (
    "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|normalize_imagenet"
  )
  config.data.pp_eval = "decode|resize(640)|center_crop(576)|normalize_imagenet"
  config.batch_size = BATCH_SIZE
  config.total_steps = STEPS_PER_EPOCH * EPOCHS
  config.log_every_steps = 200
  config.eval_every_steps = STEPS_PER_EPOCH * 2

  config.model.update(ssgrl.model_config(word_vectors="~/jaxgraphs/word_vectors/coco2014_glove.npy"))
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

  config.checkpoint.every_steps = 2000
  config.checkpoint.best_metric = ""  # the last checkpoint is the result: nothing is selected on the eval split
  return config
