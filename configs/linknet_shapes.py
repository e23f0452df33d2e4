r"""LinkNet on the built-in dataset's scene graphs (PredCls or SGCls): minutes on a CPU, nothing downloaded.

builtin_shapes/small:scene_graph (5,000 train / 1,000 validation images, generated on first use) has up to 6
objects of 12 classes per image and 8 geometric predicates ('left of', 'inside', 'near', ...) between an
object and its nearest neighbours. Images are resized to 128 px (8 x 8 conv5_3 map at stride 16). The network
is LinkNet's layout at toy widths, trained from scratch: a VGG with one convolution per block at 1/8 width
(conv5_3 has 64 channels), fc6/fc7 of 128, K0/K1 embeddings of 32, hidden width 64, layout embedding of 32,
two relational embedding modules per side with r = 2. Adam, lr 1e-3 with cosine decay, 1,500 steps of 16.

  python -m jaxgraphs.main --config=configs/linknet_shapes.py --workdir=/tmp/jaxgraphs/linknet_shapes
  python -m jaxgraphs.main --config=configs/linknet_shapes.py:sgcls --workdir=/tmp/jaxgraphs/linknet_shapes_sgcls
  python -m jaxgraphs.main --config=configs/linknet_shapes.py:predcls,rem=0,glem=0 --workdir=/tmp/jaxgraphs/ls_base
  python -m jaxgraphs.main --config=configs/faster_rcnn_shapes.py --workdir=/tmp/jaxgraphs/faster_rcnn_shapes
  python -m jaxgraphs.main --config=configs/linknet_shapes.py:sgdet --workdir=/tmp/jaxgraphs/linknet_shapes_sgdet

SGDet takes its objects from the frozen detector of a configs/faster_rcnn_shapes.py run
(`config.model.detector_run`, default /tmp/jaxgraphs/faster_rcnn_shapes, its best checkpoint): its feature map,
its detections (at most 16 per image) and their class distributions (K0). LinkNet's fc6/fc7 start from the
detector's. In training each detection takes the class of a ground-truth box it overlaps with IoU >= 0.5
(else background) and 64 pairs per image are drawn among overlapping detections (at most a quarter matching an
annotated relation); only relations between overlapping boxes are kept. Evaluation: R@K in the sgdet protocol.

Variants: `--config=configs/linknet_shapes.py:ARG` with ARG as in jaxgraphs.configs.linknet.VARIANT_ARG_HELP
(predcls | sgcls | sgdet; num_re=, r= (Table 2a); e0= (Table 2b); rem=, glem=, gcem=, norm=, sim= (Table 3)).
The unit tests' size: `--config=configs/linknet_shapes.py:predcls,tiny` (64 px, 256 train images, tiny widths).
"""

from jaxgraphs.configs import common, linknet
from jaxgraphs.training.defaults import base_config

# flip_lr swaps 'left of' and 'right of' (predicates 1 and 2; 0 is the background), as the source's pp does.
FLIPPED = (0, 2, 1, 3, 4, 5, 6, 7, 8)
TOY_BACKBONE = {"width": 8, "fc_width": 128, "stage_sizes": (1, 1, 1, 1, 1)}
TOY_WIDTHS = {"embed_dim": 32, "hidden_dim": 64, "geometry_dim": 32}
# ',tiny': the unit tests' widths, which compile in seconds.
TINY_BACKBONE = {"width": 4, "fc_width": 32, "stage_sizes": (1, 1, 1, 1, 1)}
TINY_WIDTHS = {"embed_dim": 8, "hidden_dim": 16, "geometry_dim": 8}


def get_config(arg=None):
  """builtin_shapes scene-graph configuration; `arg` picks the mode and ablations (module docstring), ',tiny'
  test widths."""
  arg, words = common.pop_words(arg, "tiny")
  config = base_config()
  linknet.configure(config, arg)
  config.model.backbone_kwargs = dict(TINY_BACKBONE if "tiny" in words else TOY_BACKBONE)
  config.model.update(TINY_WIDTHS if "tiny" in words else TOY_WIDTHS)
  # The reference's running statistics move by 0.001 a step: too slow for 1,500 steps.
  config.model.geometry_bn_momentum = 0.9
  config.data.source = "builtin_shapes/small:scene_graph"
  config.seed = 0
  config.batch_size = 16
  config.total_steps = 1500
  config.log_every_steps = 50
  config.eval_every_steps = 750
  config.checkpoint.every_steps = 750
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "cosine"
  config.optimizer.schedule.warmup_steps = 50
  if config.task.mode == "sgdet":
    _use_detector(config, "tiny" in words)
  if "tiny" in words:
    common.tiny_run(config, "builtin_shapes/tiny:scene_graph", batch_size=2)
    if config.task.mode == "sgdet":
      config.data.pp_train = config.data.pp_train.replace("128", "64")
      config.data.pp_eval = config.data.pp_eval.replace("128", "64")
  return config


def _use_detector(config, tiny: bool) -> None:
  """SGDet: the detector of configs/faster_rcnn_shapes.py (same widths), frozen; the scene-graph pipeline with the
  real image size kept and only overlapping relations in training."""
  detector = common.load_config("faster_rcnn_shapes", "tiny" if tiny else None).model
  config.model.detector.update({key: detector[key] for key in config.model.detector if key in detector})
  config.model.detector_run = "/tmp/jaxgraphs/faster_rcnn_shapes"
  config.model.sgdet_pairs = 64
  config.optimizer.freeze = (r"^detector/",)
  config.data.pp_train = (
    f"decode|resize_long(128)|flip_lr(predicate_map={FLIPPED})|normalize_imagenet|keep_image_size"
    "|pad_bottom_right(128)|one_predicate_per_pair|overlapping_relations|pack_scene_graph(8, 16)"
  )
  config.data.pp_eval = (
    "decode|resize_long(128)|normalize_imagenet|keep_image_size|pad_bottom_right(128)|pack_scene_graph(8, 16)"
  )
