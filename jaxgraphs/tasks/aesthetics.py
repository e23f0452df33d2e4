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
under a title with the prediction and the truth, the image with the query region (its highest-scoring one)
boxed in red, then the cosine similarity of every region to it from the features after the FCN, after the
ASPP and after the graph (the stages the variant has) on the fixed SIMILARITY_SCALE [0, 1] (negative values
as 0), then the region score map (p(high) on [0, 1], the mean rating on [1, 10], a regression score on its
own range), each blended over the image, captioned and over its colour bar. Small network inputs are
enlarged to at least 256 px; `python -m jaxgraphs.predict` draws the same over the photo. The FC-CNN
variant has no regions and draws nothing.
"""

from __future__ import annotations

from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np
import optax
from PIL import Image, ImageDraw

from jaxgraphs.errors import ConfigError
from jaxgraphs.evaluation.aesthetics_metrics import KINDS, AestheticsEvaluator
from jaxgraphs.tasks import base
from jaxgraphs.tasks.base import masked_mean
from jaxgraphs.tasks.display import (
  RED,
  WHITE,
  ColourScale,
  as_uint8_image,
  blend,
  captioned,
  colour_bar,
  images_for_display,
  resize_for_display,
  same_size,
  side_by_side,
  stack,
  titled,
)
from jaxgraphs.tasks.input_frame import InputFrame

# Which batch entry each kind learns from, and which entries its evaluator compares.
TARGET_KEY = {"binary": "label", "regression": "score", "distribution": "distribution"}
DEFAULT_METRIC = {"binary": "accuracy", "regression": "spearman_rho", "distribution": "emd"}
SIMILARITY_STAGES = ("fcn", "aspp", "graph")
STAGE_CAPTIONS = {
  "fcn": "similarity after the FCN",
  "aspp": "similarity after the ASPP",
  "graph": "similarity after the graph",
}
# Cosine similarities on one fixed scale in every picture; the rare negative ones show as 0 (as in Fig. 6).
SIMILARITY_SCALE = ColourScale(0.0, 1.0, "cosine similarity to the query region")
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
    keep = np.flatnonzero(np.asarray(batch["mask"]) > 0)[:MAX_PICTURES]
    if keep.size == 0:
      return {}
    outputs = {key: np.asarray(value) for key, value in outputs.items()}
    predictions = np.asarray(self.prediction(outputs))
    targets = batch.get(TARGET_KEY[self.kind])
    pictures = []
    for index in keep:
      image = as_uint8_image(batch["image"][index])
      one = {key: value[index] for key, value in outputs.items()}
      pictures.append(
        region_dependency_picture(
          image,
          InputFrame.identity(image.shape[:2]),
          one,
          self.score_scale(one["region_quality"], predictions.shape[-1] if predictions.ndim > 1 else 10),
          self.describe(predictions[index], None if targets is None else np.asarray(targets)[index]),
        )
      )
    return {"eval/region_dependency": same_size(pictures)}

  def score_scale(self, quality: np.ndarray, num_bins: int = 10) -> ColourScale:
    """The colour scale of the region score map: p(high) on [0, 1], the mean rating on [1, num_bins], a
    regression score on this map's own range (written on its colour bar)."""
    if self.kind == "binary":
      return ColourScale(0.0, 1.0, "region p(high)")
    if self.kind == "distribution":
      return ColourScale(1.0, float(num_bins), "region mean rating")
    low, high = float(np.min(quality)), float(np.max(quality))
    return ColourScale(low, max(high, low + 1e-6), "region score (this map's range)")

  def describe(self, prediction: np.ndarray, target: np.ndarray | None = None) -> str:
    """The image's prediction in words, and the truth when `target` is given."""
    if self.kind == "binary":
      text = f"p(high) = {float(prediction):.2f} ({'high' if prediction >= 0.5 else 'low'})"
      return text if target is None else f"{text}; true: {'high' if int(target) == 1 else 'low'}"
    if self.kind == "regression":
      text = f"score {float(prediction):.3f}"
      return text if target is None else f"{text}; true: {float(target):.3f}"
    ratings = np.arange(1, np.shape(prediction)[-1] + 1)
    text = f"mean rating {float(np.asarray(prediction) @ ratings):.2f}"
    if target is None:
      return text
    target = np.asarray(target, np.float64)
    return f"{text}; true: {float(target @ ratings / max(target.sum(), 1e-12)):.2f}"

  # ---- jaxgraphs.predict hooks ---------------------------------------------------------------------------
  def predict_json(self, outputs: Mapping[str, np.ndarray], index: int, frame=None) -> dict[str, Any]:
    """One image's prediction as JSON-able values: p(high) / score / histogram and its mean rating."""
    outputs = {key: np.asarray(value) for key, value in outputs.items()}
    prediction = np.asarray(self.prediction(outputs))[index]
    if self.kind == "binary":
      return {"p_high": float(prediction), "label": "high" if prediction >= 0.5 else "low"}
    if self.kind == "regression":
      return {"score": float(prediction)}
    ratings = np.arange(1, prediction.shape[-1] + 1)
    return {"distribution": [float(p) for p in prediction], "mean_rating": float(prediction @ ratings)}

  def predict_pictures(
    self, outputs: Mapping[str, np.ndarray], image: np.ndarray, index: int, frame: InputFrame | None = None
  ) -> dict[str, np.ndarray]:
    """uint8 pictures of one image: its region score map and the Fig. 6 strip (none for FC-CNN), over `image`
    (the photo, with `frame` placing the network input on it; without, `image` is the network input)."""
    if "region_quality" not in outputs:
      return {}
    outputs = {key: np.asarray(value) for key, value in outputs.items()}
    one = {key: value[index] for key, value in outputs.items()}
    image = as_uint8_image(image)
    frame = frame or InputFrame.identity(image.shape[:2])
    prediction = np.asarray(self.prediction(outputs))[index]
    scale = self.score_scale(one["region_quality"], np.shape(prediction)[-1] if np.ndim(prediction) else 10)
    description = self.describe(prediction)
    canvas, display = resize_for_display(image)
    score_panel = region_map_panel(canvas, frame.resized(display), one["region_quality"], scale, "region scores")
    return {
      "region_scores": titled(score_panel, f"RGNet region scores; prediction: {description}"),
      "region_dependency": region_dependency_picture(image, frame, one, scale, description),
    }


# ---- pictures (host side, NumPy) -----------------------------------------------------------------------------
def region_map_panel(
  canvas: np.ndarray, frame: InputFrame, values: np.ndarray, scale: ColourScale, caption: str, query: int | None = None
) -> np.ndarray:
  """`canvas` with a (h, w) region map over the network input coloured on `scale` (the query region boxed in
  red when `query` is a flat region index), its caption and its colour bar underneath."""
  grid = np.shape(values)
  colours, inside = frame.grid_on_canvas(values)
  panel = blend(canvas, scale.colours(colours), 0.6, where=inside)
  if query is not None:
    panel = draw_region_box(panel, frame, query, grid)
  return stack([captioned(panel, [(caption, WHITE)]), colour_bar(panel.shape[1], scale)])


def draw_region_box(image: np.ndarray, frame: InputFrame, region: int, grid: tuple[int, int], colour=RED) -> np.ndarray:
  """A copy of `image` with the outline of flat region index `region` of an (h, w) grid over the network
  input drawn in `colour`, 2 px wide (inside the region)."""
  x1, y1, x2, y2 = frame.cell_box(region, grid)
  picture = Image.fromarray(np.asarray(image, np.uint8))
  width = max(2, round(min(image.shape[:2]) / 128))
  ImageDraw.Draw(picture).rectangle(
    [round(x1), round(y1), max(round(x2) - 1, round(x1)), max(round(y2) - 1, round(y1))], outline=colour, width=width
  )
  return np.asarray(picture)


def region_dependency_picture(
  image: np.ndarray, frame: InputFrame, outputs: Mapping[str, np.ndarray], score_scale: ColourScale, description: str
) -> np.ndarray:
  """RGNet's Fig. 6 for one image, uint8 (H, W, 3): a title with the prediction (and the truth), the image
  with the query region (its highest-scoring one) boxed in red, the cosine similarity of every region to it
  after each stage the variant has (SIMILARITY_SCALE) and the region score map (`score_scale`), each panel
  captioned over its colour bar. `image` is the canvas (the photo, or the network input) and `frame` places
  the network input on it; `outputs` holds one example's region maps."""
  canvas, display = resize_for_display(image)
  frame = frame.resized(display)
  quality = np.asarray(outputs["region_quality"])
  grid, query = quality.shape, int(outputs["query_region"])
  boxed = draw_region_box(canvas, frame, query, grid)
  panels = [captioned(boxed, [("image; red box: the query region", WHITE)])]
  for stage in SIMILARITY_STAGES:
    key = f"similarity_{stage}"
    if key in outputs:
      panels.append(region_map_panel(canvas, frame, outputs[key], SIMILARITY_SCALE, STAGE_CAPTIONS[stage], query))
  panels.append(region_map_panel(canvas, frame, quality, score_scale, "region scores"))
  return titled(side_by_side(panels), f"RGNet region dependencies (Fig. 6); prediction: {description}")


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
