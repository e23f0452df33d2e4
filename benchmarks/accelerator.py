r"""One call on an accelerator: the train step of every paper model at paper size in fp32 and bf16, one table.

  python benchmarks/accelerator.py                                   # a GPU / TPU: < 8 minutes on one H100-class GPU
  python benchmarks/accelerator.py --models=rgnet,linknet --steps=20 --json=/tmp/accelerator.json
  JAX_PLATFORMS=cpu python benchmarks/accelerator.py --quick         # the configs' :tiny variants, seconds (CI)
  JAX_PLATFORMS=cpu python benchmarks/accelerator.py --quick --torch # ... and the PyTorch rows, tiny, on the CPU
  JAX_PLATFORMS=cpu python benchmarks/accelerator.py --compile_only  # trace + compile s of each full-size fp32 step

Needs nothing but jax, flax, optax, numpy and ml_collections (the library's configs and models): it never imports
the trainer, whose data pipeline imports TensorFlow, so it runs on a bare accelerator image. For each model:
  rgnet    configs/rgnet_ava.py (FCN-A-G: DenseNet-121 at output stride 8, DenseASPP, 3 graph layers), 300 px, batch 32
  ssgrl    configs/ssgrl_coco.py (ResNet-101, stages before layer4 frozen, SD + GGNN), 576 px, 80 classes, batch 16
  linknet  configs/linknet_vg_predcls.py (VGG-16 frozen convolutions, fc6/fc7, REM/GLEM), 592 px, 20 of 64 objects,
           256 pairs per image, batch 6 (the reference's batch on one GPU)
  detector configs/faster_rcnn_vg150.py (VGG-16 Faster R-CNN, 20 VG anchors, 256 RoIs), 592 px, 20 boxes, batch 6
The batches fit one 80 GB GPU in fp32 (`--batch` scales them all). `--quick` uses configs/rgnet_shapes.py:tiny,
ssgrl_shapes.py:tiny, linknet_shapes.py:predcls,tiny and faster_rcnn_shapes.py:tiny at 32-64 px, batch 2.

The step: `jax.value_and_grad` of the project's own task loss (jaxgraphs.tasks.multilabel / aesthetics / scene_graph
/ detection, built directly: their config factories look the data source up, which imports TensorFlow) on random
batches shaped as the pipelines shape them, then optax SGD (momentum 0.9, lr 1e-3) on every parameter that the
config's `optimizer.freeze` leaves trainable (the frozen ones get no update, so XLA drops their weight gradients,
as in the trainer); `jax.jit` with the state donated. bf16 rows set `config.model.dtype='bfloat16'` (parameters and
optimiser state stay fp32). Not the trainer's optimiser (Adam for RGNet and SSGRL, clipping, schedules): one
optimiser for every row, so rows and frameworks compare the networks; benchmarks/*_step.py time the trainer's step.

Columns: images/s and s/step (median of `--steps` steps after 2 warm-up steps, each waited for with
block_until_ready); trace s (jit tracing + lowering to StableHLO) and compile s (XLA); peak MiB (the device's
peak bytes in use where the platform reports it, marked 'dev': the whole process so far, so a row never shows less
than the rows before it; else XLA's compiled estimate of the step: temporaries + arguments + outputs - donated,
marked 'xla'); GFLOP per step from XLA's cost analysis of the compiled step; MFU = those FLOPs / s/step / the
device's dense peak (PEAK_TFLOPS: bf16 for bf16 rows, TF32 for fp32 rows on NVIDIA GPUs, since XLA runs fp32 dot
products in TF32 there by default; '-' for an unknown device such as a CPU).

PyTorch rows ('torch', where torch + torchvision import; `--no_torch` skips them; on a CPU only with `--torch`):
the same backbones from torchvision with stand-in heads of about the same cost, on the same batch size and image
size, SGD momentum 0.9 on the same trainable parts, eager; fp32 rows plain, bf16 rows under
`torch.autocast(bfloat16)` (AMP: fp32 weights). Stand-ins (see `torch_model`): RGNet = DenseNet-121 dilated to
output stride 8 + 4 dilated 3x3 layers + a 3-layer region graph (softmax similarity) + LSE pooling; SSGRL =
ResNet-101 (stem-layer3 frozen) + 2x2 pool + per-class attention + 3 GRU steps over a label graph + per-class
classifiers; LinkNet = VGG-16 features[:-1] (frozen) + RoIAlign 7x7 of the objects and of the pairs' union boxes
through fc6/fc7 + a pair classifier; detector = torchvision's FasterRCNN built to the config's recipe (VGG-16 features[:-1], the
JAX detector's exact anchors, RPN width, sampling and fc6/fc7: benchmarks/torch_detector.py, as
benchmarks/detector_step.py uses it). Their peak MiB is torch's max_memory_allocated on CUDA ('dev'), '-' on a CPU; their GFLOP and MFU use the
JAX row's FLOPs of the same model and dtype (same network and batch, so the same work).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import sys
import time
import types
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

if __package__ in (None, ""):  # run as `python benchmarks/accelerator.py`: the repository root holds `jaxgraphs`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from jaxgraphs import models
from jaxgraphs.configs import common as config_loader
from jaxgraphs.models.backbones.common import implementation_for_platform, kernel_implementation
from jaxgraphs.training.optimizers import regex_mask

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2**20
MODELS = ("rgnet", "ssgrl", "linknet", "detector")
DTYPES = ("float32", "bfloat16")
WARMUP_STEPS = 2
CHEAP_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}

# Dense peak TFLOP/s per chip: (bf16, fp32 as XLA runs it). NVIDIA: SXM parts, fp32 = TF32 tensor cores (XLA's
# default precision for fp32 dots on Ampere and later); TPUs: fp32 dots run as bf16 passes, so the bf16 peak.
PEAK_TFLOPS = {
  "h200": (989.0, 494.5),
  "h100": (989.0, 494.5),
  "a100": (312.0, 156.0),
  "tpu v4": (275.0, 275.0),
  "tpu v5 lite": (197.0, 197.0),
  "tpu v5e": (197.0, 197.0),
  "tpu v5p": (459.0, 459.0),
  "tpu v5": (459.0, 459.0),  # v5p reports itself as 'TPU v5'; checked after 'v5 lite'
}


@dataclasses.dataclass(frozen=True)
class Spec:
  """One model of the table: its config, input size, batch and how its random batch is made."""

  config: str  # configs/<config>.py
  arg: str | None
  size: int
  batch: int
  objects: int = 0  # real objects per image (scene graphs, boxes)
  max_objects: int = 0  # padded to
  max_relations: int = 0
  pairs: int = 0  # sampled pairs per image (LinkNet)


FULL = {
  "rgnet": Spec("rgnet_ava", None, 300, 32),
  "ssgrl": Spec("ssgrl_coco", None, 576, 16),
  "linknet": Spec("linknet_vg_predcls", None, 592, 6, objects=20, max_objects=64, max_relations=128, pairs=256),
  "detector": Spec("faster_rcnn_vg150", None, 592, 6, objects=20, max_objects=64),
}
QUICK = {
  "rgnet": Spec("rgnet_shapes", "tiny", 48, 2),
  "ssgrl": Spec("ssgrl_shapes", "tiny", 32, 2),
  "linknet": Spec("linknet_shapes", "predcls,tiny", 64, 2, objects=4, max_objects=8, max_relations=16, pairs=16),
  "detector": Spec("faster_rcnn_shapes", "tiny", 64, 2, objects=4, max_objects=8),
}

# Class and predicate counts of the configs' sources (jaxgraphs.data.sources imports TensorFlow, so not asked).
SOURCE_CLASSES = {
  "coco/2014": (80, 0),
  "ava": (2, 0),
  "vg150": (151, 51),  # '__background__' first in both
  "builtin_shapes/tiny": (12, 0),
  "builtin_shapes/tiny:composition": (2, 0),
  "builtin_shapes/tiny:scene_graph": (13, 9),
}


@dataclasses.dataclass
class Row:
  """One measured train step."""

  model: str
  dtype: str
  framework: str  # 'jax' or 'torch'
  batch: int
  size: int
  step_s: float | None = None  # None with --compile_only
  trace_s: float | None = None
  compile_s: float | None = None
  peak_bytes: int | None = None
  peak_source: str = "-"  # 'dev' (device allocator) or 'xla' (compiled estimate)
  flops: float | None = None
  mfu: float | None = None
  loss: float | None = None
  init_s: float | None = None  # compiling and running the initialiser (not in the table)

  @property
  def images_per_s(self) -> float | None:
    """Images per second of the steady state."""
    return None if self.step_s is None else self.batch / self.step_s


def load_config(spec: Spec, dtype: str):
  """configs/<spec.config>.py:<spec.arg> with `config.model.dtype` set."""
  config = config_loader.load_config(os.path.join(REPO, "configs", f"{spec.config}.py"), spec.arg)
  config.model.dtype = dtype
  return config


def data_info(config, rng: np.random.Generator):
  """What build_model and the tasks read of a dataset, for the config's source, with random label priors."""
  num_classes, num_predicates = SOURCE_CLASSES[config.data.source]
  info = types.SimpleNamespace(
    source=config.data.source,
    num_classes=num_classes,
    class_names=tuple(f"class_{i}" for i in range(num_classes)),
    predicate_names=tuple(f"predicate_{i}" for i in range(num_predicates)),
    word_vectors=None,
    label_adjacency=None,
  )
  if config.model.name == "ssgrl":  # SSGRL's data_requests: GloVe vectors (C, word_dim), co-occurrence (C, C)
    info.word_vectors = rng.normal(size=(num_classes, int(config.model.word_dim))).astype(np.float32)
    info.label_adjacency = rng.uniform(0, 1, (num_classes, num_classes)).astype(np.float32)
  return info


def build_task(config, info):
  """The project's task object for `config.task` (its factory's work, without the data-source lookup)."""
  name = config.task.name
  if name == "multilabel":
    from jaxgraphs.tasks.multilabel import MultiLabelTask

    return MultiLabelTask(info.class_names)
  if name == "aesthetics":
    from jaxgraphs.tasks.aesthetics import AestheticsTask

    return AestheticsTask(config.task.get("kind", "binary"), config.task.get("emd_r", 2.0))
  if name == "scene_graph":
    from jaxgraphs.tasks import scene_graph

    cfg = scene_graph.default_task_config()
    cfg.update(config.task)
    return scene_graph.SceneGraphTask(
      cfg.mode,
      info.class_names,
      info.predicate_names,
      None,  # training triplets: only for zero-shot recall at evaluation
      object_weight=cfg.object_weight,
      relation_weight=cfg.relation_weight,
      global_weight=cfg.global_weight,
      detector_weight=cfg.detector_weight,
      global_activation=cfg.global_activation,
    )
  if name == "detection":
    from jaxgraphs.tasks import detection

    cfg = detection.default_task_config()
    cfg.update(config.task)
    return detection.DetectionTask(
      info.class_names,
      rpn_class_weight=cfg.rpn_class_weight,
      rpn_box_weight=cfg.rpn_box_weight,
      class_weight=cfg.class_weight,
      box_weight=cfg.box_weight,
    )
  raise ValueError(f"config.task.name={name!r}: no batch maker for it here")


# ---- random batches shaped as the pipelines shape them --------------------------------------------------------
def random_boxes(rng: np.random.Generator, batch: int, objects: int, size: int) -> np.ndarray:
  """(batch, objects, 4) boxes x1, y1, x2, y2 in inclusive-corner pixels, 8 px to half the image."""
  sides = np.exp(rng.uniform(np.log(8), np.log(size / 2), (batch, objects, 2))).round()
  corners = (rng.uniform(0, 1, (batch, objects, 2)) * (size - sides)).round()
  return np.concatenate([corners, corners + sides - 1], axis=-1).astype(np.float32)


def make_batch(task_name: str, spec: Spec, info, rng: np.random.Generator) -> dict[str, np.ndarray]:
  """A random batch with the keys and shapes of the task's train pipeline (benchmarks/linknet_step.py and
  detector_step.py make the same; they import the trainer, so they are not imported here)."""
  b, size = spec.batch, spec.size
  batch = {"image": rng.normal(size=(b, size, size, 3)).astype(np.float32), "mask": np.ones(b, np.float32)}
  if task_name == "multilabel":
    batch["labels"] = (rng.uniform(size=(b, info.num_classes)) < 0.1).astype(np.float32)
    batch["label_weights"] = np.ones((b, info.num_classes), np.float32)
    return batch
  if task_name == "aesthetics":
    batch["label"] = rng.integers(0, 2, b).astype(np.int32)
    return batch
  boxes = np.zeros((b, spec.max_objects, 4), np.float32)
  boxes[:, : spec.objects] = random_boxes(rng, b, spec.objects, size)
  object_mask = np.zeros((b, spec.max_objects), np.float32)
  object_mask[:, : spec.objects] = 1
  labels = np.where(object_mask > 0, rng.integers(1, info.num_classes, (b, spec.max_objects)), 0).astype(np.int32)
  batch.update(object_boxes=boxes, object_labels=labels, object_mask=object_mask)
  if task_name == "detection":
    batch["image_size"] = np.full((b, 2), size, np.int32)
    return batch
  # Scene graphs (PredCls): `pairs` sampled pairs per image, a quarter of them annotated.
  candidates = np.array([(s, o) for s in range(spec.objects) for o in range(spec.objects) if s != o])
  pairs = np.stack(
    [candidates[rng.choice(len(candidates), spec.pairs, replace=len(candidates) < spec.pairs)] for _ in range(b)]
  ).astype(np.int32)
  foreground = min(spec.pairs // 4, spec.max_relations)
  num_predicates = len(info.predicate_names) - 1
  pair_labels = np.zeros((b, spec.pairs), np.int32)
  pair_labels[:, :foreground] = rng.integers(1, num_predicates + 1, (b, foreground))
  relations = np.zeros((b, spec.max_relations, 3), np.int32)
  relations[:, :foreground, :2] = pairs[:, :foreground]
  relations[:, :foreground, 2] = pair_labels[:, :foreground]
  relation_mask = np.zeros((b, spec.max_relations), np.float32)
  relation_mask[:, : min(2 * spec.objects, foreground)] = 1
  present = np.zeros((b, info.num_classes), np.float32)
  np.put_along_axis(present, labels, 1.0, axis=1)
  present[:, 0] = 0
  batch.update(
    labels=present,
    label_weights=np.ones_like(present),
    relations=relations,
    relation_mask=relation_mask,
    num_cut_objects=np.zeros(b, np.int32),
    num_cut_relations=np.zeros(b, np.int32),
    pairs=pairs,
    pair_labels=pair_labels,
    pair_mask=np.ones((b, spec.pairs), np.float32),
  )
  return batch


# ---- the JAX step ----------------------------------------------------------------------------------------------
@dataclasses.dataclass
class JaxStep:
  """A model's jitted train step and what builds its state."""

  init: Any  # jitted rng -> state
  step: Any  # jitted (state, batch) -> (state, loss), state donated
  kernels: str


def make_step(config, info, task) -> JaxStep:
  """value_and_grad of the task loss + SGD momentum on the trainable parameters, jitted with the state donated."""
  model = models.build_model(config.model, info)
  kernels = implementation_for_platform(jax.devices()[0].platform)
  freeze = tuple(config.optimizer.get("freeze", ()))

  def optimizer(params):
    if not freeze:
      return optax.sgd(1e-3, momentum=0.9)
    frozen = regex_mask(params, freeze)
    labels = jax.tree.map(lambda f: "frozen" if f else "trained", frozen)
    return optax.multi_transform({"trained": optax.sgd(1e-3, momentum=0.9), "frozen": optax.set_to_zero()}, labels)

  def init(rng, example):
    dummy = {k: jnp.zeros((1,) + v.shape[1:], v.dtype) for k, v in example.items()}
    with kernel_implementation(kernels):
      variables = dict(model.init({"params": rng, "dropout": rng}, **task.model_inputs(dummy), train=False))
    params = variables.pop("params")
    return {"params": params, "model_state": variables, "opt_state": optimizer(params).init(params)}

  def step(state, batch):
    def loss_fn(params):
      variables = {"params": params, **state["model_state"]}
      mutable = list(state["model_state"])
      rngs = {"dropout": jax.random.key(0)}
      with kernel_implementation(kernels):
        if not mutable:  # flax returns (outputs, {}) for mutable=[]: ask for nothing mutable instead
          return task.loss(model.apply(variables, **task.model_inputs(batch), train=True, rngs=rngs), batch)[0], {}
        outputs, model_state = model.apply(
          variables, **task.model_inputs(batch), train=True, rngs=rngs, mutable=mutable
        )
      return task.loss(outputs, batch)[0], model_state

    (loss, model_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    updates, opt_state = optimizer(state["params"]).update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    return {"params": params, "model_state": dict(model_state), "opt_state": opt_state}, loss

  return JaxStep(init=init, step=jax.jit(step, donate_argnums=0), kernels=kernels)


def peak_tflops(device, dtype: str) -> float | None:
  """The device's dense peak TFLOP/s for `dtype` (PEAK_TFLOPS), None where unknown."""
  kind = device.device_kind.lower()
  for name, (bf16, fp32) in PEAK_TFLOPS.items():
    if name in kind:
      return bf16 if dtype == "bfloat16" else fp32
  return None


def _flops(compiled) -> float | None:
  analysis = compiled.cost_analysis()
  if isinstance(analysis, (list, tuple)):  # older JAX: one dict per computation
    analysis = analysis[0] if analysis else None
  flops = (analysis or {}).get("flops")
  return float(flops) if flops and flops > 0 else None


def _xla_peak(compiled) -> int:
  m = compiled.memory_analysis()
  return m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes - m.alias_size_in_bytes


def device_peak_bytes() -> int | None:
  """Peak bytes in use on the first device so far, where its platform reports them (GPUs, TPUs; not XLA's CPU)."""
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get("peak_bytes_in_use")


def measure_jax(name: str, spec: Spec, dtype: str, steps: int, compile_only: bool, seed: int = 0) -> Row:
  """Compiles (and unless `compile_only` runs) one model's train step; one Row."""
  rng = np.random.default_rng(seed)
  config = load_config(spec, dtype)
  info = data_info(config, rng)
  task = build_task(config, info)
  batch = make_batch(config.task.name, spec, info, rng)
  jstep = make_step(config, info, task)
  example = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch.items()}
  abstract_state = jax.eval_shape(lambda: jstep.init(jax.random.key(0), example))
  start = time.perf_counter()
  lowered = jstep.step.trace(abstract_state, example).lower()  # tracing + StableHLO
  trace_s = time.perf_counter() - start
  start = time.perf_counter()
  compiled = lowered.compile()
  compile_s = time.perf_counter() - start
  row = Row(name, dtype, "jax", spec.batch, spec.size, trace_s=trace_s, compile_s=compile_s, flops=_flops(compiled))
  row.peak_bytes, row.peak_source = _xla_peak(compiled), "xla"
  if compile_only:
    return row
  start = time.perf_counter()
  # Runs once: on a CPU, XLA's cheapest compile (the initialiser otherwise takes as long as the step to compile).
  options = CHEAP_COMPILE if jax.devices()[0].platform == "cpu" else {}
  init = jax.jit(lambda key: jstep.init(key, example)).lower(jax.random.key(seed)).compile(compiler_options=options)
  state = init(jax.random.key(seed))
  jax.block_until_ready(state)
  row.init_s = time.perf_counter() - start
  device_batch = jax.device_put(batch)
  seconds = []
  for i in range(WARMUP_STEPS + steps):
    start = time.perf_counter()
    state, loss = compiled(state, device_batch)
    jax.block_until_ready((state, loss))
    if i >= WARMUP_STEPS:
      seconds.append(time.perf_counter() - start)
  row.step_s = statistics.median(seconds)
  row.loss = float(loss)
  if not math.isfinite(row.loss):
    raise FloatingPointError(f"{name} {dtype}: the loss is {row.loss}")
  peak = device_peak_bytes()
  if peak is not None:
    row.peak_bytes, row.peak_source = peak, "dev"
  tflops = peak_tflops(jax.devices()[0], dtype)
  if tflops and row.flops:
    row.mfu = row.flops / row.step_s / (tflops * 1e12)
  del state
  return row


# ---- the PyTorch stand-ins -------------------------------------------------------------------------------------
def import_torch():
  """(torch, torchvision) or (None, None) where they are not installed."""
  try:
    import torch
    import torchvision
  except ImportError:
    return None, None
  return torch, torchvision


def torch_model(name: str, config, info, spec: Spec, torch, torchvision):
  """The PyTorch network standing in for `name` (module docstring), and a loss(model, batch) -> scalar."""
  nn, F = torch.nn, torch.nn.functional
  from torchvision.ops import roi_align

  if name == "rgnet":
    features = torchvision.models.densenet121(weights=None).features
    # Output stride 8 as the JAX DenseNet: no pooling after dense blocks 2 and 3, their successors dilated 2 and 4.
    features.transition2.pool, features.transition3.pool = nn.Identity(), nn.Identity()
    for block, rate in ((features.denseblock3, 2), (features.denseblock4, 4)):
      for layer in block.children():
        layer.conv2.dilation, layer.conv2.padding = (rate, rate), (rate, rate)
    head = getattr(config.model, "head", None)
    dim = int(head.get("graph_dim", 512)) if head is not None and hasattr(head, "get") else 512

    class RGNet(nn.Module):
      def __init__(self):
        super().__init__()
        self.features = features
        # DenseASPP stand-in: four dilated 3x3 layers (rates 3, 6, 12, 18) on densely concatenated maps.
        self.aspp = nn.ModuleList(
          nn.Conv2d(1024 + 64 * i, 64, 3, padding=r, dilation=r) for i, r in enumerate((3, 6, 12, 18))
        )
        self.reduce = nn.Conv2d(1024 + 256, dim, 1)
        self.phi, self.theta = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.graph = nn.ModuleList(nn.Linear(dim, dim) for _ in range(3))
        self.classifier = nn.Linear(dim, 2)

      def forward(self, x):
        x = F.relu(self.features(x))
        for conv in self.aspp:
          x = torch.cat([x, F.relu(conv(x))], 1)
        x = F.relu(self.reduce(x)).flatten(2).transpose(1, 2)  # (B, regions, dim)
        similarity = torch.softmax(self.phi(x) @ self.theta(x).transpose(1, 2), dim=-1)
        for layer in self.graph:
          x = F.relu(similarity @ layer(x))
        scores = self.classifier(x)  # per-region 2-class scores, LSE-pooled (r = 4)
        return (torch.logsumexp(4 * scores, dim=1) - math.log(scores.shape[1])) / 4

    return RGNet(), lambda model, b: F.cross_entropy(model(b["image"]), b["label"].long())

  if name == "ssgrl":
    resnet = torchvision.models.resnet101(weights=None)
    frozen = nn.Sequential(
      resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, resnet.layer1, resnet.layer2, resnet.layer3
    )
    frozen.requires_grad_(False)  # as the config: everything before layer4 gets no gradient
    classes, words = info.num_classes, torch.as_tensor(info.word_vectors)
    adjacency = torch.as_tensor(info.label_adjacency)

    class SSGRL(nn.Module):
      def __init__(self):
        super().__init__()
        self.frozen, self.layer4 = frozen, resnet.layer4
        self.register_buffer("words", words)
        self.register_buffer("adjacency", adjacency)
        self.image_proj, self.word_proj = nn.Conv2d(2048, 1024, 1), nn.Linear(words.shape[1], 1024)
        self.attention = nn.Linear(1024, 1)
        self.gru = nn.GRUCell(2 * 2048, 2048)
        self.out = nn.Linear(2 * 2048, 2048)
        self.classifier = nn.Parameter(torch.randn(classes, 2048) * 0.01)

      def forward(self, x):
        with torch.no_grad():
          x = self.frozen(x)
        features = F.avg_pool2d(self.layer4(x), 2, ceil_mode=True).flatten(2).transpose(1, 2)  # (B, HW, 2048)
        joint = torch.tanh(self.image_proj.weight.flatten(1) @ features.transpose(1, 2)).transpose(
          1, 2
        )  # (B, HW, 1024)
        joint = joint[:, None] * self.word_proj(self.words)[None, :, None]  # (B, C, HW, 1024)
        weights = torch.softmax(self.attention(joint).squeeze(-1), dim=-1)  # semantic decoupling
        h = weights @ features  # (B, C, 2048)
        nodes = h
        for _ in range(3):  # GGNN over the label graph, both directions
          messages = torch.cat([self.adjacency @ h, self.adjacency.T @ h], -1)
          h = self.gru(messages.flatten(0, 1), h.flatten(0, 1)).view_as(h)
        out = torch.tanh(self.out(torch.cat([h, nodes], -1)))
        return (out * self.classifier).sum(-1)

    return SSGRL(), lambda model, b: F.binary_cross_entropy_with_logits(model(b["image"]), b["labels"])

  if name == "linknet":
    vgg = torchvision.models.vgg16(weights=None)
    convs = vgg.features[:-1]
    convs.requires_grad_(False)  # the config freezes the VGG convolutions
    num_predicates = len(info.predicate_names)

    class LinkNet(nn.Module):
      def __init__(self):
        super().__init__()
        self.convs, self.fc = convs, vgg.classifier[:-1]  # fc6-ReLU-dropout-fc7-ReLU-dropout
        self.embed = nn.Embedding(info.num_classes, 200)
        self.objects = nn.Sequential(nn.Linear(4096 + 200, 256), nn.ReLU(), nn.Linear(256, 256))
        self.predicate = nn.Linear(2 * 256 + 4096, num_predicates)

      def forward(self, images, boxes, labels, pairs):
        maps = self.convs(images)
        b = boxes.shape[0]
        index = torch.arange(b, device=images.device, dtype=boxes.dtype)
        subject = torch.gather(boxes, 1, pairs[..., :1].expand(-1, -1, 4))
        obj = torch.gather(boxes, 1, pairs[..., 1:].expand(-1, -1, 4))
        union = torch.cat(
          [torch.minimum(subject[..., :2], obj[..., :2]), torch.maximum(subject[..., 2:], obj[..., 2:])], -1
        )

        def pooled(rois):  # RoIAlign 7x7 at stride 16 -> fc6/fc7
          indexed = torch.cat([index[:, None, None].expand(-1, rois.shape[1], 1), rois], -1).flatten(0, 1)
          return self.fc(roi_align(maps, indexed, 7, 1 / 16, 2).flatten(1)).view(b, rois.shape[1], -1)

        objects = self.objects(torch.cat([pooled(boxes), self.embed(labels)], -1))  # (B, N, 256)
        s = torch.gather(objects, 1, pairs[..., :1].expand(-1, -1, 256))
        o = torch.gather(objects, 1, pairs[..., 1:].expand(-1, -1, 256))
        return self.predicate(torch.cat([s, o, pooled(union)], -1))

    def loss(model, b):
      logits = model(b["image"], b["object_boxes"], b["object_labels"].long(), b["pairs"].long())
      return F.cross_entropy(logits.flatten(0, 1), b["pair_labels"].long().flatten())

    return LinkNet(), loss

  if name == "detector":
    from benchmarks.torch_detector import torch_faster_rcnn

    model = torch_faster_rcnn(config, info.num_classes, spec.size)

    def loss(model, b):
      targets = [
        {
          "boxes": boxes[mask > 0] + torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device),
          "labels": labels[mask > 0].long(),
        }
        for boxes, labels, mask in zip(b["object_boxes"], b["object_labels"], b["object_mask"])
      ]
      return sum(model(list(b["image"]), targets).values())

    return model, loss
  raise ValueError(name)


def measure_torch(name: str, spec: Spec, dtype: str, steps: int, torch, torchvision, seed: int = 0) -> Row:
  """One stand-in network's eager train step, fp32 or under bf16 autocast; one Row (FLOPs filled in by main)."""
  device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
  torch.manual_seed(seed)
  rng = np.random.default_rng(seed)
  config = load_config(spec, dtype)
  info = data_info(config, rng)
  batch = make_batch(config.task.name, spec, info, rng)
  model, loss_fn = torch_model(name, config, info, spec, torch, torchvision)
  model = model.to(device).train()
  tensors = {k: torch.as_tensor(v).to(device) for k, v in batch.items()}
  tensors["image"] = tensors["image"].permute(0, 3, 1, 2).contiguous()
  trainable = [p for p in model.parameters() if p.requires_grad]
  optimizer = torch.optim.SGD(trainable, lr=1e-3, momentum=0.9)
  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats(device)

  def step() -> float:
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bfloat16"):
      loss = loss_fn(model, tensors)
    loss.backward()
    optimizer.step()
    if device.type == "cuda":
      torch.cuda.synchronize(device)
    return float(loss.detach())

  seconds = []
  for i in range(WARMUP_STEPS + steps):
    start = time.perf_counter()
    loss = step()
    if i >= WARMUP_STEPS:
      seconds.append(time.perf_counter() - start)
  if not math.isfinite(loss):
    raise FloatingPointError(f"torch {name} {dtype}: the loss is {loss}")
  row = Row(name, dtype, "torch", spec.batch, spec.size, step_s=statistics.median(seconds), loss=loss)
  if device.type == "cuda":
    row.peak_bytes, row.peak_source = torch.cuda.max_memory_allocated(device), "dev"
    del model, optimizer, tensors
    torch.cuda.empty_cache()  # leave the device's memory to XLA
  return row


# ---- the table -------------------------------------------------------------------------------------------------
def _cell(value, fmt: str) -> str:
  return "-" if value is None else format(value, fmt)


def table(rows) -> list[str]:
  """The rows as text lines under one header."""
  header = (
    f"{'model':<10}{'dtype':<10}{'framework':<11}{'batch':>6}{'px':>5}{'images/s':>10}{'s/step':>9}"
    f"{'trace s':>9}{'compile s':>11}{'peak MiB':>10}{'':>5}{'GFLOP':>9}{'MFU':>7}"
  )
  lines = [header, "-" * len(header)]
  for r in rows:
    peak = None if r.peak_bytes is None else r.peak_bytes / MIB
    lines.append(
      f"{r.model:<10}{r.dtype:<10}{r.framework:<11}{r.batch:>6}{r.size:>5}{_cell(r.images_per_s, '.2f'):>10}"
      f"{_cell(r.step_s, '.4f'):>9}{_cell(r.trace_s, '.1f'):>9}{_cell(r.compile_s, '.1f'):>11}"
      f"{_cell(peak, ',.0f'):>10}{r.peak_source:>5}{_cell(None if r.flops is None else r.flops / 1e9, ',.2f'):>9}"
      f"{_cell(None if r.mfu is None else 100 * r.mfu, '.1f'):>7}"
    )
  return lines


def platform_line() -> str:
  """Where the numbers come from."""
  device = jax.devices()[0]
  return f"{device.platform} ({device.device_kind}) x {jax.device_count()}, jax {jax.__version__}, {os.cpu_count()} host CPUs"


def main(argv=None) -> list[Row]:
  """Measures every requested (model, dtype) step and prints one table; returns its rows."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, of {', '.join(MODELS)}")
  parser.add_argument("--dtypes", default=",".join(DTYPES), help="float32 and / or bfloat16")
  parser.add_argument(
    "--steps", type=int, default=None, help="timed steps after 2 warm-up ones (default 10; --quick 1)"
  )
  parser.add_argument("--batch", type=float, default=1.0, help="scales every model's batch (at least 1 image)")
  parser.add_argument("--quick", action="store_true", help="the configs' tiny variants at 32-64 px (CPU, CI)")
  parser.add_argument("--compile_only", action="store_true", help="fp32 trace + compile seconds only, nothing runs")
  parser.add_argument("--torch", action="store_true", help="PyTorch rows on a CPU too (default: only on CUDA)")
  parser.add_argument("--no_torch", action="store_true", help="no PyTorch rows")
  parser.add_argument("--json", default="", help="also write the rows to this file")
  args = parser.parse_args(argv)
  names = [n.strip() for n in args.models.split(",") if n.strip()]
  dtypes = ["float32"] if args.compile_only else [d.strip() for d in args.dtypes.split(",") if d.strip()]
  if set(names) - set(MODELS) or set(dtypes) - set(DTYPES) or not names or not dtypes:
    parser.error(f"--models from {MODELS}, --dtypes from {DTYPES}")
  steps = args.steps or (1 if args.quick else 10)
  specs = QUICK if args.quick else FULL
  specs = {n: dataclasses.replace(s, batch=max(1, round(s.batch * args.batch))) for n, s in specs.items()}

  torch = torchvision = None
  why = ""
  if args.compile_only or args.no_torch:
    why = "--compile_only" if args.compile_only else "--no_torch"
  else:
    torch, torchvision = import_torch()
    if torch is None:
      why = "torch / torchvision are not installed"
    elif not torch.cuda.is_available() and not args.torch:
      why, torch = "no CUDA device (--torch runs them on the CPU)", None

  rows = []
  for name in names:
    for dtype in dtypes:
      started = time.perf_counter()
      row = measure_jax(name, specs[name], dtype, steps, args.compile_only)
      rows.append(row)
      print(
        f"  {name} {dtype} jax: {time.perf_counter() - started:.1f} s (trace {row.trace_s:.1f}, compile "
        f"{row.compile_s:.1f}, init {_cell(row.init_s, '.1f')})",
        file=sys.stderr,
        flush=True,
      )
      if torch is not None:
        torch_row = measure_torch(name, specs[name], dtype, steps, torch, torchvision)
        torch_row.flops = row.flops  # the same network and batch: the same work
        tflops = peak_tflops(jax.devices()[0], dtype)
        if tflops and row.flops:
          torch_row.mfu = row.flops / torch_row.step_s / (tflops * 1e12)
        rows.append(torch_row)

  mode = "--quick (tiny configs)" if args.quick else "paper sizes"
  print(f"\nTrain steps, {mode}{', compile only' if args.compile_only else ''}; {platform_line()}")
  print("\n".join(table(rows)))
  if not args.compile_only:
    print(
      f"s/step: median of {steps} steps after {WARMUP_STEPS} warm-up steps; SGD momentum 0.9 on the trainable parameters"
    )
  if why:
    print(f"PyTorch rows skipped: {why}")
  elif torch is not None:
    print(
      f"PyTorch rows: torch {torch.__version__}, torchvision {torchvision.__version__}, eager, stand-in heads; bf16 = autocast"
    )
  if args.json:
    with open(args.json, "w") as f:
      json.dump([{**dataclasses.asdict(r), "images_per_s": r.images_per_s} for r in rows], f, indent=1)
  return rows


if __name__ == "__main__":
  main()
