r"""Faster R-CNN with VGG-16 on VG-150: the detector behind LinkNet's three modes (neural-motifs' pre-training).

VGG-16 conv5_3 (stride 16, ImageNet weights) -> RPN (3x3 conv 512, 20 anchors per cell: base 16, k-means ratios
0.23 / 0.63 / 1.28 / 3.15 and scales 2.2 / 4.1 / 7.2 / 12.6 / 22.7 on VG boxes) -> proposals (NMS 0.7; 12,000 ->
2,000 in training, 6,000 -> 1,000 at test) -> RoIAlign 7x7 -> VGG-16's own fc6/fc7 (4096) -> 151 class scores
(background 0) and class-specific box deltas. RPN: 256 anchors per image, IoU >= 0.7 positive (at most half),
< 0.3 negative. Box head: 256 RoIs per image, at most a quarter foreground (IoU >= 0.5). Images: long side 592,
flipped in training, padded to 592 x 592 (the real size is kept so that boxes are clipped to the image).

Recipe (neural-motifs' scripts/pretrain_detector.sh): SGD, momentum 0.9, lr 1e-3 per image (batch 18 = 3 GPUs x
6 images), weight decay 1e-4, gradient norm clipped at 5. The reference divides the lr by 10 when validation AP50
has not improved for 3 epochs (up to 50 epochs); here the lr drops by 10 after 20 of 30 epochs (no plateau
schedule). Evaluated every epoch on the 5,000 validation images with COCOeval; the best checkpoint follows AP50,
the number the reference reports (20.0 mAP@0.5 in the neural-motifs paper).

  python -m jaxgraphs.tools.prepare_dataset --dataset=vg150 --manual_dir=~/vg150_files
  python -m jaxgraphs.tools.convert_torchvision --arch=vgg16 --src=vgg16-397923af.pth --dst=~/weights/vgg16
  python -m jaxgraphs.main --config=configs/faster_rcnn_vg150.py --workdir=~/runs/faster_rcnn_vg150 \
      --config.model.backbone_init=~/weights/vgg16

The LinkNet VG configs read this run's best checkpoint from ~/runs/faster_rcnn_vg150 by default
(`--config.model.detector_run=...` to point elsewhere).
"""

from jaxgraphs.configs import faster_rcnn
from jaxgraphs.training.defaults import base_config

TRAIN_IMAGES = 57_723  # the filtered train split after the 5,000 validation images (neural-motifs)
BATCH_SIZE = 18  # 3 GPUs x 6 images in the reference
EPOCHS = 30
STEPS_PER_EPOCH = TRAIN_IMAGES // BATCH_SIZE


def get_config(arg=None):
  """VG-150 detector pre-training (no variants)."""
  del arg
  config = base_config()
  faster_rcnn.configure(config)  # VGG-16, VG anchors, the reference's sampling and NMS numbers
  config.data.source = "vg150"
  config.data.pp_train = (
    "decode|resize_long(592)|flip_lr|normalize_imagenet|keep_image_size|pad_bottom_right(592)|pack_scene_graph(64, 128)"
  )
  config.data.pp_eval = (
    "decode|resize_long(592)|normalize_imagenet|keep_image_size|pad_bottom_right(592)|pack_scene_graph(64, 128)"
  )
  config.model.dont_load = (r"params/backbone/classifier_6/.*",)  # torchvision's 1000-way fc8
  config.seed = 0
  config.batch_size = BATCH_SIZE
  config.total_steps = STEPS_PER_EPOCH * EPOCHS
  config.log_every_steps = 100
  config.eval_every_steps = STEPS_PER_EPOCH
  config.checkpoint.every_steps = 2000
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.learning_rate = 1e-3 * BATCH_SIZE
  config.optimizer.weight_decay = 1e-4
  config.optimizer.weight_decay_exclude = ()
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "step"
  config.optimizer.schedule.boundaries = (STEPS_PER_EPOCH * 20,)
  config.optimizer.schedule.decay_factor = 0.1
  return config
