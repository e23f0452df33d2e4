"""Aesthetics task: losses vs NumPy transcriptions (masked), evaluation outputs, Fig. 6 pictures, predict hooks,
and the check of the task's kind against the data source."""

import types

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from jaxgraphs.data import sources
from jaxgraphs.evaluation.aesthetics_metrics import binary_metrics, distribution_metrics, regression_metrics
from jaxgraphs.tasks import build_task
from jaxgraphs.tasks.aesthetics import AestheticsTask, draw_region_box
from jaxgraphs.tasks.display import hot_colours
from jaxgraphs.tasks.input_frame import InputFrame
from jaxgraphs.errors import ConfigError

RNG = np.random.default_rng(0)
BATCH = 6
MASK = np.array([1, 1, 0, 1, 1, 0], np.float32)  # rows 2 and 5 are padding or undecodable images


def numpy_softmax(x):
  e = np.exp(x - x.max(-1, keepdims=True))
  return e / e.sum(-1, keepdims=True)


def masked_mean(values):
  return (values * MASK).sum() / MASK.sum()


def test_binary_loss_is_masked_softmax_cross_entropy():
  logits = RNG.normal(size=(BATCH, 2)).astype(np.float32)
  labels = np.array([1, 0, 1, 1, 0, 0], np.int32)
  logits[2] = [1e4, -1e4]  # a masked row with a huge loss must not count
  loss, metrics = AestheticsTask("binary").loss({"logits": jnp.asarray(logits)}, {"label": labels, "mask": MASK})
  per_example = -np.log(numpy_softmax(logits.astype(np.float64))[np.arange(BATCH), labels] + 1e-300)
  per_example[2] = 0.0
  assert float(loss) == pytest.approx(masked_mean(per_example), rel=1e-5)
  assert float(metrics["accuracy"]) == pytest.approx(masked_mean(logits.argmax(1) == labels))


def test_regression_loss_is_masked_mse():
  outputs = RNG.normal(size=(BATCH, 1)).astype(np.float32)
  scores = RNG.uniform(size=BATCH).astype(np.float32)
  outputs[5] = 1e3
  loss, _ = AestheticsTask("regression").loss({"logits": jnp.asarray(outputs)}, {"score": scores, "mask": MASK})
  assert float(loss) == pytest.approx(masked_mean((outputs[:, 0] - scores) ** 2), rel=1e-5)


@pytest.mark.parametrize("r", [1.0, 2.0])
def test_distribution_loss_is_masked_emd(r):
  predicted = RNG.dirichlet(np.ones(10), size=BATCH).astype(np.float32)
  target = RNG.dirichlet(np.ones(10), size=BATCH).astype(np.float32)
  target[2] = 0.0  # padding rows carry no histogram
  loss, _ = AestheticsTask("distribution", emd_r=r).loss(
    {"logits": jnp.zeros((BATCH, 10)), "distribution": jnp.asarray(predicted)}, {"distribution": target, "mask": MASK}
  )
  gap = np.abs(np.cumsum(predicted, 1) - np.cumsum(target, 1))
  per_example = np.mean(gap**r, axis=1) ** (1 / r)
  assert float(loss) == pytest.approx(masked_mean(per_example), rel=1e-4)


def test_distribution_falls_back_to_softmax_of_logits():
  # FC-CNN has no 'distribution' output: its logits' softmax is the histogram.
  logits = RNG.normal(size=(BATCH, 10)).astype(np.float32)
  got = AestheticsTask("distribution").prediction({"logits": jnp.asarray(logits)})
  np.testing.assert_allclose(got, numpy_softmax(logits), rtol=1e-5)


def evaluate(task, outputs, batch):
  evaluator = task.make_evaluator()
  evaluator.update({k: np.asarray(v) for k, v in task.eval_outputs(outputs, batch).items()})
  return evaluator.result()


def test_binary_evaluation_is_accuracy_and_ap_of_p_high_on_unmasked_rows():
  logits = RNG.normal(size=(BATCH, 2)).astype(np.float32)
  labels = np.array([1, 0, 1, 1, 0, 0], np.int32)
  result = evaluate(AestheticsTask("binary"), {"logits": jnp.asarray(logits)}, {"label": labels, "mask": MASK})
  keep = MASK > 0
  expected = binary_metrics(numpy_softmax(logits)[keep, 1], labels[keep])
  assert result["accuracy"] == pytest.approx(expected["accuracy"])
  assert result["AP"] == pytest.approx(expected["AP"], rel=1e-5)
  assert result["num_examples"] == 4


def test_regression_and_distribution_evaluation():
  outputs = RNG.normal(size=(BATCH, 1)).astype(np.float32)
  scores = RNG.uniform(size=BATCH).astype(np.float32)
  keep = MASK > 0
  result = evaluate(AestheticsTask("regression"), {"logits": jnp.asarray(outputs)}, {"score": scores, "mask": MASK})
  assert result["spearman_rho"] == pytest.approx(regression_metrics(outputs[keep, 0], scores[keep])["spearman_rho"])
  predicted = RNG.dirichlet(np.ones(10), size=BATCH).astype(np.float32)
  target = RNG.dirichlet(np.ones(10), size=BATCH).astype(np.float32)
  target[~keep] = 0.0
  result = evaluate(
    AestheticsTask("distribution"),
    {"logits": jnp.zeros((BATCH, 10)), "distribution": predicted},
    {"distribution": target, "mask": MASK},
  )
  assert result["emd"] == pytest.approx(distribution_metrics(predicted[keep], target[keep])["emd"], rel=1e-5)


def region_outputs(batch=3, grid=(4, 5), stages=("fcn", "aspp", "graph")):
  quality = RNG.uniform(size=(batch,) + grid).astype(np.float32)
  outputs = {
    "logits": RNG.normal(size=(batch, 2)).astype(np.float32),
    "region_quality": quality,
    "query_region": quality.reshape(batch, -1).argmax(1),
  }
  for stage in stages:
    outputs[f"similarity_{stage}"] = RNG.uniform(-1, 1, size=(batch,) + grid).astype(np.float32)
  return outputs


def test_eval_images_draw_figure_6_strips_for_unmasked_images():
  images = RNG.normal(size=(3, 32, 40, 3)).astype(np.float32)
  mask = np.array([1, 0, 1], np.float32)
  batch = {"image": images, "mask": mask, "label": np.array([1, 0, 0])}
  pictures = AestheticsTask("binary").eval_images(region_outputs(), batch)
  strips = pictures["eval/region_dependency"]
  # 32 x 40 inputs enlarged 8x to 256 x 320; image + 3 similarity maps + the score map 4 px apart, for the two
  # real images, under a title and over captions and colour bars.
  assert strips.dtype == np.uint8 and strips.shape[0] == 2 and strips.shape[2] == 5 * 320 + 4 * 4
  assert strips.shape[1] > 256 + 3 * 16
  fcn_only = AestheticsTask("binary").eval_images(region_outputs(stages=("fcn",)), batch)
  assert fcn_only["eval/region_dependency"].shape[2] == 3 * 320 + 2 * 4
  assert AestheticsTask("binary").eval_images({"logits": np.zeros((3, 2))}, batch) == {}


def test_query_region_box_and_colours():
  image = np.zeros((64, 80, 3), np.uint8)
  # Region 6 of a 4 x 5 grid: row 1, column 1 -> rows 16..31, columns 16..31, outlined 2 px wide inside.
  boxed = draw_region_box(image, InputFrame.identity((64, 80)), region=6, grid=(4, 5))
  red = np.all(boxed == (235, 60, 60), axis=-1)
  assert red[16:18, 16:32].all() and red[30:32, 16:32].all() and red[16:32, 16:18].all() and red[16:32, 30:32].all()
  assert not red[18:30, 18:30].any() and red.sum() == 16 * 16 - 12 * 12
  hot = hot_colours(np.array([0.0, 1.0]))
  np.testing.assert_array_equal(hot, [[0, 0, 0], [255, 255, 255]])


def test_predict_hooks():
  outputs = region_outputs(batch=2)
  task = AestheticsTask("binary")
  p_high = numpy_softmax(outputs["logits"])[1, 1]
  assert task.predict_json(outputs, 1) == {
    "p_high": pytest.approx(p_high, rel=1e-5),
    "label": "high" if p_high >= 0.5 else "low",
  }
  image = RNG.integers(0, 255, size=(32, 40, 3), dtype=np.uint8)
  pictures = task.predict_pictures(outputs, image, 1)
  # Without a frame the image is the network input itself, enlarged 8x.
  assert pictures["region_scores"].shape[1:] == (320, 3) and pictures["region_scores"].shape[0] > 256
  assert pictures["region_dependency"].shape[1] == 5 * 320 + 4 * 4
  distribution = RNG.dirichlet(np.ones(10), size=2).astype(np.float32)
  result = AestheticsTask("distribution").predict_json({"logits": np.zeros((2, 10)), "distribution": distribution}, 0)
  assert result["mean_rating"] == pytest.approx(float(distribution[0] @ np.arange(1, 11)), rel=1e-5)
  assert AestheticsTask("regression").predict_json({"logits": np.array([[0.25], [0.5]])}, 1) == {"score": 0.5}


def info_of(source):
  """What the task reads of a source's dataset info: its name and targets."""
  return types.SimpleNamespace(source=source, targets=sources.get_source(source).targets)


def task_config(kind):
  return ml_collections.ConfigDict({"task": {"name": "aesthetics", "kind": kind, "emd_r": 2.0}})


def test_task_kind_is_checked_against_the_source():
  assert build_task(task_config("distribution"), info_of("ava")).kind == "distribution"
  assert build_task(task_config("regression"), info_of("aadb")).default_metric == "spearman_rho"
  with pytest.raises(ConfigError, match="config.task.kind='distribution' needs 'distribution'.*'aadb'"):
    build_task(task_config("distribution"), info_of("aadb"))
  with pytest.raises(ConfigError, match="config.data.source='coco/2014' has no aesthetics targets"):
    build_task(task_config("binary"), info_of("coco/2014"))
  with pytest.raises(ConfigError, match="config.task.kind='ranking'"):
    build_task(task_config("ranking"), info_of("ava"))
