r"""LinkNet SGDet on VG-150 (Woo et al. 2018, Table 1: R@20/50/100 = 22.3 / 27.4 / 30.1).

An image in, a scene graph out. The objects are the detections of the frozen VG-trained Faster R-CNN of
configs/faster_rcnn_vg150.py (read from ~/runs/faster_rcnn_vg150, its best checkpoint): per class NMS 0.3,
score >= 0.01, one label per box, at most 64 per image. LinkNet runs on the detector's conv5_3 map; K0 takes
the detector's class distribution of each detection; LinkNet's own fc6/fc7 start from the detector's. Training
(neural-motifs' SGDet): a detection takes the class of a ground-truth box it overlaps with IoU >= 0.5 (else the
background); 256 pairs per image are drawn among overlapping detections, at most a quarter matching an annotated
relation (both boxes at IoU >= 0.5); only annotated relations between overlapping boxes are kept. Evaluation:
R@K in the sgdet protocol (a hit needs both detected boxes at IoU >= 0.5 with the right classes and predicate),
candidate pairs among overlapping detections. The rest is configs/linknet_vg_sgcls.py's recipe.

  python -m jaxgraphs.main --config=configs/faster_rcnn_vg150.py --workdir=~/runs/faster_rcnn_vg150 \
      --config.model.backbone_init=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/linknet_vg_sgdet.py --workdir=~/runs/linknet_sgdet

Variants: `--config=configs/linknet_vg_sgdet.py:ARG`, ARG as in jaxgraphs.configs.linknet.VARIANT_ARG_HELP.
"""

import os

from jaxgraphs.configs import linknet
from jaxgraphs.training.defaults import base_config

DETECTOR_RUN = "~/runs/faster_rcnn_vg150"  # the workdir of a configs/faster_rcnn_vg150.py run
TRAIN_IMAGES = 57_723  # the filtered train split after the 5,000 validation images (neural-motifs)
BATCH_SIZE = 6  # the reference's command line (-b 6 on one GPU)
EPOCHS = 9
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH_SIZE


def get_config(arg=None):
  """VG-150 SGDet; `arg` picks ablations (module docstring)."""
  config = base_config()
  linknet.configure(config, arg, mode="sgdet")  # paper widths; config.model.detector holds the detector's keys
  config.model.detector_run = os.path.expanduser(DETECTOR_RUN)
  config.data.source = "vg150"
  # Longer side 592 (the real size kept: detections are clipped to it), flip, padded to 592 x 592; one predicate
  # per pair, only relations between overlapping boxes; at most 64 objects and 128 relations of ground truth.
  config.data.pp_train = (
    "decode|resize_long(592)|flip_lr|normalize_imagenet|keep_image_size|pad_bottom_right(592)"
    "|one_predicate_per_pair|overlapping_relations|pack_scene_graph(64, 128)"
  )
  config.data.pp_eval = (
    "decode|resize_long(592)|normalize_imagenet|keep_image_size|pad_bottom_right(592)|pack_scene_graph(64, 128)"
  )
  config.seed = 0
  config.batch_size = BATCH_SIZE
  config.total_steps = STEPS_PER_EPOCH * EPOCHS
  config.log_every_steps = 100
  config.eval_every_steps = STEPS_PER_EPOCH
  config.checkpoint.every_steps = 2000

  # neural-motifs' train_rels.py, as for PredCls / SGCls: SGD, momentum 0.9, lr 1e-3 per image, weight decay 1e-4,
  # gradient norm 5; lr / 10 after 2/3 of the epochs (the reference: on a validation plateau).
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1e-3 * BATCH_SIZE
  config.optimizer.weight_decay = 1e-4
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "step"
  config.optimizer.schedule.boundaries = (STEPS_PER_EPOCH * (2 * EPOCHS // 3),)
  config.optimizer.schedule.decay_factor = 0.1
  config.optimizer.freeze = (r"^detector/",)  # the whole detector, as the reference freezes it
  return config
