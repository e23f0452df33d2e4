r"""SSGRL on Visual Genome's 500 most frequent object names (the paper's Table 4): train -> test.

The network and training of configs/ssgrl_coco.py (ResNet-101 frozen before layer4, Adam 1e-5, batch 4,
learning rate /10 on a plateau of the training loss; 20 epochs, the paper gives no count) and its transforms
(no horizontal flip, as in the official code; `:flip` or `:<variant>,flip` adds one). The dataset is
jaxgraphs' `vg500` builder (jaxgraphs/data/builders/vg500.py): the 500 names found in the most training images
after normalisation, a fixed-seed 10,000-image test split, the rest train. VG-500 has no validation split:
nothing is selected on test, the last checkpoint is the result and `test` is evaluated once at the end.
The class vocabulary lives in the prepared dataset, so the word vectors are made from it (--dataset=vg500).
The official code's own train / test lists (train_list_500.txt, test_list_500.txt in the manual dir) give the
split instead with the builder config `authors_lists`: prepare `--dataset=vg500/authors_lists` and train with
`--config.data.source=vg500/authors_lists` (82,904 train images there: scale total_steps by 82904 / 98077).

  python -m jaxgraphs.tools.prepare_dataset --dataset=vg500 --manual_dir=/data/visual_genome
  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=vg500 \
      --out=~/jaxgraphs/word_vectors/vg500_glove.npy
  python -m jaxgraphs.main --config=configs/ssgrl_vg500.py --workdir=~/runs/ssgrl_vg500 \
      --config.model.backbone_init=~/weights/resnet101
"""

from jaxgraphs.configs import ssgrl
from jaxgraphs.models.ssgrl import freeze_regexes
from jaxgraphs.training.defaults import base_config

# Visual Genome 1.2 has 108,077 images; 10,000 go to test.
NUM_TRAIN = 98077
BATCH_SIZE = 4
EPOCHS = 20  # the paper gives no count
STEPS_PER_EPOCH = NUM_TRAIN // BATCH_SIZE


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on VG-500."""
  config = base_config()
  config.data.source = "vg500"
  config.data.train_split = "train"
  config.data.eval_split = "test"
  # Train: resize 640x640, a random square crop with a side from {640, 576, 512, 384, 320}, resize 576; no flip
  # as in the official code (',flip' in the config argument adds one). Test: resize 640, centre crop 576.
  config.data.pp_train = (
    "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|normalize_imagenet"
  )
  config.data.pp_eval = "decode|resize(640)|center_crop(576)|normalize_imagenet"
  config.batch_size = BATCH_SIZE
  config.total_steps = STEPS_PER_EPOCH * EPOCHS
  config.log_every_steps = 200
  config.eval_every_steps = 0  # once, at the end

  config.model.update(ssgrl.model_config(word_vectors="~/jaxgraphs/word_vectors/vg500_glove.npy"))
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
