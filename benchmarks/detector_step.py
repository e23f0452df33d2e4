r"""Train-step images/s of the Faster R-CNN detector beside torchvision's FasterRCNN built to the same recipe.

The JAX row is the trainer's own `Experiment.jit_train_step` of the detection task (VGG-16 conv5_3 at stride 16,
RPN with the 20 VG anchors per cell, anchor and RoI targets inside the step, RoIAlign 7x7 + fc6/fc7, class
scores and class-specific deltas, the four losses, the optimiser), timed by benchmarks/step_timing.py on this
machine's JAX devices. The config is configs/faster_rcnn_vg150.py where it exists, else the detector's defaults
(jaxgraphs.configs.faster_rcnn.model_config(): full VGG-16) on VG-150's 151 classes with SGD (momentum 0.9,
lr 1e-3, weight decay 1e-4, gradient norm 5). Random batches: fixed-size normalised images, no padding, `--objects`
random boxes per image (padded to 64 as pack_scene_graph(64, 128) pads VG-150).

Baseline, measured in the same run on the same images and boxes: torchvision.models.detection.FasterRCNN with
every number taken from the same `config.model`: VGG-16 `features[:-1]` (no pool5, 512 channels), the same anchor
boxes, RPN sampling (256 anchors, half positive, IoU 0.7 / 0.3), 12,000 / 2,000 proposals before / after NMS 0.7,
MultiScaleRoIAlign 7x7 (sampling ratio 2) on the one map, fc6/fc7 of 4096 with ReLU and dropout as VGG's
classifier, 256 RoIs a quarter foreground (IoU 0.5), min_size = max_size = the image side and size_divisible 16
so nothing is resized or padded, fp32, torch threads = the CPU count, and an optimiser mirroring the config's
(torch SGD: momentum 0.9, the same weight decay with the same exclusions, the same frozen layers and clipping).
The table is step_timing's; 'x baseline' is each step's time over torchvision's. torchvision runs eagerly (its
compile s is 0) and before the JAX step, since on a CPU its memory is read as the growth of the process's peak
resident set (on a GPU: torch's peak allocated bytes). `--no_torch`, or no torch installed: the JAX row alone.

  JAX_PLATFORMS=cpu python benchmarks/detector_step.py                          # 592 px, batch 2
  JAX_PLATFORMS=cpu python benchmarks/detector_step.py --size=320 --batch=1 --steps=3   # minutes on a small CPU
  JAX_PLATFORMS=cpu python benchmarks/detector_step.py --tiny                   # faster_rcnn_shapes.py:tiny, 64 px
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import statistics
import sys
import time

import jax
import numpy as np

if __package__ in (None, ""):  # run as `python benchmarks/detector_step.py`: the repository root holds `benchmarks`
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _import_torch():
  """(torch, torchvision, ""), or (None, None, why the baseline cannot run in this process)."""
  # torchvision imports triton (through torch._dynamo), and loading triton's LLVM after TensorFlow's crashes the
  # process (segmentation fault): once TensorFlow is in, only a process that has triton already may go on.
  after_tensorflow = "tensorflow" in sys.modules and "triton" not in sys.modules and "torchvision" not in sys.modules
  if after_tensorflow and importlib.util.find_spec("triton") is not None:
    return None, None, "torchvision cannot be imported after TensorFlow in one process (triton crashes); run the script"
  try:
    import torch
    import torchvision
  except ImportError:
    return None, None, "torch / torchvision are not installed"
  return torch, torchvision, ""


# Before anything that imports TensorFlow (the data pipeline, through step_timing): see _import_torch.
torch, torchvision, TORCH_MISSING = _import_torch()

from benchmarks import step_timing
from benchmarks.torch_detector import torch_faster_rcnn
from jaxgraphs.configs import faster_rcnn
from jaxgraphs.data import pipeline
from jaxgraphs.training.defaults import base_config

MAX_OBJECTS = 64  # pack_scene_graph(64, 128): VG-150's boxes per image
TINY_MAX_OBJECTS = 8  # the built-in scene graphs' pack_scene_graph(8, 16)
TORCH_NAME = "torchvision FasterRCNN (same recipe)"


def paper_config():
  """configs/faster_rcnn_vg150.py where it exists, else the detector's defaults on VG-150 with SGD."""
  if os.path.exists(os.path.join(step_timing.REPO, "configs", "faster_rcnn_vg150.py")):
    return step_timing.load_config("faster_rcnn_vg150"), "configs/faster_rcnn_vg150.py"
  config = base_config()
  faster_rcnn.configure(config)
  config.model.backbone_kwargs = {}  # full VGG-16
  config.data.source = "vg150"
  sgd(config)
  return config, "faster_rcnn.model_config() (full VGG-16) on VG-150, SGD"


def sgd(config) -> None:
  """The SGD step the comparison times: momentum 0.9, lr 1e-3, weight decay 1e-4, gradient norm 5, constant lr."""
  config.optimizer.name = "sgd"
  config.optimizer.momentum = 0.9
  config.optimizer.nesterov = False
  config.optimizer.learning_rate = 1e-3
  config.optimizer.weight_decay = 1e-4
  config.optimizer.grad_clip_norm = 5.0
  config.optimizer.schedule.name = "constant"
  config.optimizer.schedule.warmup_steps = 0
  config.optimizer.freeze = ()


def random_boxes(rng: np.random.Generator, batch: int, objects: int, size: int) -> np.ndarray:
  """(batch, objects, 4) boxes x1, y1, x2, y2 in the detector's inclusive-corner pixels, 8 px to half the image."""
  sides = np.exp(rng.uniform(np.log(8), np.log(size / 2), (batch, objects, 2))).round()
  corners = (rng.uniform(0, 1, (batch, objects, 2)) * (size - sides)).round()
  return np.concatenate([corners, corners + sides - 1], axis=-1).astype(np.float32)


def detection_batch(rng, batch: int, size: int, objects: int, max_objects: int, num_classes: int):
  """A random batch with the keys and shapes of the detection task's pipeline (keep_image_size, no padding)."""
  boxes = np.zeros((batch, max_objects, 4), np.float32)
  boxes[:, :objects] = random_boxes(rng, batch, objects, size)
  mask = np.zeros((batch, max_objects), np.float32)
  mask[:, :objects] = 1
  labels = np.where(mask > 0, rng.integers(1, num_classes, (batch, max_objects)), 0).astype(np.int32)
  return {
    "image": rng.normal(size=(batch, size, size, 3)).astype(np.float32),
    "mask": np.ones(batch, np.float32),
    "object_boxes": boxes,
    "object_labels": labels,
    "object_mask": mask,
    "image_size": np.full((batch, 2), size, np.int32),
  }


def jax_style_path(name: str) -> str:
  """A torch parameter's name as the JAX detector's parameter path, so the config's freeze / weight-decay regexes
  select the same layers: backbone.N -> backbone/features_N, the fc6/fc7 of the box head -> backbone/classifier_0
  and _3 (where the JAX fc_head lives), weight -> kernel."""
  name = re.sub(r"^roi_heads\.box_head\.(\d+)\.", lambda m: f"backbone.classifier_{int(m.group(1)) - 1}.", name)
  name = re.sub(r"^backbone\.(\d+)\.", r"backbone.features_\1.", name)
  return re.sub(r"weight$", "kernel", name).replace(".", "/")


def torch_optimizer(model, optimizer_cfg):
  """The torch optimiser mirroring `config.optimizer` (sgd / adam / adamw; L2 as torch's weight_decay), with the
  config's frozen parameters switched off and its weight-decay exclusions in a group without decay."""
  frozen = [re.compile(pattern) for pattern in optimizer_cfg.get("freeze", ())]
  exclude = [re.compile(pattern) for pattern in optimizer_cfg.get("weight_decay_exclude", ())]
  decay, no_decay = [], []
  for name, parameter in model.named_parameters():
    path = jax_style_path(name)
    if any(pattern.search(path) for pattern in frozen):
      parameter.requires_grad_(False)
    else:
      (no_decay if any(pattern.search(path) for pattern in exclude) else decay).append(parameter)
  rate, weight_decay = float(optimizer_cfg.learning_rate), float(optimizer_cfg.weight_decay)
  groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
  name = optimizer_cfg.name
  if name == "sgd":
    return torch.optim.SGD(groups, lr=rate, momentum=optimizer_cfg.momentum, nesterov=optimizer_cfg.nesterov)
  betas = (optimizer_cfg.b1, optimizer_cfg.b2)
  if name == "adam":
    return torch.optim.Adam(groups, lr=rate, betas=betas, eps=optimizer_cfg.eps)
  if name == "adamw":
    return torch.optim.AdamW(groups, lr=rate, betas=betas, eps=optimizer_cfg.eps)
  raise ValueError(f"config.optimizer.name={name!r}: the torch baseline mirrors sgd, adam and adamw")


def _rss_bytes(field: str) -> int | None:
  try:
    with open("/proc/self/status") as status:
      for line in status:
        if line.startswith(field + ":"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return None


def _reset_peak_rss() -> None:
  # Linux: writing 5 to clear_refs resets VmHWM (the peak resident set) to the current resident set.
  try:
    with open("/proc/self/clear_refs", "w") as clear_refs:
      clear_refs.write("5")
  except OSError:
    pass


def time_torch_step(config, batch, num_classes: int, size: int, steps: int) -> step_timing.StepTiming:
  """Times torchvision's FasterRCNN train step (forward with targets, summed losses, backward, clipping,
  optimiser step) on the JAX batch's images and boxes; a StepTiming for step_timing's table. Memory: on CUDA
  torch's peak allocated bytes; on CPU the growth of the process's peak resident set over the model's build and
  steps (run it before anything else allocates, or freed heap pages are reused unseen)."""
  device = torch.device("cuda" if torch.cuda.is_available() and jax.default_backend() == "gpu" else "cpu")
  torch.set_num_threads(os.cpu_count() or 1)
  torch.manual_seed(0)
  if device.type == "cuda":
    torch.cuda.reset_peak_memory_stats(device)
  _reset_peak_rss()
  rss_before = _rss_bytes("VmRSS")
  model = torch_faster_rcnn(config, num_classes, size).to(device).train()
  optimizer = torch_optimizer(model, config.optimizer)
  clip = float(config.optimizer.grad_clip_norm)
  images = list(torch.as_tensor(batch["image"]).permute(0, 3, 1, 2).contiguous().to(device))
  targets = []
  for boxes, labels, mask in zip(batch["object_boxes"], batch["object_labels"], batch["object_mask"]):
    real = mask > 0
    targets.append(
      {
        # Inclusive corners -> torchvision's exclusive ones: the same pixels.
        "boxes": torch.as_tensor(boxes[real] + np.array([0, 0, 1, 1], np.float32)).to(device),
        "labels": torch.as_tensor(labels[real], dtype=torch.int64).to(device),
      }
    )
  trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]

  def step() -> float:
    optimizer.zero_grad(set_to_none=True)
    loss = sum(model(images, targets).values())
    loss.backward()
    if clip > 0:
      torch.nn.utils.clip_grad_norm_(trainable, clip)
    optimizer.step()
    if device.type == "cuda":
      torch.cuda.synchronize(device)
    return float(loss.detach())

  start = time.perf_counter()
  step()
  first_step_s = time.perf_counter() - start
  seconds = []
  for _ in range(steps):
    start = time.perf_counter()
    loss = step()
    seconds.append(time.perf_counter() - start)
  if not np.isfinite(loss):
    raise FloatingPointError(f"{TORCH_NAME}: the training loss is {loss} after {steps + 1} steps")
  # Arguments as XLA counts them: parameters, optimiser state and the batch.
  state = [value for group in optimizer.state.values() for value in group.values() if torch.is_tensor(value)]
  arguments = sum(t.numel() * t.element_size() for t in [*model.parameters(), *state, *images])
  if device.type == "cuda":
    peak = torch.cuda.max_memory_allocated(device)
    device_peak = peak
  else:
    hwm = _rss_bytes("VmHWM")
    peak = 0 if hwm is None or rss_before is None else hwm - rss_before
    device_peak = None
  return step_timing.StepTiming(
    name=TORCH_NAME,
    batch_size=len(batch["image"]),
    compile_s=0.0,  # eager: nothing is compiled
    first_step_s=first_step_s,
    step_s=statistics.median(seconds),
    steps=steps,
    memory=step_timing.Memory(temp=max(peak - arguments, 0), arguments=arguments, peak=peak),
    device_peak_bytes=device_peak,
    loss=loss,
  )


def side(text: str) -> int:
  """An image side in pixels, a multiple of 16 (so both detectors see the same conv5_3 map, unpadded)."""
  value = int(text)
  if value <= 0 or value % 16:
    raise argparse.ArgumentTypeError(f"--size={text}: must be a positive multiple of 16 (the feature stride)")
  return value


def main(argv=None):
  """Times the JAX detector's train step and torchvision's beside it; prints the table (torchvision the baseline)."""
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--size", type=side, default=None, help="image side (default 592; --tiny: 64)")
  parser.add_argument("--batch", type=int, default=2)
  parser.add_argument("--steps", type=int, default=3, help="timed steps after the first (compiling) one")
  parser.add_argument("--objects", type=int, default=None, help="boxes per image (default 20; --tiny: 4)")
  parser.add_argument("--tiny", action="store_true", help="configs/faster_rcnn_shapes.py:tiny widths on both sides")
  parser.add_argument("--no_torch", action="store_true", help="skip the torchvision baseline")
  args = parser.parse_args(argv)
  size = args.size or (64 if args.tiny else 592)
  objects = args.objects or (4 if args.tiny else 20)
  max_objects = TINY_MAX_OBJECTS if args.tiny else MAX_OBJECTS
  if objects > max_objects:
    parser.error(f"--objects={objects}: at most {max_objects}")
  if args.tiny:
    config, source = step_timing.load_config("faster_rcnn_shapes", "tiny"), "configs/faster_rcnn_shapes.py:tiny"
    sgd(config)  # the toy config trains with Adam; both sides take the same SGD step here
    source += ", SGD"
    name = "JAX Faster R-CNN (tiny widths)"
  else:
    config, source = paper_config()
    name = "JAX Faster R-CNN (VGG-16)"
  config.batch_size = args.batch
  num_classes = pipeline.dataset_info(config.data).num_classes
  batch = detection_batch(np.random.default_rng(0), args.batch, size, objects, max_objects, num_classes)

  # torchvision first: its CPU memory is read from the process's resident set, which XLA's freed buffers would hide.
  rows, baseline = [], name
  if args.no_torch or torch is None:
    why = "--no_torch" if args.no_torch else TORCH_MISSING
    print(f"torchvision baseline skipped ({why}); 'x baseline' is relative to the JAX row itself")
  else:
    rows.append(time_torch_step(config, batch, num_classes, size, args.steps))
    if torch.cuda.is_available():
      torch.cuda.empty_cache()  # the model is gone: leave the device's memory to XLA
    baseline = TORCH_NAME
  rows.insert(0, step_timing.measure(name, config, batch, args.steps))

  print(
    f"\nDetector train step at {size} x {size}, batch {args.batch}, {objects} boxes/image (padded to {max_objects}), "
    f"{num_classes} classes; config {source}; {step_timing.platform_line()}"
  )
  step_timing.print_table(rows, baseline)
  if baseline == TORCH_NAME:
    print(
      f"torchvision {torchvision.__version__} (torch {torch.__version__}, {torch.get_num_threads()} "
      "threads): eager, so compile s is 0; on CPU its 'XLA peak MiB' is the growth of the process's peak resident "
      "set over its model build and steps (VmHWM), not an XLA analysis"
    )
  return rows


if __name__ == "__main__":
  main()
