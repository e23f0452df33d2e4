r"""SSGRL on PASCAL VOC 2012 (the paper's Table 3): train -> validation.

VOC 2012's test labels are not public (the paper's numbers come from the evaluation server), so the labelled
`validation` split is the evaluation set; training therefore uses `train` alone, since trainval contains every
validation image. Nothing is selected on validation: the last checkpoint is reported. For the paper's protocol,
train on trainval (`--config.data.train_split=train+validation`) and submit the test predictions to the server.
Otherwise the network and training of configs/ssgrl_voc2007.py; the difficult-object protocol likewise.

  python -m jaxgraphs.tools.prepare_dataset --dataset=voc/2012
  python -m jaxgraphs.tools.word_vectors --glove=glove.840B.300d.txt --dataset=voc/2012 \
      --out=~/jaxgraphs/word_vectors/voc_glove.npy
  python -m jaxgraphs.main --config=configs/ssgrl_voc2012.py --workdir=~/runs/ssgrl_voc2012 \
      --config.model.backbone_init=~/weights/resnet101
  # Table 3's "Ours (pre)": from a finished COCO run (the COCO classifiers are left out, see ssgrl_voc2007.py)
  python -m jaxgraphs.main --config=configs/ssgrl_voc2012.py --workdir=~/runs/ssgrl_voc2012_pre \
      --config.init_from.workdir=~/runs/ssgrl_coco

"Ours (pre & fusion)": a second model at scale 512 (`:scale512`, or `:<variant>,scale512`: resize 512, crops
from {512, 448, 384, 320, 256} resized to 448; test resize 512, center crop 448; add `,flip` to either model for a
horizontal flip the official code does not have), then ten-crop evaluation of
both and the mean of their probabilities:

  python -m jaxgraphs.main --config=configs/ssgrl_voc2012.py:scale512 --workdir=~/runs/ssgrl_voc2012_pre_512 \
      --config.init_from.workdir=~/runs/ssgrl_coco
  python -m jaxgraphs.tools.fused_eval --workdir=~/runs/ssgrl_voc2012_pre --workdir=~/runs/ssgrl_voc2012_pre_512 \
      --ten_crop
"""

from jaxgraphs.configs import common, ssgrl
from jaxgraphs.models.ssgrl import freeze_regexes
from jaxgraphs.training.defaults import base_config

NUM_TRAIN = 5717
BATCH_SIZE = 4
EPOCHS = 20  # the paper gives no count
STEPS_PER_EPOCH = NUM_TRAIN // BATCH_SIZE


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on VOC 2012; ',scale512' (or 'scale512' alone) for the 448-pixel model."""
  arg, words = common.pop_words(arg, "scale512")
  config = base_config()
  config.data.source = "voc/2012"
  config.data.train_split = "train"
  config.data.eval_split = "validation"
  # Train: resize 640x640, a random square crop with a side from {640, 576, 512, 384, 320}, resize 576; no flip
  # as in the official code (',flip' in the config argument adds one). Test: resize 640, centre crop 576.
  config.data.pp_train = (
    "decode|resize(640)|random_crop_choice((640, 576, 512, 384, 320))|resize(576)|normalize_imagenet"
  )
  config.data.pp_eval = "decode|resize(640)|center_crop(576)|normalize_imagenet"
  if "scale512" in words:
    # Resize 512, crops from {512, 448, 384, 320, 256} resized to 448; test: resize 512, center crop 448.
    config.data.pp_train = (
      "decode|resize(512)|random_crop_choice((512, 448, 384, 320, 256))|resize(448)|normalize_imagenet"
    )
    config.data.pp_eval = "decode|resize(512)|center_crop(448)|normalize_imagenet"
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
