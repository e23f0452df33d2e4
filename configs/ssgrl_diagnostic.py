r"""SSGRL's Table 5 on diagnostic_labels: labels whose object is fully hidden, inferable only from co-occurrence.

diagnostic_labels/small (128 x 128, 4,000 train / 1,000 validation images, generated on first use): each image
holds the three categories of one of 8 scene types, any two of which name the scene, in three corner slots; in
half of the images an opaque occluder covers one of the three objects and its label stays positive
(jaxgraphs/data/builders/diagnostics.py). The evaluation adds mAP_hidden (the occluded labels ranked against
true negatives) and mAP_visible to mAP.

The network reads a ResNet's layer2 (one basic block per stage, base width 8, trained from scratch; 16 x 16
locations at stride 8, no extra pooling) so that each location sees 51 px and never two objects; the head is
SSGRL's with joint and attention dims 64, T = 3 GGNN steps and the built-in word vectors. Adam with lr 1e-3 and
cosine decay, 500 steps of 32.

  python -m jaxgraphs.main --config=configs/ssgrl_diagnostic.py --workdir=/tmp/jaxgraphs/ssgrl_diagnostic
  python -m jaxgraphs.main --config=configs/ssgrl_diagnostic.py:without_si --workdir=/tmp/jaxgraphs/ssgrl_diag_wo_si

Variants as configs/ssgrl_shapes.py (full, baseline, without_sd, without_sd_concat, without_si); seeds with
--config.seed=N; `,tiny`: the unit tests' size (diagnostic_labels/tiny at 48 px, base width 4, head dims 16).
"""

from jaxgraphs.configs import common, ssgrl
from jaxgraphs.data.label_priors import BUILTIN_WORD_VECTORS
from jaxgraphs.training.defaults import base_config


def get_config(arg: str = "full"):
  """SSGRL (or one of its Table 5 ablations) on diagnostic_labels/small; ',tiny' for the unit tests' size."""
  arg, words = common.pop_words(arg, "tiny")
  config = base_config()
  config.data.source = "diagnostic_labels/small"
  config.seed = 0
  config.batch_size = 32
  config.total_steps = 1500  # at 500 steps neither variant has learnt the pairings (full 63, w/o SI 70 mAP_hidden)
  config.log_every_steps = 100
  config.eval_every_steps = 500
  config.model.update(
    ssgrl.model_config(
      backbone="resnet18", word_vectors=BUILTIN_WORD_VECTORS, frozen_stages=(), joint_dim=64, attention_hidden_dim=64
    )
  )
  config.model.backbone_kwargs = {"width": 8, "output_stride": 8, "stage_sizes": (1, 1, 1, 1)}
  config.model.feature_key = "layer2"  # 51 px receptive field: one object per location
  config.model.feature_pool = 1
  ssgrl.apply_arg(config, arg)
  config.optimizer.name = "adam"
  config.optimizer.learning_rate = 1e-3
  config.optimizer.schedule.name = "cosine"
  config.optimizer.schedule.warmup_steps = 50
  config.checkpoint.every_steps = 500
  if "tiny" in words:
    common.tiny_run(config, "diagnostic_labels/tiny", batch_size=8)
    config.model.backbone_kwargs.width = 4
    config.model.joint_dim = config.model.attention_hidden_dim = 16
  return config
