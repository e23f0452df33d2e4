r"""LinkNet PredCls on VG-150 (Woo et al. 2018, Table 1: R@20/50/100 = 61.8 / 67.0 / 68.5).

GT boxes and labels in, predicates out. VGG-16 (from the VG-trained detector, convolutions frozen as the
reference freezes its detector) on 592 px inputs padded to 592 x 592, conv5_3 at stride 16, RoIAlign 7x7 ->
fc6/fc7 (4096); K0 of the one-hot GT labels (200), global context (512), two object and two edge relational
embedding modules (r = 2, hidden 256), union-box fc7 features, layout embedding (128). Training: 256 pairs per
image (<= 64 annotated, the rest background), one predicate per pair, flips; SGD 6e-3 (1e-3 per image, batch
6), momentum 0.9, weight decay 1e-4, gradient norm 5, 9 epochs with lr / 10 after 6 (the reference decays on
a validation plateau). Evaluated on the 5,000-image val split every epoch (best checkpoint by R@50); the
paper reports test. What differs from the reference implementation: jaxgraphs/models/linknet.py docstring and
(docs/paper_details.md, What differs from the reimplementation).

  python -m jaxgraphs.tools.prepare_dataset --dataset=vg150 --manual_dir=~/vg150_files
  python -m jaxgraphs.tools.convert_torchvision --arch=vgg16 --src=vgg16-397923af.pth --dst=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/faster_rcnn_vg150.py --workdir=~/runs/faster_rcnn_vg150 \
      --config.model.backbone_init=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/linknet_vg_predcls.py --workdir=~/runs/linknet_predcls

The VGG-16 (convolutions, frozen, and fc6/fc7) starts from the VG-trained detector of configs/faster_rcnn_vg150.py,
read from ~/runs/faster_rcnn_vg150 (its best checkpoint; `--config.model.detector_run=RUN` to point elsewhere),
as the reference's relation models do. Without a detector run, ImageNet weights alone (expect far lower recall):
  python -m jaxgraphs.main --config=configs/linknet_vg_predcls.py:imagenet --workdir=~/runs/linknet_predcls_imagenet \
      --config.model.backbone_init=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/linknet_vg_predcls.py --workdir=~/runs/linknet_predcls --mode=eval \
      --checkpoint=best --eval_split=test

Variants: `--config=configs/linknet_vg_predcls.py:ARG` (and the word `imagenet`), ARG as in jaxgraphs.configs.linknet.VARIANT_ARG_HELP
(num_re=, r= (Table 2a); e0= (Table 2b); rem=, glem=, gcem=, norm=, sim= (Table 3)).
Memory: with 64 objects evaluation scores 4,096 pairs per image in chunks of `model.union_chunk_size`;
`--config.model.dtype=bfloat16` halves activations on accelerators.
"""

import os

from jaxgraphs.configs import common, linknet
from jaxgraphs.training.defaults import base_config

DETECTOR_RUN = "~/runs/faster_rcnn_vg150"  # the workdir of a configs/faster_rcnn_vg150.py run

TRAIN_IMAGES = 57_723  # the filtered train split after the 5,000 validation images (neural-motifs)
BATCH_SIZE = 6  # the reference's command line (-b 6 on one GPU)
EPOCHS = 9
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH_SIZE


def get_config(arg=None):
  """VG-150 PredCls; `arg` picks ablations (module docstring)."""
  arg, words = common.pop_words(arg, "imagenet")
  config = base_config()
  linknet.configure(config, arg, mode="predcls")  # paper widths: VGG-16, fc 4096, embeddings 200, hidden 256
  config.data.source = "vg150"
  # Longer side 592, flip, padded to 592 x 592; at most 64 objects and 128 relations, 256 pairs per image (at most
  # a quarter annotated), one predicate per pair.
  config.data.pp_train = (
    "decode|resize_long(592)|flip_lr|normalize_imagenet|pad_bottom_right(592)"
    "|one_predicate_per_pair|pack_scene_graph(64, 128)|sample_relation_pairs(256, 0.25)"
  )
  config.data.pp_eval = "decode|resize_long(592)|normalize_imagenet|pad_bottom_right(592)|pack_scene_graph(64, 128)"
  config.seed = 0
  config.batch_size = BATCH_SIZE
  config.total_steps = STEPS_PER_EPOCH * EPOCHS
  config.log_every_steps = 100
  config.eval_every_steps = STEPS_PER_EPOCH
  config.checkpoint.every_steps = 2000
  config.model.dont_load = (r"params/backbone/classifier_6/.*",)  # torchvision's 1000-way fc8

  # The reference's training (neural-motifs' train_rels.py): SGD, momentum 0.9, lr 1e-3 per image, weight decay
  # 1e-4 on every parameter, gradient norm clipped at 5. It divides the lr by 10 when the validation R@100 stops
  # improving (patience 3 epochs) and trains fc6/fc7 at lr / 10; here the lr drops by 10 after 2/3 of the epochs
  # and the fc layers share the lr (the optimiser has no per-parameter rates).
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1e-3 * BATCH_SIZE
  config.optimizer.weight_decay = 1e-4
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "step"
  config.optimizer.schedule.boundaries = (STEPS_PER_EPOCH * (2 * EPOCHS // 3),)
  config.optimizer.schedule.decay_factor = 0.1
  # The reference freezes its VG-trained detector's convolutions (':imagenet': the ImageNet VGG-16's instead).
  config.optimizer.freeze = (r"^backbone/features_",)
  config.model.detector_run = "" if "imagenet" in words else os.path.expanduser(DETECTOR_RUN)
  return config
