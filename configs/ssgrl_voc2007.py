r"""SSGRL on PASCAL VOC 2007 (the paper's Table 2): trainval -> test.

The network and training of configs/ssgrl_coco.py (ResNet-101 frozen before layer4, Adam 1e-5, batch 4,
learning rate /10 on a plateau of the training loss; 20 epochs, the paper gives no count). Classes whose
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

from jaxgraphs.data import sources
from jaxgraphs.models import ssgrl
from jaxgraphs.training.defaults import base_config

NUM_TRAIN = 5011
BATCH_SIZE = 4
STEPS_PER_EPOCH = NUM_TRAIN // BATCH_SIZE


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on VOC 2007."""
  config = base_config()
  config.data.source = "voc/2007"
  config.data.train_split = "train+validation"
  config.data.eval_split = "test"
  config.data.pp_train = sources.SSGRL_PP_TRAIN
  config.data.pp_eval = sources.SSGRL_PP_EVAL
  config.batch_size = BATCH_SIZE
  config.total_steps = STEPS_PER_EPOCH * 20
  config.log_every_steps = 100
  config.eval_every_steps = 0
  config.model.update(ssgrl.model_config(word_vectors="~/jaxgraphs/word_vectors/voc_glove.npy"))
  config.model.dont_load = (r"params/backbone/fc/.*",)
  ssgrl.apply_variant(config, arg)
  config.init_from.dont_load = (r"params/head/classifier/.*", r"params/classifier/.*")
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-5
  config.optimizer.freeze = ssgrl.freeze_regexes(config.model.frozen_stages)
  config.optimizer.plateau.enabled = True
  config.optimizer.plateau.factor = 0.1
  config.optimizer.plateau.accumulation_size = STEPS_PER_EPOCH
  config.optimizer.plateau.patience = 1
  config.checkpoint.every_steps = 1000
  config.checkpoint.best_metric = ""
  return config
