"""Image aesthetics (RGNet): AVA-style binary classification, AADB-style score regression, or 10-bin ratings.

`config.task.kind` picks the loss and the metrics (all losses are means over the examples with mask 1):
  binary        2-class softmax cross-entropy on the image-level logits (RGNet eq. 5 over the LSE-pooled
                region scores) against batch['label']; metrics accuracy (p(high) >= 0.5) and AP of the
                ranking by p(high)
  regression    mean squared error between the one image-level output and batch['score'] (AADB, Sec. 4.1);
                metrics Spearman's rho (AADB's metric), Pearson's r, MSE
  distribution  NIMA's EMD between the predicted and batch['distribution'] rating histograms (10 bins),
                (mean_k |CDF_pred - CDF_target|^r)^(1/r) with r = `config.task.emd_r` (2); metrics EMD and,
                on the mean ratings, accuracy / AP (high = mean >= 5), Spearman, Pearson, MSE

Evaluation pictures (`eval_images`, first eval batch) reproduce the paper's Fig. 6: for up to four images,
the image with the highest-scoring region boxed in red, then heat maps of the cosine similarity of every
region to it from the features after the FCN, after the ASPP and after the graph (the stages the variant
has; similarities clipped to [0, 1], hot = 1), then the per-region score map (min-max per image), each
blended over the image. The FC-CNN variant has no regions and draws nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgraphs.evaluation.aesthetics_metrics import KINDS, AestheticsEvaluator
from jaxgraphs.tasks import base
from jaxgraphs.tasks.base import masked_mean
from jaxgraphs.tasks.display import images_for_display
from jaxgraphs.errors import ConfigError

# Which batch entry each kind learns from, and which entries its evaluator compares.
TARGET_KEY = {"binary": "label", "regression": "score", "distribution": "distribution"}
DEFAULT_METRIC = {"binary": "accuracy", "regression": "spearman_rho", "distribution": "emd"}
SIMILARITY_STAGES = ("fcn", "aspp", "graph")
MAX_PICTURES = 4


def binary_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Per-example softmax cross-entropy (B,) of 2-class logits against 0/1 labels."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels.astype(jnp.int32))


def squared_error(predictions: jax.Array, targets: jax.Array) -> jax.Array:
  """Per-example (prediction - target)^2 (B,)."""
  return jnp.square(predictions.astype(jnp.float32) - targets.astype(jnp.float32))


def earth_movers_distance(predicted: jax.Array, target: jax.Array, r: float = 2.0) -> jax.Array:
  """Per-example EMD (B,) between histograms (B, K): (mean_k |CDF_pred(k) - CDF_target(k)|^r)^(1/r).

  Targets are normalised to sum 1 (rating counts work too); all-zero rows (padding) give their
  unnormalised CDF and are expected to be masked out. A tiny floor keeps the root differentiable at 0.
  """
  target = target / jnp.maximum(jnp.sum(target, axis=-1, keepdims=True), 1e-12)
  gap = jnp.abs(jnp.cumsum(predicted.astype(jnp.float32), axis=-1) - jnp.cumsum(target, axis=-1))
  return jnp.power(jnp.mean(jnp.power(gap, r), axis=-1) + 1e-12, 1.0 / r)


def p_high(logits: jax.Array) -> jax.Array:
  """p(high | image) (B,): the softmax of the two image-level scores (eq. 5), class 1."""
  return jax.nn.softmax(logits.astype(jnp.float32), axis=-1)[:, 1]


def predicted_distribution(outputs: Mapping[str, jax.Array]) -> jax.Array:
  """The model's rating histogram: its 'distribution' output, else the softmax of its logits."""
  if "distribution" in outputs:
    return outputs["distribution"]
  return jax.nn.softmax(outputs["logits"].astype(jnp.float32), axis=-1)


class _Evaluator(base.Evaluator):
  """Adapts AestheticsEvaluator to the trainer's gathered dicts ('prediction', 'target', 'mask')."""

  def __init__(self, kind: str):
    self._metrics = AestheticsEvaluator(kind)

  def update(self, outputs: Mapping[str, np.ndarray]) -> None:
    self._metrics.update(outputs["prediction"], outputs["target"], outputs["mask"])

  def result(self) -> dict[str, Any]:
    return {**self._metrics.result(), "num_examples": self._metrics.num_examples}


class AestheticsTask(base.Task):
  """Images in; a high/low decision, a score or a rating histogram out (see the module docstring)."""

  required_outputs = ("logits",)

  def __init__(self, kind: str = "binary", emd_r: float = 2.0):
    if kind not in KINDS:
      raise ConfigError(f"config.task.kind={kind!r}; expected one of {KINDS}")
    self.kind = kind
    self.emd_r = float(emd_r)
    self.default_metric = DEFAULT_METRIC[kind]
    self.default_metric_mode = "min" if kind == "distribution" else "max"

  def model_inputs(self, batch):
    return {"images": batch["image"]}

  def prediction(self, outputs: Mapping[str, jax.Array]) -> jax.Array:
    """What the evaluator scores: p(high) (B,), the score (B,) or the histogram (B, K)."""
    if self.kind == "binary":
      return p_high(outputs["logits"])
    if self.kind == "regression":
      return outputs["logits"][:, 0].astype(jnp.float32)
    return predicted_distribution(outputs)

  def loss(self, outputs, batch):
    target = batch[TARGET_KEY[self.kind]]
    mask = batch["mask"]
    metrics = {}
    if self.kind == "binary":
      per_example = binary_cross_entropy(outputs["logits"], target)
      correct = (jnp.argmax(outputs["logits"], axis=-1) == target).astype(jnp.float32)
      metrics["accuracy"] = masked_mean(correct, mask)
    elif self.kind == "regression":
      per_example = squared_error(outputs["logits"][:, 0], target)
    else:
      per_example = earth_movers_distance(predicted_distribution(outputs), target, self.emd_r)
    return masked_mean(per_example, mask), metrics

  def eval_outputs(self, outputs, batch):
    return {"prediction": self.prediction(outputs), "target": batch[TARGET_KEY[self.kind]], "mask": batch["mask"]}

  def make_evaluator(self):
    return _Evaluator(self.kind)

  def summary_images(self, batch):
    return {"train/images": images_for_display(batch["image"][:MAX_PICTURES])}

  def eval_images(self, outputs, batch):
    if "region_quality" not in outputs:
      return {}
    count = min(MAX_PICTURES, int(np.sum(np.asarray(batch["mask"]) > 0)))
    if count == 0:
      return {}
    keep = np.flatnonzero(np.asarray(batch["mask"]) > 0)[:count]
    pictures = region_dependency_pictures(batch["image"][keep], {k: np.asarray(v)[keep] for k, v in outputs.items()})
    return {"eval/region_dependency": pictures}

  # ---- jaxgraphs.predict hooks ---------------------------------------------------------------------------
  def predict_json(self, outputs: Mapping[str, np.ndarray], index: int) -> dict[str, Any]:
    """One image's prediction as JSON-able values: p(high) / score / histogram and its mean rating."""
    outputs = {key: np.asarray(value) for key, value in outputs.items()}
    prediction = np.asarray(self.prediction(outputs))[index]
    if self.kind == "binary":
      return {"p_high": float(prediction), "label": "high" if prediction >= 0.5 else "low"}
    if self.kind == "regression":
      return {"score": float(prediction)}
    ratings = np.arange(1, prediction.shape[-1] + 1)
    return {"distribution": [float(p) for p in prediction], "mean_rating": float(prediction @ ratings)}

  def predict_pictures(self, outputs: Mapping[str, np.ndarray], image: np.ndarray, index: int) -> dict[str, np.ndarray]:
    """uint8 pictures of one image: its region score map and the Fig. 6 strip (none for FC-CNN)."""
    if "region_quality" not in outputs:
      return {}
    one = {key: np.asarray(value)[index : index + 1] for key, value in outputs.items()}
    image = np.asarray(image)
    if image.dtype != np.uint8:
      image = images_for_display(image[None])[0]
    quality = one["region_quality"][0]
    score_map = blend(image, heat_colours(min_max(upsample(quality, image.shape[:2]))))
    return {"region_scores": score_map, "region_dependency": region_dependency_pictures(image[None], one)[0]}


# ---- pictures (host side, NumPy) -----------------------------------------------------------------------------
def upsample(region_map: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """Nearest-neighbour upsampling of a (h, w) region map to the image's (H, W): region i covers rows i H/h .."""
  height, width = size
  rows = np.minimum(np.arange(height) * region_map.shape[0] // height, region_map.shape[0] - 1)
  cols = np.minimum(np.arange(width) * region_map.shape[1] // width, region_map.shape[1] - 1)
  return region_map[rows][:, cols]


def min_max(values: np.ndarray) -> np.ndarray:
  """Values rescaled to [0, 1] by their own min and max (constant maps become 0)."""
  low, high = float(np.min(values)), float(np.max(values))
  return (values - low) / max(high - low, 1e-12)


def heat_colours(values: np.ndarray) -> np.ndarray:
  """A black-red-yellow-white ('hot') colour map of values in [0, 1]: uint8 (..., 3)."""
  values = np.clip(values, 0.0, 1.0)[..., None]
  red = np.clip(3 * values, 0, 1)
  green = np.clip(3 * values - 1, 0, 1)
  blue = np.clip(3 * values - 2, 0, 1)
  return np.round(255 * np.concatenate([red, green, blue], axis=-1)).astype(np.uint8)


def blend(image: np.ndarray, overlay: np.ndarray, alpha: float = 0.6) -> np.ndarray:
  """uint8 alpha blend of an overlay over an image."""
  mixed = (1 - alpha) * image.astype(np.float32) + alpha * overlay.astype(np.float32)
  return np.round(mixed).astype(np.uint8)


def draw_region_box(image: np.ndarray, region: int, grid: tuple[int, int], colour=(255, 0, 0)) -> np.ndarray:
  """A copy of `image` with the outline of flat region index `region` of an (h, w) grid drawn in `colour`."""
  height, width = image.shape[:2]
  row, col = divmod(int(region), grid[1])
  top, bottom = row * height // grid[0], max((row + 1) * height // grid[0], row * height // grid[0] + 1)
  left, right = col * width // grid[1], max((col + 1) * width // grid[1], col * width // grid[1] + 1)
  thickness = max(1, min(height, width) // 100)
  out = image.copy()
  out[top:bottom, left : left + thickness] = colour
  out[top:bottom, right - thickness : right] = colour
  out[top : top + thickness, left:right] = colour
  out[bottom - thickness : bottom, left:right] = colour
  return out


def region_dependency_pictures(images: np.ndarray, outputs: Mapping[str, np.ndarray]) -> np.ndarray:
  """RGNet's Fig. 6 as uint8 strips (N, H, P * W, 3): the image with the query region boxed, the similarity
  map of each stage present, and the region score map, all at the image's size."""
  images = np.asarray(images)
  display = images if images.dtype == np.uint8 else images_for_display(images)
  strips = []
  for i, image in enumerate(display):
    quality = np.asarray(outputs["region_quality"][i])
    grid = quality.shape
    query = int(outputs["query_region"][i])
    panels = [draw_region_box(image, query, grid)]
    for stage in SIMILARITY_STAGES:
      key = f"similarity_{stage}"
      if key in outputs:
        heat = heat_colours(upsample(np.asarray(outputs[key][i]), image.shape[:2]))
        panels.append(draw_region_box(blend(image, heat), query, grid))
    panels.append(blend(image, heat_colours(min_max(upsample(quality, image.shape[:2])))))
    strips.append(np.concatenate(panels, axis=1))
  return np.stack(strips)


def aesthetics_task_from_config(config, data_info) -> AestheticsTask:
  """The task of `config.task` ('kind', 'emd_r'), checked against what the data source provides."""
  from jaxgraphs.data import sources

  kind = config.task.get("kind", "binary")
  task = AestheticsTask(kind, config.task.get("emd_r", 2.0))
  provided = data_info.targets
  if not set(provided) & set(TARGET_KEY.values()):
    aesthetic = sorted(k for k, v in sources.SOURCES.items() if set(v.targets) & set(TARGET_KEY.values()))
    raise ConfigError(
      f"config.data.source={data_info.source!r} has no aesthetics targets; aesthetics sources: {', '.join(aesthetic)}"
    )
  if TARGET_KEY[kind] not in provided:
    raise ConfigError(
      f"config.task.kind={kind!r} needs {TARGET_KEY[kind]!r}, which config.data.source="
      f"{data_info.source!r} does not provide (it has {', '.join(provided)})"
    )
  return task
