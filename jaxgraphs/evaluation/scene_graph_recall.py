"""Scene-graph recall (NumPy, host side): R@K, ngR@K, mR@K, zR@K and per-predicate recall.

The standard protocol of neural-motifs / Scene-Graph-Benchmark (docs/paper_details.md, Scene-graph recall):

- Scores. A predicted relation (subject i, object j, predicate p) scores
  `object_score[i] * object_score[j] * predicate_score[pair, p]`, computed in float64.
- With graph constraint (`R@K`) each pair predicts one predicate: the argmax over the non-background
  columns (column 0 of `pair_scores` is background and never predicted). Pairs are ranked by the triple
  score and the top K are kept. Without graph constraint (`ngR@K`) every (pair, predicate) entry is ranked
  by its triple score and the top K entries are kept, so one pair may predict several predicates.
- Ties are broken by a stable order: the earlier pair in `pairs` first and, without graph constraint, the
  lower predicate index within a pair; an argmax tie goes to the lower predicate index. The reference code
  sorts with an unstable sort (np.argsort / torch.sort), i.e. its tie order is arbitrary.
- Matching. A predicted triplet hits a ground-truth (GT) triplet when subject class, predicate and object
  class are equal and both the subject boxes and the object boxes have IoU >= 0.5, with the +1 pixel
  convention (area = (x2 - x1 + 1) * (y2 - y1 + 1)). A GT relation counts once however many predictions
  hit it; identical GT rows (duplicates in the annotations) are separate relations and each can be hit.
- R@K of an image = hit GT relations / GT relations; the result is the mean over the images that have at
  least one GT relation (images without one are not counted at all).
- An image with GT relations but no candidate pair (e.g. no predicted pair survives, or SGDet finds no
  boxes) has recall 0 by default (`images_without_pairs='zero'`, as neural-motifs' evaluation, whose empty
  prediction list matches nothing). Scene-Graph-Benchmark returns before recording such an image, so it
  leaves every mean (R, ngR, mR, zR) of that mode: `images_without_pairs='skip'`. Either way
  `{mode}/num_images_without_pairs` counts them, and `{mode}/num_images` counts the images averaged over.
- mR@K: per predicate, the mean over the images that contain it of (hit / count) for that predicate; mR is
  the mean of the per-predicate recalls over ALL `num_predicates` predicates, a predicate that occurs in
  no evaluated image counting as 0 - exactly Scene-Graph-Benchmark's `SGMeanRecall` (it divides by 50).
  `per_predicate_R@K` reports such a predicate as NaN instead, so it can be told apart from "never hit".
- zR@K: only GT relations whose triplet (subject class, object class, predicate) never occurs in the
  training set count; per image hit / count over those, mean over the images with at least one.
- Modes: `predcls` uses the GT boxes and labels with object score 1 (any predicted object fields are
  ignored); `sgcls` uses the GT boxes with predicted labels and scores; `sgdet` uses predicted boxes, labels
  and scores. All metrics are fractions in [0, 1] (papers print them x100).

Per-image input (`SceneGraphEvaluator.update`), NumPy arrays or anything np.asarray accepts:
  gt_boxes (n, 4) x1, y1, x2, y2 in pixels; gt_labels (n,); gt_relations (m, 3) subject index, object
  index, predicate (1..num_predicates); pairs (p, 2) subject, object indices into the predicted objects;
  pair_scores (p, num_predicates + 1) including the background column; pred_labels (d,), pred_scores (d,)
  [sgcls, sgdet]; pred_boxes (d, 4) [sgdet].
"""

from __future__ import annotations

from typing import Iterator, Mapping, Sequence

import numpy as np

MODES = ("predcls", "sgcls", "sgdet")
# An image with GT relations and no candidate pair: 'zero' recall (neural-motifs) or 'skip' (Scene-Graph-Benchmark).
IMAGES_WITHOUT_PAIRS = ("zero", "skip")
DEFAULT_KS = (20, 50, 100)
NUM_PREDICATES = 50  # VG-150; pair_scores carry one more column, the background at index 0
IOU_THRESHOLD = 0.5
_NO_HIT = np.iinfo(np.int64).max  # rank of the first hit of a GT relation that nothing hits
_KEY_BITS = 21  # a triplet (s, o, p) is packed into one int64 key; labels must be < 2**21


def box_iou(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
  """IoU matrix (len(a), len(b)) of x1, y1, x2, y2 pixel boxes with the +1 pixel convention."""
  a = np.asarray(boxes_a, dtype=np.float64)
  b = np.asarray(boxes_b, dtype=np.float64)
  area_a = (a[:, 2] - a[:, 0] + 1.0) * (a[:, 3] - a[:, 1] + 1.0)
  area_b = (b[:, 2] - b[:, 0] + 1.0) * (b[:, 3] - b[:, 1] + 1.0)
  inter_w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]) + 1.0
  inter_h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]) + 1.0
  intersection = np.clip(inter_w, 0.0, None) * np.clip(inter_h, 0.0, None)
  return intersection / (area_a[:, None] + area_b[None, :] - intersection)


def stable_top_k(scores: np.ndarray, k: int) -> np.ndarray:
  """Indices of the k largest scores, best first, ties in index order (= np.argsort(-s, stable)[:k])."""
  if scores.size <= k:
    return np.argsort(-scores, kind="stable")
  kth_largest = np.partition(scores, scores.size - k)[scores.size - k]
  # Every member of the stable top k scores >= the k-th largest value, so only those need sorting.
  candidates = np.flatnonzero(scores >= kth_largest)
  return candidates[np.argsort(-scores[candidates], kind="stable")[:k]]


def triplet_keys(subject_labels, object_labels, predicates) -> np.ndarray:
  """One int64 key per (subject class, object class, predicate) triplet, for set membership tests."""
  s, o, p = (np.asarray(x, dtype=np.int64) for x in (subject_labels, object_labels, predicates))
  if s.size and (min(s.min(), o.min(), p.min()) < 0 or max(s.max(), o.max(), p.max()) >= 2**_KEY_BITS):
    raise ValueError(f"triplet labels must lie in [0, 2**{_KEY_BITS})")
  return (s << (2 * _KEY_BITS)) | (o << _KEY_BITS) | p


def training_triplets(gt_labels_per_image: Sequence, gt_relations_per_image: Sequence) -> np.ndarray:
  """Distinct (subject class, object class, predicate) rows (T, 3) of a training split, for zR@K."""
  rows = [
    np.stack([np.asarray(labels)[rels[:, 0]], np.asarray(labels)[rels[:, 1]], rels[:, 2]], axis=1)
    for labels, rels in zip(gt_labels_per_image, map(np.asarray, gt_relations_per_image))
    if rels.size
  ]
  if not rows:
    return np.zeros((0, 3), dtype=np.int64)
  return np.unique(np.concatenate(rows).astype(np.int64), axis=0)


def _array(image: Mapping, key: str, ndim: int, dtype=None) -> np.ndarray:
  """image[key] as an array of `ndim` dimensions (`dtype=None`: any float kept), or a ValueError naming it."""
  if key not in image:
    raise ValueError(f"scene-graph image dict lacks the field {key!r} (has {sorted(image)})")
  value = np.asarray(image[key])
  if value.ndim != ndim:
    raise ValueError(f"scene-graph field {key!r} must be {ndim}-D, got shape {value.shape}")
  if dtype is None:
    # float32 scores stay float32 (their products are taken in float64): no copy of a large matrix.
    return value if np.issubdtype(value.dtype, np.floating) else value.astype(np.float64)
  return value.astype(dtype, copy=False)


def _check_indices(name: str, indices: np.ndarray, size: int, size_name: str) -> None:
  """Raises if an index in `indices` is outside [0, size)."""
  if indices.size and (indices.min() < 0 or indices.max() >= size):
    raise ValueError(f"{name} holds indices outside [0, {size}) = [0, number of {size_name})")


def first_hit_ranks(
  gt_boxes, gt_labels, gt_relations, pred_boxes, pred_labels, pred_scores, pairs, pair_scores, max_k: int
) -> tuple[np.ndarray, np.ndarray]:
  """Rank (0-based) of the first prediction hitting each GT relation, with and without graph constraint.

  Only the top `max_k` predictions are looked at; a GT relation none of them hits gets a huge rank, so
  that GT relation r is recalled at K exactly when `ranks[r] < K`. Returns (graph, no_graph), each (m,).
  """
  num_predicates = pair_scores.shape[1] - 1
  if pairs.shape[0] == 0:
    no_hit = np.full(gt_relations.shape[0], _NO_HIT, dtype=np.int64)
    return no_hit, no_hit.copy()
  object_pair_scores = pred_scores[pairs[:, 0]] * pred_scores[pairs[:, 1]]
  predicate_scores = pair_scores[:, 1:]
  best_predicate = predicate_scores.argmax(axis=1)
  graph_scores = object_pair_scores * predicate_scores[np.arange(len(pairs)), best_predicate]
  top_pairs = stable_top_k(graph_scores, max_k)

  no_graph_scores = (object_pair_scores[:, None] * predicate_scores).ravel()
  if len(top_pairs) == max_k:
    # The k-th best pair score is a lower bound of the k-th best entry: each pair's best entry is one.
    candidates = np.flatnonzero(no_graph_scores >= graph_scores[top_pairs[-1]])
    top_entries = candidates[stable_top_k(no_graph_scores[candidates], max_k)]
  else:
    top_entries = stable_top_k(no_graph_scores, max_k)
  entry_pairs, entry_predicates = np.divmod(top_entries, num_predicates)

  iou = box_iou(gt_boxes, pred_boxes)
  gt_subjects, gt_objects, gt_predicates = gt_relations[:, 0], gt_relations[:, 1], gt_relations[:, 2]
  gt_subject_labels, gt_object_labels = gt_labels[gt_subjects], gt_labels[gt_objects]

  def ranks(subjects, objects, predicates):
    hits = (
      (gt_predicates[:, None] == predicates[None, :])
      & (gt_subject_labels[:, None] == pred_labels[subjects][None, :])
      & (gt_object_labels[:, None] == pred_labels[objects][None, :])
      & (iou[gt_subjects[:, None], subjects[None, :]] >= IOU_THRESHOLD)
      & (iou[gt_objects[:, None], objects[None, :]] >= IOU_THRESHOLD)
    )
    return np.where(hits.any(axis=1), hits.argmax(axis=1), _NO_HIT)

  graph = ranks(pairs[top_pairs, 0], pairs[top_pairs, 1], best_predicate[top_pairs] + 1)
  no_graph = ranks(pairs[entry_pairs, 0], pairs[entry_pairs, 1], entry_predicates + 1)
  return graph, no_graph


class _RecallSums:
  """Running sums behind R@K, mR@K and zR@K of one mode and one constraint, with the image counts they are
  divided by (per mode, since `images_without_pairs='skip'` may leave an image out of one mode only)."""

  def __init__(self, ks: Sequence[int], num_predicates: int):
    self.ks = np.asarray(ks)
    self.recall = np.zeros(len(ks))
    self.predicate_recall = np.zeros((len(ks), num_predicates + 1))
    self.zero_shot_recall = np.zeros(len(ks))
    self.images = 0
    self.zero_shot_images = 0
    self.predicate_images = np.zeros(num_predicates + 1, dtype=np.int64)

  def add(self, ranks, gt_predicates, predicate_counts, present, zero_shot) -> None:
    """Adds one image: `ranks` (m,) from `first_hit_ranks`, its GT predicates and zero-shot mask."""
    self.images += 1
    self.zero_shot_images += int(zero_shot.any())
    self.predicate_images += present
    hit = ranks[None, :] < self.ks[:, None]  # (len(ks), m)
    self.recall += hit.mean(axis=1)
    for i, hit_at_k in enumerate(hit):
      predicate_hits = np.bincount(gt_predicates, weights=hit_at_k, minlength=predicate_counts.size)
      self.predicate_recall[i, present] += predicate_hits[present] / predicate_counts[present]
    if zero_shot.any():
      self.zero_shot_recall += hit[:, zero_shot].mean(axis=1)


class SceneGraphEvaluator:
  """Streaming scene-graph recall: `update` per image (or `update_batch` per padded batch), then `result`."""

  def __init__(
    self,
    modes: Sequence[str] = ("predcls",),
    ks: Sequence[int] = DEFAULT_KS,
    train_triplets=None,
    num_predicates: int = NUM_PREDICATES,
    images_without_pairs: str = "zero",
  ):
    modes = (modes,) if isinstance(modes, str) else tuple(modes)
    if images_without_pairs not in IMAGES_WITHOUT_PAIRS:
      raise ValueError(f"images_without_pairs={images_without_pairs!r}; expected one of {IMAGES_WITHOUT_PAIRS}")
    self.images_without_pairs = images_without_pairs
    unknown = [mode for mode in modes if mode not in MODES]
    if not modes or unknown:
      raise ValueError(f"modes must be a non-empty subset of {MODES}, got {modes}")
    if not ks or any(int(k) <= 0 for k in ks):
      raise ValueError(f"ks must be positive integers, got {ks}")
    self.modes = modes
    self.ks = tuple(int(k) for k in ks)
    self.num_predicates = int(num_predicates)
    self._train_keys = None
    if train_triplets is not None:
      train_triplets = np.asarray(train_triplets, dtype=np.int64).reshape(-1, 3)
      self._train_keys = np.unique(triplet_keys(*train_triplets.T))
    self.reset()

  def reset(self) -> None:
    """Forgets every image added so far."""
    self._no_pair_images = dict.fromkeys(self.modes, 0)
    self._sums = {
      (mode, constraint): _RecallSums(self.ks, self.num_predicates)
      for mode in self.modes
      for constraint in ("graph", "no_graph")
    }

  def _predictions(self, image: Mapping, mode: str) -> Mapping:
    """The fields holding `mode`'s predictions: image[mode] with several modes, else the image itself."""
    if len(self.modes) > 1 or mode in image:
      if not isinstance(image.get(mode), Mapping):
        raise ValueError(f"with several modes {self.modes}, image[{mode!r}] must hold that mode's predictions")
      return image[mode]
    return image

  def update(self, image: Mapping) -> None:
    """Adds one image (fields in the module docstring); an image without GT relations is skipped."""
    if "gt_relations" in image and np.size(image["gt_relations"]) == 0:
      return
    gt_relations = _array(image, "gt_relations", 2, np.int64)
    if gt_relations.shape[1] != 3:
      raise ValueError(f"gt_relations must be (m, 3): subject, object, predicate; got {gt_relations.shape}")
    gt_boxes = _array(image, "gt_boxes", 2, np.float64)
    gt_labels = _array(image, "gt_labels", 1, np.int64)
    if gt_boxes.shape != (gt_labels.shape[0], 4):
      raise ValueError(f"gt_boxes must be (n, 4) with n = len(gt_labels) = {len(gt_labels)}, got {gt_boxes.shape}")
    _check_indices("gt_relations[:, :2]", gt_relations[:, :2], len(gt_labels), "GT objects")
    gt_predicates = gt_relations[:, 2]
    if gt_predicates.min() < 1 or gt_predicates.max() > self.num_predicates:
      raise ValueError(f"gt_relations[:, 2] (predicates) must lie in [1, {self.num_predicates}] (0 = background)")

    predicate_counts = np.bincount(gt_predicates, minlength=self.num_predicates + 1).astype(np.float64)
    present = predicate_counts > 0
    zero_shot = np.zeros(len(gt_relations), dtype=bool)
    if self._train_keys is not None:
      keys = triplet_keys(gt_labels[gt_relations[:, 0]], gt_labels[gt_relations[:, 1]], gt_predicates)
      # Binary search in the sorted training keys: np.isin would re-sort them for every image.
      position = np.minimum(np.searchsorted(self._train_keys, keys), len(self._train_keys) - 1)
      zero_shot = self._train_keys[position] != keys if len(self._train_keys) else np.ones(len(keys), bool)
    # Every mode is ranked (and its input checked) before anything is added: a bad image leaves no trace.
    mode_ranks = {
      mode: self._ranks(self._predictions(image, mode), mode, gt_boxes, gt_labels, gt_relations) for mode in self.modes
    }
    for mode, (ranks, num_pairs) in mode_ranks.items():
      if num_pairs == 0:
        self._no_pair_images[mode] += 1
        if self.images_without_pairs == "skip":
          continue
      for constraint, constraint_ranks in zip(("graph", "no_graph"), ranks):
        self._sums[mode, constraint].add(constraint_ranks, gt_predicates, predicate_counts, present, zero_shot)

  def _ranks(self, predictions: Mapping, mode: str, gt_boxes, gt_labels, gt_relations):
    """(`first_hit_ranks` of one mode's predictions, after checking them; the number of candidate pairs)."""
    objects = self._objects(predictions, mode, gt_boxes, gt_labels)
    pairs = _array(predictions, "pairs", 2, np.int64).reshape(-1, 2)
    pair_scores = _array(predictions, "pair_scores", 2)
    if pair_scores.shape != (len(pairs), self.num_predicates + 1):
      raise ValueError(
        f"pair_scores must be (len(pairs), num_predicates + 1) = ({len(pairs)}, "
        f"{self.num_predicates + 1}) with background in column 0, got {pair_scores.shape}"
      )
    _check_indices("pairs", pairs, len(objects[1]), "predicted objects")
    if pair_scores.size and not (np.all(np.isfinite(pair_scores)) and pair_scores.min() >= 0):
      raise ValueError("pair_scores must be finite and non-negative (probabilities, not logits)")
    ranks = first_hit_ranks(gt_boxes, gt_labels, gt_relations, *objects, pairs, pair_scores, max(self.ks))
    return ranks, len(pairs)

  def _objects(self, predictions: Mapping, mode: str, gt_boxes, gt_labels):
    """(boxes, labels, scores) of the predicted objects under `mode`'s protocol."""
    if mode == "predcls":
      return gt_boxes, gt_labels, np.ones(len(gt_labels))
    labels = _array(predictions, "pred_labels", 1, np.int64)
    scores = _array(predictions, "pred_scores", 1, np.float64)
    boxes = gt_boxes if mode == "sgcls" else _array(predictions, "pred_boxes", 2, np.float64)
    if not len(boxes) == len(labels) == len(scores) or boxes.shape[1:] != (4,):
      raise ValueError(
        f"{mode}: pred_boxes (d, 4), pred_labels (d,) and pred_scores (d,) must agree "
        f"(sgcls: d = number of GT objects), got {boxes.shape}, {labels.shape}, {scores.shape}"
      )
    if scores.size and not (np.all(np.isfinite(scores)) and scores.min() >= 0):
      raise ValueError(f"{mode}: pred_scores must be finite and non-negative")
    return boxes, labels, scores

  def update_batch(self, batch: Mapping) -> None:
    """Adds every real image of a padded batch (see `unpad_batch` for the fields)."""
    for image in unpad_batch(batch, self.modes):
      self.update(image)

  def result(self) -> dict:
    """Metrics per mode as `{mode}/R@K`, `ngR@K`, `mR@K`, `ngmR@K`, `zR@K`, `ngzR@K` (floats),
    `per_predicate_R@K`, `per_predicate_ngR@K` (lists, entry i = predicate i + 1, NaN = never occurs) and the
    counts `num_images`, `num_images_without_pairs` (and `num_zero_shot_images` with training triplets)."""
    metrics: dict = {}
    for mode in self.modes:
      counts = self._sums[mode, "graph"]  # both constraints see the same images
      images = counts.images
      predicate_images = counts.predicate_images[1:]
      seen = predicate_images > 0
      metrics[f"{mode}/num_images"] = images
      metrics[f"{mode}/num_images_without_pairs"] = self._no_pair_images[mode]
      for constraint, prefix in (("graph", ""), ("no_graph", "ng")):
        sums = self._sums[mode, constraint]
        per_predicate = np.full((len(self.ks), self.num_predicates), np.nan)
        per_predicate[:, seen] = sums.predicate_recall[:, 1:][:, seen] / predicate_images[seen]
        for i, k in enumerate(self.ks):
          metrics[f"{mode}/{prefix}R@{k}"] = sums.recall[i] / images if images else float("nan")
          metrics[f"{mode}/{prefix}mR@{k}"] = (
            float(np.nan_to_num(per_predicate[i], nan=0.0).mean()) if images else float("nan")
          )
          if self._train_keys is not None:
            zero_shot_images = counts.zero_shot_images
            metrics[f"{mode}/{prefix}zR@{k}"] = (
              sums.zero_shot_recall[i] / zero_shot_images if zero_shot_images else float("nan")
            )
          metrics[f"{mode}/per_predicate_{prefix}R@{k}"] = [float(r) for r in per_predicate[i]]
      if self._train_keys is not None:
        metrics[f"{mode}/num_zero_shot_images"] = counts.zero_shot_images
    return {name: float(value) if isinstance(value, np.floating) else value for name, value in metrics.items()}


def _kept_indices(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(indices of the set entries, map from padded index to unpadded index, -1 where unset)."""
  kept = np.flatnonzero(mask)
  new_index = np.full(mask.shape[0], -1, dtype=np.int64)
  new_index[kept] = np.arange(len(kept))
  return kept, new_index


def _unpad_predictions(predictions: Mapping, b: int, mode: str, gt_mask: np.ndarray) -> dict:
  """Image b's predicted objects and pairs with padding removed and pair indices renumbered."""
  if mode == "sgdet":
    object_mask = np.asarray(predictions["pred_box_mask"][b]).astype(bool)
  else:
    object_mask = gt_mask  # predcls and sgcls predict on the GT objects
  kept_objects, new_index = _kept_indices(object_mask)
  pair_scores = np.asarray(predictions["pair_scores"][b])
  max_objects = object_mask.shape[0]
  if "pairs" in predictions:
    pairs = np.asarray(predictions["pairs"][b]).astype(np.int64)
  elif pair_scores.shape[0] == max_objects * max_objects:
    # Dense layout: entry s * max_objects + o scores the pair (subject s, object o).
    pairs = np.stack(np.divmod(np.arange(pair_scores.shape[0]), max_objects), axis=1)
  else:
    raise ValueError(
      f"{mode}: without a 'pairs' field, pair_scores must have max_objects**2 = {max_objects**2} rows "
      f"(dense subject * max_objects + object layout), got {pair_scores.shape[0]}"
    )
  if "pair_mask" in predictions:
    pair_mask = np.asarray(predictions["pair_mask"][b]).astype(bool)
  else:
    pair_mask = pairs[:, 0] != pairs[:, 1]
  # A pair touching a padded object is padding too, whatever the pair mask says.
  pair_mask = pair_mask & object_mask[pairs[:, 0]] & object_mask[pairs[:, 1]]
  image = {"pairs": new_index[pairs[pair_mask]], "pair_scores": pair_scores[pair_mask]}
  for key in ("pred_labels", "pred_scores", "pred_boxes"):
    if key in predictions:
      image[key] = np.asarray(predictions[key][b])[kept_objects]
  return image


def unpad_batch(batch: Mapping, modes: Sequence[str] = ("predcls",)) -> Iterator[dict]:
  """Yields the per-image dicts of a padded batch, as a jitted model and the data pipeline produce it.

  GT fields: `mask` (B,) real images (optional), `gt_boxes` (B, N, 4), `gt_labels` (B, N), `gt_box_mask`
  (B, N), `gt_relations` (B, M, 3) indexing the padded objects, `gt_relation_mask` (B, M).
  Prediction fields (under batch[mode] when there are several modes): `pair_scores` (B, P, C + 1);
  either `pairs` (B, P, 2) or the dense layout P = max_objects**2 with pair s * max_objects + o;
  `pair_mask` (B, P) (default: s != o); `pred_labels`, `pred_scores` (B, D) for sgcls / sgdet and
  `pred_boxes` (B, D, 4) with `pred_box_mask` (B, D) for sgdet (predcls / sgcls objects are the GT ones).
  Pairs and relations touching padded objects are dropped; indices are renumbered to the unpadded objects.
  """
  modes = (modes,) if isinstance(modes, str) else tuple(modes)
  batch = {key: value if isinstance(value, Mapping) else np.asarray(value) for key, value in batch.items()}
  gt_boxes = batch["gt_boxes"]
  image_mask = np.asarray(batch.get("mask", np.ones(gt_boxes.shape[0]))).astype(bool)
  for b in np.flatnonzero(image_mask):
    gt_mask = np.asarray(batch["gt_box_mask"][b]).astype(bool)
    kept_gt, new_gt_index = _kept_indices(gt_mask)
    relations = np.asarray(batch["gt_relations"][b]).astype(np.int64)
    relations = relations[np.asarray(batch["gt_relation_mask"][b]).astype(bool)]
    if np.any(~gt_mask[relations[:, :2]]):
      raise ValueError(f"gt_relations of batch image {b} refer to GT objects whose gt_box_mask is 0")
    image = {
      "gt_boxes": gt_boxes[b][kept_gt],
      "gt_labels": np.asarray(batch["gt_labels"][b])[kept_gt],
      "gt_relations": np.column_stack([new_gt_index[relations[:, :2]], relations[:, 2]]),
    }
    if len(modes) > 1:
      for mode in modes:
        image[mode] = _unpad_predictions(batch[mode], b, mode, gt_mask)
    else:
      image.update(_unpad_predictions(batch.get(modes[0], batch), b, modes[0], gt_mask))
    yield image
