"""Scene-graph generation (LinkNet): PredCls / SGCls losses (eq. 18), recall metrics, Fig. 2 and Fig. 3 pictures.

Loss (eq. 18 with configurable weights), every term a mean over what is real (masks):
  object_weight * CE(O4, object labels) over real objects
  + relation_weight * CE(G2, pair labels) over the sampled training pairs (background pairs have label 0)
  + global_weight * BCE(global multi-label head, classes present)  (GCEM; mean over classes and images)
  + detector_weight * CE(object classifier feeding K0 in SGCls) (stands in for the reference's detector).
The paper's GCEM is "binary sigmoid classifiers" (`global_activation='sigmoid'`, default); the reference code
applies a softmax over the classes before its BCELoss (`'softmax'`) (docs/paper_details.md, LinkNet network).

Evaluation: `SceneGraphEvaluator` in the task's mode (R@K, ngR@K, mR@K, zR@K with the training split's
triplets, per-predicate recall) on GT boxes in the network's input frame (identical boxes on both sides,
so the frame does not change PredCls / SGCls hits); plus the objects / relations cut by the padding.
`pack_scene_graph(max_objects, max_relations)` in `config.data.pp_eval` keeps at most that many per image
(64 / 128 in the VG configs); a relation cut there (or lost with a cut object) is absent from R@K's
denominator. The eval metrics count them (`num_cut_objects`, `num_cut_relations`, `num_images_cut`) and
every evaluation that cut anything logs a warning with those counts.

Pictures (scene_graph_pictures): at each evaluation the ground-truth relations of up to `num_pictures` images
drawn found (green) or missed (red) by the top predictions, and the Fig. 2 matrices; from
`python -m jaxgraphs.predict` the top 10 predicted relations with score >= 0.1 over the photo. Objects and
relations are numbered on the image and named in a legend beside it.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from jaxgraphs.errors import ConfigError
from jaxgraphs.evaluation.scene_graph_recall import DEFAULT_KS, IMAGES_WITHOUT_PAIRS, SceneGraphEvaluator
from jaxgraphs.tasks import base
from jaxgraphs.tasks.base import masked_mean
from jaxgraphs.tasks.display import GREEN, RED, YELLOW, as_uint8_image, images_for_display, same_size
from jaxgraphs.tasks.input_frame import InputFrame
from jaxgraphs.tasks.scene_graph_pictures import (
  MAX_RELATIONS,
  MIN_RELATION_SCORE,
  Relation,
  draw_scene_graph,
  relation_matrix_picture,
)

MODES = ("predcls", "sgcls", "sgdet")
GLOBAL_ACTIVATIONS = ("sigmoid", "softmax")
FIG2_MATRIX = "object_re2"
MIN_OBJECT_SCORE = 0.5  # SGDet pictures: detections below this are drawn only when a drawn relation uses them  # eq. (4): the second object-relational embedding


def default_task_config() -> ml_collections.ConfigDict:
  """`config.task` of the scene-graph task with its defaults."""
  return ml_collections.ConfigDict(
    {
      "name": "scene_graph",
      "mode": "predcls",  # 'predcls', 'sgcls' or 'sgdet'
      "object_weight": 1.0,
      "relation_weight": 1.0,  # lambda_1
      "global_weight": 1.0,  # lambda_2
      "detector_weight": 1.0,  # SGCls object classifier feeding K0
      "global_activation": "sigmoid",  # 'sigmoid' (paper) or 'softmax' (reference code)
      "recall_ks": DEFAULT_KS,
      "zero_shot": True,  # zR@K from the training split's triplets
      # An image with GT relations but no candidate pair: 'zero' recall (neural-motifs) or 'skip' it
      # (Scene-Graph-Benchmark leaves it out of every mean).
      "images_without_pairs": "zero",
      "num_pictures": 4,  # eval pictures per evaluation
    }
  )


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
  """Softmax cross-entropy per entry."""
  return optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), labels.astype(jnp.int32))


def global_context_loss(logits: jax.Array, labels: jax.Array, activation: str) -> jax.Array:
  """Per-image mean BCE of the multi-label head; 'softmax' clamps the logs at -100 as torch's BCELoss."""
  logits = logits.astype(jnp.float32)
  if activation == "sigmoid":
    return jnp.mean(optax.sigmoid_binary_cross_entropy(logits, labels), axis=-1)
  probs = jax.nn.softmax(logits, axis=-1)
  log_p = jnp.maximum(jnp.log(probs), -100.0)
  log_not_p = jnp.maximum(jnp.log1p(-probs), -100.0)
  return -jnp.mean(labels * log_p + (1.0 - labels) * log_not_p, axis=-1)


def object_predictions(object_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """SGCls labels (argmax over the non-background classes) and their softmax scores."""
  logits = np.asarray(object_logits, np.float64)
  probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
  probs /= probs.sum(axis=-1, keepdims=True)
  labels = np.argmax(probs[..., 1:], axis=-1) + 1
  return labels, np.take_along_axis(probs, labels[..., None], axis=-1)[..., 0]


def top_relations(
  relation_logits: np.ndarray, pairs: np.ndarray, pair_mask: np.ndarray, object_scores: np.ndarray, k: int
) -> list[tuple[int, int, int, float]]:
  """One image's k best (subject, object, predicate, score) with graph constraint, as the evaluator ranks them."""
  logits = np.asarray(relation_logits, np.float64)
  probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
  probs /= probs.sum(axis=-1, keepdims=True)
  predicate = np.argmax(probs[:, 1:], axis=-1) + 1
  scores = probs[np.arange(len(probs)), predicate] * object_scores[pairs[:, 0]] * object_scores[pairs[:, 1]]
  scores = np.where(np.asarray(pair_mask, bool), scores, -1.0)
  order = np.argsort(-scores, kind="stable")[:k]
  return [(int(pairs[i, 0]), int(pairs[i, 1]), int(predicate[i]), float(scores[i])) for i in order if scores[i] >= 0]


class _Evaluator(base.Evaluator):
  """SceneGraphEvaluator on the padded batches, plus the numbers of objects and relations cut by padding."""

  def __init__(self, mode: str, ks, train_triplets, predicate_names: Sequence[str], images_without_pairs="zero"):
    self._recall = SceneGraphEvaluator(
      modes=(mode,),
      ks=ks,
      train_triplets=train_triplets,
      num_predicates=len(predicate_names),
      images_without_pairs=images_without_pairs,
    )
    self._predicate_names = tuple(predicate_names)  # without the background
    self._cut = {"num_cut_objects": 0, "num_cut_relations": 0}
    self._images_cut = 0
    self._kept_relations = 0

  def update(self, outputs: Mapping[str, np.ndarray]) -> None:
    real = np.asarray(outputs["mask"]) > 0
    cut_per_image = np.zeros(int(real.sum()), np.int64)
    for key in self._cut:
      counts = np.asarray(outputs[key])[real]
      self._cut[key] += int(np.sum(counts))
      cut_per_image += counts.astype(np.int64)
    self._images_cut += int(np.count_nonzero(cut_per_image))
    self._kept_relations += int(np.sum(np.asarray(outputs["gt_relation_mask"])[real] > 0))
    self._recall.update_batch({k: v for k, v in outputs.items() if k not in self._cut})

  def result(self) -> dict[str, Any]:
    metrics = {**self._recall.result(), **self._cut, "num_images_cut": self._images_cut}
    if self._images_cut:
      # Cut relations silently leave R@K's denominator: say so wherever the metrics are read.
      relations = self._cut["num_cut_relations"]
      logging.warning(
        "scene-graph evaluation: pack_scene_graph cut %d objects and %d of %d ground-truth relations (%.2f%%) in "
        "%d images; R@K counts only the kept relations. Raise pack_scene_graph's limits in config.data.pp_eval "
        "to evaluate every relation.",
        self._cut["num_cut_objects"],
        relations,
        relations + self._kept_relations,
        100.0 * relations / max(relations + self._kept_relations, 1),
        self._images_cut,
      )
    # Per-predicate recalls keyed by predicate name in the eval JSON (NaN: the predicate never occurs).
    for key, values in metrics.items():
      if "per_predicate_" in key and len(values) == len(self._predicate_names):
        metrics[key] = dict(zip(self._predicate_names, values))
    return metrics


class SceneGraphTask(base.Task):
  """GT boxes in, object labels (SGCls) and a predicate distribution for every ordered pair out."""

  required_outputs = ("object_logits", "relation_logits", "pairs", "pair_mask", "boxes", "box_mask")

  def __init__(
    self,
    mode: str,
    class_names,
    predicate_names,
    train_triplets=None,
    *,
    object_weight=1.0,
    relation_weight=1.0,
    global_weight=1.0,
    detector_weight=1.0,
    global_activation="sigmoid",
    recall_ks=DEFAULT_KS,
    num_pictures=4,
    images_without_pairs="zero",
  ):
    if mode not in MODES:
      raise ConfigError(f"config.task.mode={mode!r}; expected one of {MODES}")
    if global_activation not in GLOBAL_ACTIVATIONS:
      raise ConfigError(f"config.task.global_activation={global_activation!r}; expected one of {GLOBAL_ACTIVATIONS}")
    self.mode = mode
    self.class_names = tuple(class_names)
    self.predicate_names = tuple(predicate_names)
    self.train_triplets = train_triplets
    self.weights = {
      "object": object_weight,
      "relation": relation_weight,
      "global": global_weight,
      "detector": detector_weight,
    }
    self.global_activation = global_activation
    self.recall_ks = tuple(recall_ks)
    self.num_pictures = int(num_pictures)
    if images_without_pairs not in IMAGES_WITHOUT_PAIRS:
      raise ValueError(
        f"config.task.images_without_pairs={images_without_pairs!r}; expected one of {IMAGES_WITHOUT_PAIRS}"
      )
    self.images_without_pairs = images_without_pairs
    self.default_metric = f"{mode}/R@50"
    # jaxgraphs.predict: PredCls / SGCls are given the objects (--boxes); SGDet detects them.
    self.needs_boxes_file = mode != "sgdet"

  def model_inputs(self, batch):
    inputs = {
      "images": batch["image"],
      "boxes": batch["object_boxes"],
      "box_mask": batch["object_mask"],
      "object_labels": batch["object_labels"],
    }
    if "pairs" in batch:  # training batches carry the sampled pairs; evaluation scores all pairs
      inputs.update(pairs=batch["pairs"], pair_mask=batch["pair_mask"])
    if self.mode == "sgdet":  # the ground truth labels the detections in training; image_size bounds them
      inputs.update(relations=batch["relations"], relation_mask=batch["relation_mask"])
      if "image_size" in batch:
        inputs["image_size"] = batch["image_size"]
    return inputs

  def loss(self, outputs, batch):
    image_mask = batch["mask"].astype(jnp.float32)
    # SGDet: the objects are detections, labelled (and their pairs sampled) by the model against the ground truth.
    sgdet = "object_labels" in outputs
    object_mask = (outputs["box_mask"] if sgdet else batch["object_mask"]) * image_mask[:, None]
    labels = outputs["object_labels"] if sgdet else batch["object_labels"]
    terms = {"object_loss": masked_mean(cross_entropy(outputs["object_logits"], labels), object_mask)}
    metrics = {"object_accuracy": masked_mean(jnp.argmax(outputs["object_logits"], -1) == labels, object_mask)}
    if not sgdet and "pair_labels" not in batch:
      raise ValueError(
        "scene-graph training batches need 'pair_labels': end config.data.pp_train with sample_relation_pairs(...)"
      )
    pair_mask = (outputs["pair_mask"] if sgdet else batch["pair_mask"]) * image_mask[:, None]
    pair_labels = outputs["pair_labels"] if sgdet else batch["pair_labels"]
    terms["relation_loss"] = masked_mean(cross_entropy(outputs["relation_logits"], pair_labels), pair_mask)
    foreground = pair_mask * (pair_labels > 0)
    metrics["relation_fg_accuracy"] = masked_mean(jnp.argmax(outputs["relation_logits"], -1) == pair_labels, foreground)
    if "global_logits" in outputs:
      terms["global_loss"] = masked_mean(
        global_context_loss(outputs["global_logits"], batch["labels"], self.global_activation), image_mask
      )
    if "detector_logits" in outputs:
      terms["detector_loss"] = masked_mean(cross_entropy(outputs["detector_logits"], labels), object_mask)
    total = sum(self.weights[name.removesuffix("_loss")] * value for name, value in terms.items())
    metrics.update(terms)
    metrics["cut_objects"] = jnp.sum(batch["num_cut_objects"] * image_mask)
    metrics["cut_relations"] = jnp.sum(batch["num_cut_relations"] * image_mask)
    return total, metrics

  def eval_outputs(self, outputs, batch):
    result = {
      "gt_boxes": batch["object_boxes"],
      "gt_labels": batch["object_labels"],
      "gt_box_mask": batch["object_mask"],
      "gt_relations": batch["relations"],
      "gt_relation_mask": batch["relation_mask"],
      "pair_scores": jax.nn.softmax(outputs["relation_logits"].astype(jnp.float32), axis=-1),
      "pair_mask": outputs["pair_mask"],
      "mask": batch["mask"],
      "num_cut_objects": batch["num_cut_objects"],
      "num_cut_relations": batch["num_cut_relations"],
    }
    if outputs["pairs"].shape[1] != batch["object_boxes"].shape[1] ** 2:
      result["pairs"] = outputs["pairs"]
    if self.mode == "sgdet":
      result.update(pred_boxes=outputs["boxes"], pred_box_mask=outputs["box_mask"])
    if self.mode in ("sgcls", "sgdet"):
      probs = jax.nn.softmax(outputs["object_logits"].astype(jnp.float32), axis=-1)
      result["pred_labels"] = jnp.argmax(probs[..., 1:], axis=-1) + 1
      result["pred_scores"] = jnp.take_along_axis(probs, result["pred_labels"][..., None], axis=-1)[..., 0]
    return result

  def make_evaluator(self):
    return _Evaluator(
      self.mode, self.recall_ks, self.train_triplets, self.predicate_names[1:], self.images_without_pairs
    )

  def summary_images(self, batch):
    return {"train/images": images_for_display(batch["image"][: self.num_pictures])}

  # ---- pictures ------------------------------------------------------------------------------------------------
  def _objects(self, outputs: Mapping[str, np.ndarray], index: int, count: int, given_labels=None):
    """(labels, scores) of image `index`'s first `count` objects: the given labels with score 1 in PredCls,
    the predicted ones (argmax over non-background classes) in SGCls."""
    if self.mode == "predcls" and given_labels is not None:
      return np.asarray(given_labels)[:count], np.ones(count)
    labels, scores = object_predictions(outputs["object_logits"][index])
    return labels[:count], scores[:count]

  def _ranked(self, outputs, index: int, scores: np.ndarray, k: int):
    """top_relations of image `index` with its object scores padded back to the padded object count."""
    padded = np.zeros(np.asarray(outputs["box_mask"][index]).shape[0])
    padded[: len(scores)] = scores
    return top_relations(
      outputs["relation_logits"][index],
      np.asarray(outputs["pairs"][index]),
      np.asarray(outputs["pair_mask"][index]),
      padded,
      k,
    )

  def graph_picture(
    self,
    outputs: Mapping[str, np.ndarray],
    image: np.ndarray,
    index: int,
    given_labels=None,
    gt_relations=None,
    frame: InputFrame | None = None,
  ) -> np.ndarray:
    """Fig. 3 style over `image` (the network input, or the photo with `frame` placing the input on it).

    With GT relations: each GT relation green where the top predictions (as many as GT relations) contain it
    with both labels right, red where they miss it (at most MAX_RELATIONS drawn, hits first). Without: the
    predicted top MAX_RELATIONS relations whose score is at least MIN_RELATION_SCORE."""
    image = as_uint8_image(image)
    frame = frame or InputFrame.identity(image.shape[:2])
    count = int(np.sum(np.asarray(outputs["box_mask"][index]) > 0))
    boxes = np.asarray(outputs["boxes"][index])[:count]
    labels, scores = self._objects(outputs, index, count, given_labels)
    object_scores = None if self.mode == "predcls" else scores
    if gt_relations is None:
      ranked = self._ranked(outputs, index, scores, MAX_RELATIONS)
      drawn = [Relation(s, o, p, YELLOW, score) for s, o, p, score in ranked if score >= MIN_RELATION_SCORE]
      heading = [f"relations: the top {MAX_RELATIONS} with score >= {MIN_RELATION_SCORE:g}"]
      title = f"LinkNet scene graph ({self.mode})"
      not_drawn = 0
    else:
      gt_labels = np.asarray(given_labels)[:count]
      truth = sorted({(int(s), int(o), int(p)) for s, o, p in gt_relations})
      found = {
        (s, o, p): score
        for s, o, p, score in self._ranked(outputs, index, scores, max(1, len(truth)))
        if (s, o, p) in set(truth) and labels[s] == gt_labels[s] and labels[o] == gt_labels[o]
      }
      everything = [Relation(*t, GREEN, found[t]) for t in truth if t in found]
      everything += [Relation(*t, RED) for t in truth if t not in found]
      drawn, not_drawn = everything[:MAX_RELATIONS], max(len(everything) - MAX_RELATIONS, 0)
      heading = [
        f"ground-truth relations ({len(found)} of {len(truth)} found):",
        f"green: in the top {len(truth)} predictions (score shown)",
        "red: missed",
      ]
      title = f"LinkNet scene graph ({self.mode}) against the ground truth"
    if self.mode == "sgdet":
      # Up to 64 detections would bury the graph: draw those in a drawn relation or confidently detected.
      keep = sorted({i for r in drawn for i in (r.subject, r.object)} | set(np.flatnonzero(scores >= MIN_OBJECT_SCORE)))
      renumber = {old: new for new, old in enumerate(keep)}
      boxes, labels, object_scores = boxes[keep], np.asarray(labels)[keep], np.asarray(scores)[keep]
      drawn = [r._replace(subject=renumber[r.subject], object=renumber[r.object]) for r in drawn]
      heading = [f"({len(keep)} of {count} detections drawn: in a relation or score >= {MIN_OBJECT_SCORE:g})"] + heading
    return draw_scene_graph(
      image,
      frame,
      boxes,
      labels,
      self.class_names,
      drawn,
      self.predicate_names,
      title,
      heading,
      object_scores,
      not_drawn,
    )

  def eval_images(self, outputs, batch):
    real = np.flatnonzero(np.asarray(batch["mask"]) > 0)[: self.num_pictures]
    if len(real) == 0:
      return {}
    graphs, matrices = [], []
    for index in real:
      picture = as_uint8_image(batch["image"][index])
      if self.mode == "sgdet":  # detections are not the annotated objects: draw the predicted graph
        graphs.append(self.graph_picture(outputs, picture, index))
        continue
      relations = np.asarray(batch["relations"][index])[np.asarray(batch["relation_mask"][index]) > 0]
      graphs.append(self.graph_picture(outputs, picture, index, batch["object_labels"][index], relations))
      if FIG2_MATRIX in outputs.get("relational_matrices", {}):
        size = batch["object_mask"].shape[1]
        adjacency = np.zeros((size, size))
        adjacency[relations[:, 0], relations[:, 1]] = 1
        weights = np.asarray(outputs["relational_matrices"][FIG2_MATRIX][index])
        count = int(np.sum(batch["object_mask"][index] > 0))
        matrices.append(relation_matrix_picture(adjacency, weights, count, FIG2_MATRIX))
    pictures = {"eval/scene_graphs": same_size(graphs)}
    if matrices:
      pictures["eval/relational_embedding"] = same_size(matrices)
    return pictures

  # ---- jaxgraphs.predict hooks ---------------------------------------------------------------------------
  def prediction_fields(self, annotation: Mapping[str, Any], image_size: tuple[int, int]) -> dict[str, np.ndarray]:
    """Raw example fields for `pp_eval` from one --boxes JSON entry of an image of (height, width) pixels.

    The entry is {"boxes": [[x1, y1, x2, y2], ...] (pixels of the image file), "labels": [class name or
    index, ...]}; PredCls needs the labels, SGCls predicts them (labels may be left out). The result goes
    into the example with the encoded image, before `pp_eval`'s `pack_scene_graph`.
    """
    height, width = image_size
    no_relations = np.zeros(0, np.int32)
    if self.mode == "sgdet":  # the detector finds the objects: no ground truth goes in
      return {
        "boxes": np.zeros((0, 4), np.float32),
        "box_labels": no_relations,
        "relations": {"subject": no_relations, "object": no_relations, "predicate": no_relations},
      }
    boxes = np.asarray(annotation.get("boxes", []), np.float64).reshape(-1, 4) if "boxes" in annotation else None
    if boxes is None or len(boxes) == 0:
      raise ValueError("--boxes entry needs 'boxes': [[x1, y1, x2, y2], ...] in pixels of the image")
    if np.any(boxes[:, 2:] < boxes[:, :2]):
      raise ValueError("--boxes: every box must have x2 >= x1 and y2 >= y1")
    labels = annotation.get("labels")
    if labels is None:
      if self.mode == "predcls":
        raise ValueError("--boxes: PredCls needs 'labels' with the boxes (class names or indices)")
      labels = [0] * len(boxes)
    if len(labels) != len(boxes):
      raise ValueError(f"--boxes: {len(labels)} labels for {len(boxes)} boxes")
    indices = []
    for label in labels:
      if isinstance(label, str):
        if label not in self.class_names:
          raise ValueError(f"--boxes: unknown class {label!r}; classes: {', '.join(self.class_names[1:])}")
        label = self.class_names.index(label)
      if not 0 <= int(label) < len(self.class_names):
        raise ValueError(f"--boxes: class index {label} outside [0, {len(self.class_names)})")
      indices.append(int(label))
    normalised = np.clip(boxes[:, [1, 0, 3, 2]] / [height, width, height, width], 0.0, 1.0).astype(np.float32)
    return {
      "boxes": normalised,
      "box_labels": np.asarray(indices, np.int32),
      "relations": {"subject": no_relations, "object": no_relations, "predicate": no_relations},
    }

  def predict_json(
    self, outputs: Mapping[str, np.ndarray], index: int, frame: InputFrame | None = None, top_k: int = 20
  ) -> dict[str, Any]:
    """One image's scene graph: objects (box, label, score) and the top_k relations with graph constraint.

    Objects keep the order of the input boxes (relations index them); boxes are in pixels of the photo
    (`frame` places the network input on it; without a frame, pixels of the network input). PredCls: the
    labels given with the boxes (score 1); SGCls: the predicted labels and their scores.
    """
    count = int(np.sum(np.asarray(outputs["box_mask"][index]) > 0))
    labels, scores = self._objects(outputs, index, count, outputs["k1_labels"][index])
    boxes = np.asarray(outputs["boxes"][index])[:count]
    if frame is not None:
      boxes = frame.boxes_to_canvas(boxes)
    return {
      "mode": self.mode,
      "objects": [
        {"box": [float(v) for v in box], "label": self.class_names[int(label)], "score": float(score)}
        for box, label, score in zip(boxes, labels, scores)
      ],
      "relations": [
        {"subject": s, "object": o, "predicate": self.predicate_names[p], "score": score}
        for s, o, p, score in self._ranked(outputs, index, scores, top_k)
      ],
    }

  def predict_pictures(
    self, outputs: Mapping[str, np.ndarray], image: np.ndarray, index: int, frame: InputFrame | None = None
  ) -> dict[str, np.ndarray]:
    """The predicted scene graph (the top MAX_RELATIONS relations with score >= MIN_RELATION_SCORE) drawn over
    one image: the photo with `frame` placing the network input on it, or the network input itself."""
    return {"scene_graph": self.graph_picture(outputs, image, index, outputs["k1_labels"][index], frame=frame)}


def scene_graph_task(config: ml_collections.ConfigDict, data_info) -> SceneGraphTask:
  """The task for `config.task` on the scene-graph source of `config.data` (training triplets read once)."""
  from jaxgraphs.data import sources
  from jaxgraphs.errors import ConfigError

  source = sources.get_source(data_info.source)
  if not isinstance(source, sources.SceneGraphSource):
    raise ConfigError(f"config.data.source={data_info.source!r} is not a scene-graph source")
  cfg = default_task_config()
  unknown = set(config.task.keys()) - set(cfg.keys())
  if unknown:
    raise ConfigError(f"config.task has keys the scene_graph task does not know: {sorted(unknown)}")
  cfg.update(config.task)
  triplets = None
  if cfg.zero_shot:
    triplets = source.train_triplets(config.data.data_dir, data_info.train_split)
  return SceneGraphTask(
    cfg.mode,
    data_info.class_names,
    source.predicate_names,
    triplets,
    object_weight=cfg.object_weight,
    relation_weight=cfg.relation_weight,
    global_weight=cfg.global_weight,
    detector_weight=cfg.detector_weight,
    global_activation=cfg.global_activation,
    recall_ks=cfg.recall_ks,
    num_pictures=cfg.num_pictures,
    images_without_pairs=cfg.images_without_pairs,
  )


def load_boxes_json(path: str) -> dict[str, Any]:
  """The --boxes file: {image path or file name: {"boxes": [[x1, y1, x2, y2], ...], "labels": [...]}}."""
  import json

  with open(path) as f:
    entries = json.load(f)
  if not isinstance(entries, dict):
    raise ValueError(f"--boxes={path}: expected an object mapping image paths to {{'boxes': ..., 'labels': ...}}")
  return entries


def boxes_entry(entries: Mapping[str, Any], image_path: str) -> Mapping[str, Any]:
  """The entry of `image_path` in a --boxes file, by the path as given or by its file name."""
  import os

  for key in (image_path, os.path.basename(image_path)):
    if key in entries:
      return entries[key]
  raise ValueError(f"--boxes has no entry for {image_path!r} (keys are image paths or file names)")
