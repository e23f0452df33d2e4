r"""Faster R-CNN on the built-in dataset's objects: a detector trained from scratch in minutes on a CPU.

builtin_shapes/small:scene_graph (5,000 train / 1,000 validation images, generated on first use) has up to 6
objects of 12 classes per image at 128 px (an 8 x 8 conv5_3 map at stride 16). The network is the VG
detector's layout at toy widths: a VGG with one convolution per block at 1/8 width (conv5_3 has 64 channels),
an RPN of 64 channels, fc6/fc7 of 128 without dropout (VGG's 0.5 on 128 units holds the box head back: AP50
0.015 instead of 0.075 after 400 steps at lr 1e-3; after 600 steps without dropout, 0.44 at lr 1e-3 and 0.89 at
3e-3). The objects measure 12-60 px, so the anchors are sized for them (base
16, ratios 0.5 / 1 / 2, scales 1, 2, 3.5) instead of VG's 35-363 px; sampling, NMS and the test-time rule
are the VG detector's, with fewer proposals for 64 anchor positions (600 -> 100 in training, 300 -> 50 at
test). Adam, lr 3e-3 with cosine decay, 600 steps of 16 (about 2.5 minutes on 2 CPU cores); evaluated with
COCOeval (AP50 is the headline).

  python -m jaxgraphs.main --config=configs/faster_rcnn_shapes.py --workdir=/tmp/jaxgraphs/faster_rcnn_shapes

The unit tests' size: `--config=configs/faster_rcnn_shapes.py:tiny` (64 px, 256 train images, tiny widths).
"""

from jaxgraphs.configs import common, faster_rcnn
from jaxgraphs.training.defaults import base_config

TOY_BACKBONE = {"width": 8, "fc_width": 128, "stage_sizes": (1, 1, 1, 1, 1), "dropout_rate": 0.0}
TINY_BACKBONE = {"width": 4, "fc_width": 32, "stage_sizes": (1, 1, 1, 1, 1), "dropout_rate": 0.0}


def get_config(arg=None):
  """builtin_shapes detection configuration; ',tiny' (or 'tiny') gives the unit tests' widths."""
  _, words = common.pop_words(arg, "tiny")
  config = base_config()
  faster_rcnn.configure(config)
  config.model.backbone_kwargs = dict(TINY_BACKBONE if "tiny" in words else TOY_BACKBONE)
  config.model.rpn_channels = 16 if "tiny" in words else 64
  config.model.anchor_ratios = (0.5, 1.0, 2.0)
  config.model.anchor_scales = (1.0, 2.0, 3.5)
  config.model.rpn_pre_nms_train, config.model.rpn_post_nms_train = 600, 100
  config.model.rpn_pre_nms_test, config.model.rpn_post_nms_test = 300, 50
  config.model.rpn_samples = 64
  config.model.rois_per_image = 32
  config.model.class_candidates = 50
  config.model.max_detections = 16
  config.data.source = "builtin_shapes/small:scene_graph"
  # The scene-graph source's geometry, with the real image size kept for clipping and no relation sampling.
  config.data.pp_train = (
    "decode|resize_long(128)|flip_lr|normalize_imagenet|keep_image_size|pad_bottom_right(128)|pack_scene_graph(8, 16)"
  )
  config.data.pp_eval = (
    "decode|resize_long(128)|normalize_imagenet|keep_image_size|pad_bottom_right(128)|pack_scene_graph(8, 16)"
  )
  config.seed = 0
  config.batch_size = 16
  config.total_steps = 600
  config.log_every_steps = 50
  config.eval_every_steps = 300
  config.checkpoint.every_steps = 300
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 3e-3
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "cosine"
  config.optimizer.schedule.warmup_steps = 50
  if "tiny" in words:
    common.tiny_run(config, "builtin_shapes/tiny:scene_graph", batch_size=2)
    config.data.pp_train = config.data.pp_train.replace("128", "64")
    config.data.pp_eval = config.data.pp_eval.replace("128", "64")
  return config
