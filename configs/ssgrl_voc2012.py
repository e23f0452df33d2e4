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
from {512, 448, 384, 320, 256} resized to 448; test resize 512, center crop 448), then ten-crop evaluation of
both and the mean of their probabilities:

  python -m jaxgraphs.main --config=configs/ssgrl_voc2012.py:scale512 --workdir=~/runs/ssgrl_voc2012_pre_512 \
      --config.init_from.workdir=~/runs/ssgrl_coco
  python -m jaxgraphs.tools.fused_eval --workdir=~/runs/ssgrl_voc2012_pre --workdir=~/runs/ssgrl_voc2012_pre_512 \
      --ten_crop
"""

from jaxgraphs.models import ssgrl

SCALE_512_PP_TRAIN = ("decode|resize(512)|random_crop_choice((512, 448, 384, 320, 256))|resize(448)|flip_lr"
                      "|normalize_imagenet")
SCALE_512_PP_EVAL = "decode|resize(512)|center_crop(448)|normalize_imagenet"
NUM_TRAIN = 5717


def get_config(arg: str = "full"):
  """SSGRL (or a Table 5 row) on VOC 2012; ',scale512' (or 'scale512' alone) for the 448-pixel model."""
  parts = [part for part in arg.split(",") if part]
  scale512 = "scale512" in parts
  variants = [part for part in parts if part != "scale512"] or ["full"]
  if len(variants) != 1:
    raise ValueError(f"configs/ssgrl_voc2012.py:{arg}: give one variant, optionally with ',scale512'")
  config = ssgrl.paper_config("voc/2012", "train", "validation", NUM_TRAIN, "~/jaxgraphs/word_vectors/voc_glove.npy",
                              variants[0], log_every_steps=100, checkpoint_every_steps=1000)
  if scale512:
    config.data.pp_train, config.data.pp_eval = SCALE_512_PP_TRAIN, SCALE_512_PP_EVAL
  return config
