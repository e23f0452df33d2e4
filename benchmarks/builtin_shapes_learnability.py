"""Is builtin_shapes learnable, and only from what it should be? Three tasks against baselines in one run.

Data: the `small` config's generator (96 px images, downsampled to 64 px), `--train` train and `--val`
validation examples (the test split is not touched).

- Multi-label (SSGRL's task), validation mAP (VOC all-point AP): random scores (chance); logistic regression
  on a 4x4x4 colour histogram (sees colour, not shape); a ResNet-18 of base width 16 trained from scratch
  with Adam 3e-3 for `--epochs` epochs (the quickstart baseline's network), on 2 CPU cores it takes minutes.
- Composition low/high (RGNet's task), validation accuracy: logistic regression on global statistics
  (mean/std colour, object-pixel fraction, object and label counts, total box area: should be near 0.5);
  the same ResNet, trained jointly (2 softmax outputs next to the 12 sigmoid ones).
- Predicates (LinkNet's task), validation accuracy from box geometry only: majority class; gradient boosting
  on LinkNet's pair geometry b_o|s = (dx / w_s, dy / h_s, log w_o / w_s, log h_o / h_s) plus the pair's
  normalised gap, i.e. what a relation model can read from the two boxes.

  JAX_PLATFORMS=cpu python benchmarks/builtin_shapes_learnability.py               # ~5-10 min on 2 cores
  JAX_PLATFORMS=cpu python benchmarks/builtin_shapes_learnability.py --epochs 2    # quick

Measured with the defaults (5,000 / 1,000, 6 epochs) on 2 CPU cores shared with other jobs (load ~9):
  multi-label  random scores (chance)                       mAP       0.220
  multi-label  colour histogram + logistic regression       mAP       0.599
  multi-label  ResNet-18/16, 6 epochs (286 s)               mAP       0.712
  composition  majority class                               accuracy  0.501
  composition  global statistics + logistic regression      accuracy  0.505
  composition  ResNet-18/16, 6 epochs (same run)            accuracy  0.926
  predicates   majority class                               accuracy  0.207
  predicates   pair geometry + gradient boosting            accuracy  0.994
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression

from jaxgraphs.data.builders import shapes
from jaxgraphs.evaluation.multilabel_metrics import average_precision, mean_over_defined
from jaxgraphs.models.backbones.resnet import ResNet

NUM_CLASSES = len(shapes.CATEGORY_NAMES)
INPUT_SIZE = 64


def load_split(split: str, count: int, image_size: int) -> list[dict]:
  """`count` examples of `split` from the plain generator."""
  return [shapes.generate_example(shapes.example_rng(0, split, i), image_size) for i in range(count)]


def model_inputs(examples: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Images (N, 64, 64, 3) scaled to [-1, 1], multi-hot labels (N, C), composition labels (N,)."""
  images = (
    np.stack(
      [np.asarray(Image.fromarray(e["image"]).resize((INPUT_SIZE,) * 2, Image.BILINEAR)) for e in examples]
    ).astype(np.float32)
    / 127.5
    - 1.0
  )
  multi_hot = np.zeros((len(examples), NUM_CLASSES), np.float32)
  for row, example in zip(multi_hot, examples):
    row[example["labels"]] = 1.0
  composition = np.array([e["composition"]["label"] for e in examples], np.int32)
  return images, multi_hot, composition


def colour_histogram(example: dict) -> np.ndarray:
  """Normalised 4 x 4 x 4 RGB histogram of the image."""
  bins = (example["image"] // 64).reshape(-1, 3).astype(np.int64)
  return np.bincount(bins @ np.array([16, 4, 1]), minlength=64) / len(bins)


def global_statistics(example: dict) -> np.ndarray:
  """Per-image statistics that must not tell composition apart."""
  image = example["image"].astype(np.float64)
  object_pixels = (image.max(-1) - image.min(-1)) > 35
  bbox = example["objects"]["bbox"]
  box_area = ((bbox[:, 2] - bbox[:, 0]) * (bbox[:, 3] - bbox[:, 1])).sum()
  return np.r_[image.mean((0, 1)), image.std((0, 1)), object_pixels.mean(), len(bbox), len(example["labels"]), box_area]


def pair_geometry(examples: list[dict]) -> tuple[np.ndarray, np.ndarray]:
  """LinkNet's subject-object geometry and gap per relation, and the predicate labels."""
  features, labels = [], []
  for example in examples:
    ymin, xmin, ymax, xmax = example["objects"]["bbox"].T
    w, h, cx, cy = xmax - xmin, ymax - ymin, (xmin + xmax) / 2, (ymin + ymax) / 2
    rel = example["relations"]
    for s, o, p in zip(rel["subject"], rel["object"], rel["predicate"]):
      gap = max(xmin[o] - xmax[s], xmin[s] - xmax[o], ymin[o] - ymax[s], ymin[s] - ymax[o])
      features.append(
        [
          (cx[o] - cx[s]) / w[s],
          (cy[o] - cy[s]) / h[s],
          np.log(w[o] / w[s]),
          np.log(h[o] / h[s]),
          gap,
          xmin[o] - xmin[s],
          ymin[o] - ymin[s],
          xmax[o] - xmax[s],
          ymax[o] - ymax[s],
        ]
      )
      labels.append(p)
  return np.asarray(features), np.asarray(labels)


def standardise(train: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """Zero-mean unit-variance features using the train statistics."""
  mean, std = train.mean(0), train.std(0) + 1e-9
  return (train - mean) / std, (val - mean) / std


def train_resnet(train, val, epochs: int, batch_size: int, seed: int = 0):
  """Trains ResNet-18/16 on both tasks; returns validation class probabilities, composition predictions, seconds."""
  images, multi_hot, composition = train
  model = ResNet(depth=18, width=16, num_classes=NUM_CLASSES + 2)
  variables = model.init(jax.random.key(seed), images[:2], train=False)
  params, batch_stats = variables["params"], variables["batch_stats"]
  steps = epochs * (len(images) // batch_size)
  schedule = optax.warmup_cosine_decay_schedule(0.0, 3e-3, min(50, steps // 10), steps)
  optimizer = optax.adam(schedule)
  opt_state = optimizer.init(params)

  def loss_fn(params, batch_stats, x, y, c):
    out, updates = model.apply({"params": params, "batch_stats": batch_stats}, x, train=True, mutable=["batch_stats"])
    logits = out["logits"]
    multi_label = optax.sigmoid_binary_cross_entropy(logits[:, :NUM_CLASSES], y).mean()
    comp = optax.softmax_cross_entropy_with_integer_labels(logits[:, NUM_CLASSES:], c).mean()
    return multi_label + comp, updates["batch_stats"]

  @jax.jit
  def step(params, batch_stats, opt_state, x, y, c):
    (_, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, batch_stats, x, y, c)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state

  @jax.jit
  def predict(params, batch_stats, x):
    logits = model.apply({"params": params, "batch_stats": batch_stats}, x, train=False)["logits"]
    return jax.nn.sigmoid(logits[:, :NUM_CLASSES]), jnp.argmax(logits[:, NUM_CLASSES:], axis=-1)

  rng = np.random.default_rng(seed)
  start = time.perf_counter()
  for epoch in range(epochs):
    order = rng.permutation(len(images))
    for first in range(0, len(order) - batch_size + 1, batch_size):
      idx = order[first : first + batch_size]
      flip = rng.random() < 0.5  # left-right flips keep labels and composition unchanged
      x = images[idx][:, :, ::-1] if flip else images[idx]
      params, batch_stats, opt_state = step(params, batch_stats, opt_state, x, multi_hot[idx], composition[idx])
    print(f"  epoch {epoch + 1}/{epochs}: {time.perf_counter() - start:.0f} s", flush=True)
  seconds = time.perf_counter() - start
  val_images = val[0]
  probs, comp = zip(*(predict(params, batch_stats, val_images[i : i + 250]) for i in range(0, len(val_images), 250)))
  return np.concatenate(probs), np.concatenate(comp), seconds


def main():
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--train", type=int, default=5000)
  parser.add_argument("--val", type=int, default=1000)
  parser.add_argument("--epochs", type=int, default=6)
  parser.add_argument("--batch_size", type=int, default=32)
  args = parser.parse_args()
  image_size = shapes.BuiltinShapes.builder_configs["small"].image_size

  start = time.perf_counter()
  train_examples = load_split("train", args.train, image_size)
  val_examples = load_split("validation", args.val, image_size)
  print(f"generated {args.train} + {args.val} examples at {image_size} px in {time.perf_counter() - start:.1f} s")
  train, val = model_inputs(train_examples), model_inputs(val_examples)
  rows = []

  # Multi-label.
  chance = np.random.default_rng(0).random(val[1].shape)
  rows.append(("multi-label", "random scores (chance)", "mAP", mean_over_defined(average_precision(chance, val[1]))))
  hist_train, hist_val = standardise(
    np.stack([colour_histogram(e) for e in train_examples]), np.stack([colour_histogram(e) for e in val_examples])
  )
  hist_scores = np.stack(
    [
      LogisticRegression(max_iter=2000).fit(hist_train, train[1][:, c]).predict_proba(hist_val)[:, 1]
      for c in range(NUM_CLASSES)
    ],
    axis=1,
  )
  rows.append(
    (
      "multi-label",
      "colour histogram + logistic regression",
      "mAP",
      mean_over_defined(average_precision(hist_scores, val[1])),
    )
  )

  # Composition from global statistics.
  stats_train, stats_val = standardise(
    np.stack([global_statistics(e) for e in train_examples]), np.stack([global_statistics(e) for e in val_examples])
  )
  stats_model = LogisticRegression(max_iter=2000).fit(stats_train, train[2])
  rows.append(("composition", "majority class", "accuracy", max(val[2].mean(), 1 - val[2].mean())))
  rows.append(
    (
      "composition",
      "global statistics + logistic regression",
      "accuracy",
      (stats_model.predict(stats_val) == val[2]).mean(),
    )
  )

  # Predicates from pair geometry.
  geo_train, pred_train = pair_geometry(train_examples)
  geo_val, pred_val = pair_geometry(val_examples)
  rows.append(("predicates", "majority class", "accuracy", (pred_val == np.bincount(pred_train).argmax()).mean()))
  booster = HistGradientBoostingClassifier(random_state=0).fit(geo_train, pred_train)
  rows.append(
    ("predicates", "pair geometry + gradient boosting", "accuracy", (booster.predict(geo_val) == pred_val).mean())
  )

  print(f"training ResNet-18/16 on {jax.device_count()} {jax.default_backend()} device(s) ...", flush=True)
  probs, comp_pred, seconds = train_resnet(train, val, args.epochs, args.batch_size)
  rows.append(
    (
      "multi-label",
      f"ResNet-18/16, {args.epochs} epochs ({seconds:.0f} s)",
      "mAP",
      mean_over_defined(average_precision(probs, val[1])),
    )
  )
  rows.append(
    ("composition", f"ResNet-18/16, {args.epochs} epochs (same run)", "accuracy", (comp_pred == val[2]).mean())
  )

  print(f"\n{'task':<12} {'model':<44} {'metric':<9} value")
  for task, model, metric, value in rows:
    print(f"{task:<12} {model:<44} {metric:<9} {value:.3f}")


if __name__ == "__main__":
  main()
