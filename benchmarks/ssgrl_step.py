"""SSGRL's train step at the paper's size (576x576, ResNet-101, COCO's 80 classes): images/s, compiled memory and the
backbone/head time split, against two baselines measured in the same run.

  JAX_PLATFORMS=cpu python -m benchmarks.ssgrl_step [--batch=1] [--size=576] [--config=ssgrl_coco] [--reps=3]
  JAX_PLATFORMS=cpu python -m benchmarks.ssgrl_step --tiny      # configs/ssgrl_shapes.py:tiny, 32 px, seconds

Every row is the trainer's own `Experiment.jit_train_step` of `configs/<--config>.py` (ssgrl_coco: 80 classes;
ssgrl_voc2007: 20), timed by benchmarks/step_timing.py: the multi-label task's loss, the config's Adam 1e-5
with everything before layer4 frozen (`config.optimizer.freeze`) and its plateau schedule. The datasets are not
needed: random batches, the built-in word vectors and random label co-occurrence counts written where the
label graph is looked up (the step's time does not depend on their values).
  ssgrl               the config as it is: stages before layer4 cut from the gradient (models/ssgrl.py)
  ssgrl, mask only    the same network frozen only by the optimiser mask, as `config.optimizer.freeze` alone
                      would do: XLA still computes the backward pass through layers 1-3 (baseline 1)
  resnet linear       the Table 5 baseline (`:baseline`: average pool + linear), frozen the same way (baseline 2,
                      the 'x baseline' column's reference)
Time split: the SSGRL head's forward + backward alone on a fixed feature map of layer4's shape vs the whole step.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import sys
import tempfile

import jax
import jax.numpy as jnp
import numpy as np

if __package__ in (None, ""):  # run as `python benchmarks/ssgrl_step.py`: the repository root holds `benchmarks`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks import step_timing
from jaxgraphs import models
from jaxgraphs.data import label_graph, label_priors, pipeline, sources
from jaxgraphs.models import ssgrl
from jaxgraphs.models.backbones.common import average_pool_2x2
from jaxgraphs.models.backbones.resnet import ResNet
from jaxgraphs.models.heads.ssgrl_head import SSGRLHead

FROZEN = ("stem", "layer1", "layer2", "layer3")
MASK_ONLY = "ssgrl_mask_only"
HEAD_FIELDS = (
  "joint_dim",
  "attention_hidden_dim",
  "time_steps",
  "use_semantic_decoupling",
  "concat_word_vectors",
  "use_interaction",
  "concat_initial_state",
  "shared_reset_gate_bug",
  "dtype",
)


class MaskOnlySSGRL(ssgrl.SSGRL):
  """SSGRL with the frozen stages' batch norm in inference mode but their gradient computed (and then dropped)."""

  def _backbone(self):
    kwargs = dict(self.backbone_kwargs or {})
    return ResNet(depth=self.depth, frozen_bn=self.frozen_stages, dtype=self.dtype, name="backbone", **kwargs)


def _mask_only_factory(cfg, data_info, dtype) -> MaskOnlySSGRL:
  module = ssgrl.build_ssgrl(cfg, data_info, dtype)
  fields = (field.name for field in dataclasses.fields(ssgrl.SSGRL) if field.name not in ("parent", "name"))
  return MaskOnlySSGRL(**{name: getattr(module, name) for name in fields})


@contextlib.contextmanager
def mask_only_model():
  """`config.model.name='ssgrl_mask_only'` builds MaskOnlySSGRL while the benchmark builds its experiment."""
  models.MODELS[MASK_ONLY] = models.ModelEntry(_mask_only_factory, ssgrl.data_requests)
  try:
    yield
  finally:
    del models.MODELS[MASK_ONLY]


def frozen_as_in_the_paper(config) -> None:
  """Everything before layer4 frozen, as the paper configs have it (the built-in config trains everything)."""
  config.model.frozen_stages = FROZEN
  config.optimizer.freeze = ssgrl.freeze_regexes(FROZEN)
  if config.model.name == "multilabel_classifier":
    config.model.backbone_kwargs["frozen_bn"] = FROZEN


def write_random_label_graph(config, rng: np.random.Generator) -> None:
  """Random co-occurrence counts where the data layer looks for the train split's (`adjacency_cache_dir`), so a
  dataset that is not prepared here (COCO, VOC) is not needed."""
  import tensorflow_datasets as tfds

  info = pipeline.dataset_info(config.data)
  version = str(tfds.builder(info.tfds_name, data_dir=config.data.data_dir).info.version)
  stem = label_graph.cache_stem(info.tfds_name, version, info.train_split, info.positive_label_key)
  counts = rng.integers(0, 100, (info.num_classes,) * 2)
  counts = counts + counts.T
  np.fill_diagonal(counts, counts.sum(axis=1))  # each class seen at least as often as any pair it is in
  path = os.path.join(config.model.adjacency_cache_dir, stem)
  np.save(path + ".npy", counts)
  # The description the data layer compares before it trusts a cached count (label_graph.tfds_cooccurrence_adjacency).
  description = {
    "dataset": info.tfds_name,
    "version": version,
    "split": info.train_split,
    "label_key": info.positive_label_key,
  }
  with open(path + ".json", "w") as f:
    json.dump(description, f)


def head_seconds(model: ssgrl.SSGRL, images: np.ndarray, reps: int) -> tuple[float, tuple[int, ...]]:
  """(median seconds, feature shape) of the forward + backward of `model`'s head alone on a fixed feature map of
  the shape its backbone gives for `images`."""
  backbone = ResNet(depth=model.depth, **dict(model.backbone_kwargs or {}))
  outputs, _ = jax.eval_shape(backbone.init_with_output, jax.random.key(0), images)
  shape = outputs["layer4"].shape
  if model.feature_pool == 2:
    shape = jax.eval_shape(average_pool_2x2, jax.ShapeDtypeStruct(shape, jnp.float32)).shape
  elif model.feature_pool != 1:
    shape = (shape[0], shape[1] // model.feature_pool, shape[2] // model.feature_pool, shape[3])
  features = jnp.asarray(np.random.default_rng(0).normal(size=shape), jnp.float32)
  words, adjacency = jnp.asarray(model.word_vectors.value), jnp.asarray(model.adjacency.value)
  head = SSGRLHead(**{name: getattr(model, name) for name in HEAD_FIELDS})
  params = jax.jit(head.init)(jax.random.key(0), features, words, adjacency)["params"]
  grad = jax.grad(lambda p: jnp.sum(head.apply({"params": p}, features, words, adjacency)["logits"]))
  return step_timing.median_seconds(grad, params, reps=reps), shape


def main(argv=None):
  """Times the SSGRL step and its two baselines; prints the table and the head's share."""
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=1)
  parser.add_argument("--size", type=int, default=None, help="image side (default 576; --tiny: 32)")
  parser.add_argument("--config", default="ssgrl_coco", help="an SSGRL paper config: ssgrl_coco, ssgrl_voc2007, ...")
  parser.add_argument("--reps", type=int, default=3, help="timed steps after the first")
  parser.add_argument("--tiny", action="store_true", help="configs/ssgrl_shapes.py:tiny (the unit tests' widths)")
  args = parser.parse_args(argv)
  size = args.size or (32 if args.tiny else 576)
  name, suffix = ("ssgrl_shapes", ",tiny") if args.tiny else (args.config, "")
  rng = np.random.default_rng(0)

  with tempfile.TemporaryDirectory() as data_dir:

    def config_of(variant):
      config = step_timing.load_config(name, variant + suffix)
      config.batch_size = args.batch
      config.data.data_dir = data_dir  # a built-in source is generated here to count its label graph
      if config.model.name == "ssgrl":
        config.model.word_vectors = label_priors.BUILTIN_WORD_VECTORS
        config.model.adjacency_cache_dir = data_dir
      frozen_as_in_the_paper(config)
      return config

    full = config_of("full")
    if sources.get_source(full.data.source).prepare is None:
      write_random_label_graph(full, rng)
    classes = pipeline.dataset_info(full.data).num_classes
    batch = {
      "image": rng.normal(size=(args.batch, size, size, 3)).astype(np.float32),
      "labels": (rng.random((args.batch, classes)) < 0.05).astype(np.float32),
      "label_weights": np.ones((args.batch, classes), np.float32),
      "mask": np.ones(args.batch, np.float32),
    }
    experiment, state = step_timing.prepare(full, batch)
    rows = [step_timing.time_train_step(experiment, state, batch, "ssgrl", args.reps)]
    mask_only = config_of("full")
    mask_only.model.name = MASK_ONLY
    with mask_only_model():
      rows.append(step_timing.measure("ssgrl, mask only (baseline 1)", mask_only, batch, args.reps))
    backbone = full.model.backbone
    baseline = f"{backbone} linear (baseline 2)"
    rows.append(step_timing.measure(baseline, config_of("baseline"), batch, args.reps))
    head, shape = head_seconds(experiment.model, batch["image"], args.reps)

  print(
    f"\nconfigs/{name}.py{':' + suffix[1:] if suffix else ''}, {backbone}, batch {args.batch}, {size}x{size}, "
    f"{classes} classes, {full.model.dtype}; {step_timing.platform_line()}"
  )
  step_timing.print_table(rows, baseline)
  total = rows[0].step_s
  print(
    f"head ({'x'.join(map(str, shape[1:]))} -> {classes} classes) forward+backward: {1000 * head:.1f} ms "
    f"= {100 * head / total:.1f}% of the ssgrl step; backbone and optimiser: {100 * (1 - head / total):.1f}%"
  )
  return rows


if __name__ == "__main__":
  main()
