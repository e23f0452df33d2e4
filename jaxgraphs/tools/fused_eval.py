r"""Ten-crop evaluation and score fusion of trained multi-label runs (SSGRL's Table 3, "Ours (pre & fusion)").

  python -m jaxgraphs.tools.fused_eval --workdir=~/runs/ssgrl_voc2012_pre --ten_crop
  python -m jaxgraphs.tools.fused_eval --workdir=~/runs/ssgrl_voc2012_pre --workdir=~/runs/ssgrl_voc2012_pre_512 \
      --ten_crop --out=~/runs/voc2012_fusion.json

Each `--workdir` is a finished run; its config.json (as trained, overrides included) rebuilds the model
(`trainer.Experiment`) and its latest (or `--checkpoint=best|N`) checkpoint is restored. Ten-crop
(`--ten_crop`): the run's `pp_eval` with its `center_crop(S)` replaced by `ten_crop(S)` -- the four corner crops
and the centre crop, then the same five of the mirrored image (torchvision's TenCrop) -- and the ten class
probabilities averaged per image. Fusion: the per-image probabilities of the runs averaged (the paper "aggregates
results from the two scales"; it does not say how, the mean is used). The runs must read the same split in the
same order; their labels are checked to agree. Metrics: `MultiLabelEvaluator` (mAP, CF1, OF1, ...), printed and,
with `--out`, written as JSON with the per-run metrics. One process (no multi-host gathering).
"""

from __future__ import annotations

import re

import numpy as np
from absl import app, flags, logging

from jaxgraphs.errors import ConfigError

FLAGS = flags.FLAGS

CROP_PATTERN = re.compile(r"(^|\|)\s*center_crop\(([^|]*)\)\s*(?=\||$)")


def _register_ten_crop():
  """Registers the `ten_crop(size)` op with jaxgraphs.data.transforms (once)."""
  import tensorflow as tf

  from jaxgraphs.data import transforms

  if "ten_crop" in transforms.OPS:
    return

  @transforms.register("ten_crop")
  def get_ten_crop(size):
    """(H, W, 3) -> (10, size, size, 3): corners TL, TR, BL, BR, centre, then the same of the mirrored image."""
    height, width = transforms._size_hw(size)  # pylint: disable=protected-access
    center_crop = transforms.get_center_crop((height, width))

    def five(image):
      h, w = tf.shape(image)[0], tf.shape(image)[1]
      corners = [
        image[:height, :width],
        image[:height, w - width :],
        image[h - height :, :width],
        image[h - height :, w - width :],
      ]
      return corners + [center_crop({"image": image})["image"]]

    def ten_crop(example):
      image = example["image"]
      crops = tf.stack(five(image) + five(tf.reverse(image, [1])))
      return {**example, "image": tf.ensure_shape(crops, [10, height, width, image.shape[-1]])}

    return ten_crop


def ten_crop_pp(pp_eval: str) -> str:
  """`pp_eval` with its single `center_crop(S)` replaced by `ten_crop(S)`."""
  matches = CROP_PATTERN.findall(pp_eval)
  if len(matches) != 1:
    raise ValueError(f"config.data.pp_eval={pp_eval!r}: ten-crop needs exactly one center_crop(...) op to replace")
  return CROP_PATTERN.sub(lambda m: f"{m.group(1)}ten_crop({m.group(2)})", pp_eval)


def run_probabilities(
  workdir: str, checkpoint: str = "latest", split: str | None = None, ten_crop: bool = False, config=None
) -> dict[str, np.ndarray]:
  """Per-example 'probs', 'labels', 'label_weights', 'mask' of one run over a split, in the pipeline's order."""
  import jax

  from jaxgraphs.data import pipeline
  from jaxgraphs.training import sharding
  from jaxgraphs.training.run_dirs import config_from_workdir
  from jaxgraphs.training.trainer import Experiment

  config = config if config is not None else config_from_workdir(workdir)
  experiment = Experiment(config)
  split = split or experiment.data_info.eval_split
  if ten_crop:
    _register_ten_crop()
    config.data.pp_eval = ten_crop_pp(experiment.data_info.pp_eval)
  batches, num_batches = pipeline.build_eval_dataset(config.data, split, local_batch_size=experiment.local_batch_size)
  collected = []
  for index, batch in enumerate(batches):
    crops = batch["image"].shape[1] if ten_crop else 1
    if ten_crop:  # every crop becomes an example of its own, carrying its image's labels and mask
      batch = {
        k: (v.reshape((-1,) + v.shape[2:]) if k == "image" else np.repeat(v, crops, axis=0)) for k, v in batch.items()
      }
    if index == 0:
      state = experiment.restore(workdir, checkpoint, batch_spec=batch)
      logging.info(
        "%s: step %d on %s (%d batches)%s",
        workdir,
        int(jax.device_get(state.step)),
        split,
        num_batches,
        ", ten crops" if ten_crop else "",
      )
    outputs = jax.tree.map(
      np.asarray, jax.device_get(experiment.jit_eval_step(state, sharding.global_batch(batch, experiment.mesh)))
    )
    if "probs" not in outputs:
      raise ValueError(
        f"config.task.name={config.task.name!r}: fused_eval needs a task whose eval outputs have 'probs'"
      )
    collected.append(
      {
        k: (v.reshape((-1, crops) + v.shape[1:]).mean(axis=1) if k == "probs" else v[::crops])
        for k, v in outputs.items()
        if k in ("probs", "labels", "label_weights", "mask")
      }
    )
  return {k: np.concatenate([c[k] for c in collected]) for k in collected[0]}


def fuse(runs: list[dict[str, np.ndarray]], names: list[str]) -> dict[str, np.ndarray]:
  """The runs' probabilities averaged; their labels, weights and masks must be identical."""
  first = runs[0]
  for name, run in zip(names[1:], runs[1:]):
    for key in ("labels", "label_weights", "mask"):
      if run[key].shape != first[key].shape or not np.array_equal(run[key], first[key]):
        raise ValueError(
          f"{name} and {names[0]} disagree on {key!r}: they must evaluate the same split in the "
          "same order (same dataset, split and eval batch size)"
        )
  return {**first, "probs": np.mean([run["probs"] for run in runs], axis=0)}


def metrics_of(scores: dict[str, np.ndarray]) -> dict:
  """MultiLabelEvaluator's metrics of whole-split arrays."""
  from jaxgraphs.evaluation.multilabel_metrics import MultiLabelEvaluator

  evaluator = MultiLabelEvaluator()
  evaluator.update(scores["probs"], scores["labels"], scores["label_weights"], scores["mask"])
  return evaluator.result()


def _define_flags():
  flags.DEFINE_multi_string("workdir", None, "A finished run (repeat to fuse several).")
  flags.DEFINE_bool("ten_crop", False, "Average the ten crops of each image.")
  flags.DEFINE_string("split", None, "Split to evaluate (default: each run's config.data.eval_split).")
  flags.DEFINE_string("checkpoint", "latest", "'latest', 'best' or a step number, for every run.")
  flags.DEFINE_string("out", None, "Write the fused and per-run metrics to this JSON file.")


def main(argv):
  """Evaluates every run, fuses them and prints the metrics."""
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from jaxgraphs.training import run_dirs
  from jaxgraphs.training.runtime import prepare_host

  workdirs = [run_dirs.absolute(w) for w in FLAGS.workdir]
  try:
    # Read before TensorFlow and JAX start, so a wrong path is reported at once.
    configs = [run_dirs.config_from_workdir(w) for w in workdirs]
    prepare_host()
    runs = [run_probabilities(w, FLAGS.checkpoint, FLAGS.split, FLAGS.ten_crop, c) for w, c in zip(workdirs, configs)]
    fused = fuse(runs, workdirs)
  except (FileNotFoundError, ValueError) as error:  # no such run or checkpoint, runs that do not match
    raise ConfigError(str(error)) from None
  result = {
    "ten_crop": FLAGS.ten_crop,
    "workdirs": workdirs,
    "fused": metrics_of(fused),
    "runs": {w: metrics_of(r) for w, r in zip(workdirs, runs)},
  }
  for name, metrics in [("fused", result["fused"]), *result["runs"].items()]:
    scalars = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if isinstance(v, float))
    print(f"{name}: {scalars}")
  if FLAGS.out:
    from jaxgraphs.training import run_dirs

    run_dirs.write_json(run_dirs.absolute(FLAGS.out), result)  # local or gs://


if __name__ == "__main__":
  _define_flags()
  flags.mark_flags_as_required(["workdir"])
  from jaxgraphs import cli

  cli.run(main)
