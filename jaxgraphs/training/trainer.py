"""The one training loop: every model of every paper trains and evaluates through `train_and_evaluate`.

State is built without allocating first (`jax.eval_shape`), its shardings are inferred from regex rules,
and `jax.jit(init, out_shardings=...)` materialises it in place. The train step is one `jax.jit` over a
1-D 'data' mesh with the batch sharded and the state donated; the same code runs on one device, on N
local devices and on several processes joined by `jax.distributed`.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from jax.experimental import multihost_utils

from jaxgraphs import models, tasks
from jaxgraphs.data import label_priors, pipeline
from jaxgraphs.data.image_statistics import with_network_images
from jaxgraphs.errors import ConfigError, Interrupted, Preempted, RunError
from jaxgraphs.models.backbones.common import implementation_for_platform, kernel_implementation
from jaxgraphs.training import optimizers, run_dirs, sharding
from jaxgraphs.training.checkpointing import Checkpoints
from jaxgraphs.training.summaries import Progress, SummaryWriter, format_metric
from jaxgraphs.training.train_state import TrainState


class NonFiniteLossError(RunError, FloatingPointError):
  """Raised when the training loss becomes NaN or Inf; the last good checkpoint is kept."""


class Experiment:
  """Model, task, optimiser and jitted functions for one config, on the current device mesh."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.mesh = sharding.make_mesh()
    self.local_batch_size = sharding.check_batch_size(config.batch_size)
    self.data_info = label_priors.provide(
      pipeline.dataset_info(config.data), models.data_requests(config.model), config.data
    )
    self.task = tasks.build_task(config, self.data_info)
    self.model = models.build_model(config.model, self.data_info)
    self.total_steps = int(config.total_steps)
    # Convolution and pooling kernels for the platform the mesh runs on, decided once (models/backbones/common.py).
    self.kernel_implementation = implementation_for_platform(self.mesh.devices.flat[0].platform)
    self._eval_compiled = False

  # ---- state ---------------------------------------------------------------------------------------
  def _init_fn(self, example: dict[str, jax.ShapeDtypeStruct]):
    """Returns init(rng) -> TrainState, closing over the optimiser built from the parameter tree."""

    def init(rng):
      dummy = {k: jnp.zeros((1,) + v.shape[1:], v.dtype) for k, v in example.items()}
      params_rng, dropout_rng, state_rng = jax.random.split(rng, 3)
      with kernel_implementation(self.kernel_implementation):
        variables = self.model.init(
          {"params": params_rng, "dropout": dropout_rng}, **self._model_inputs(dummy), train=False
        )
      variables = dict(variables)
      params = variables.pop("params")
      return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        model_state=variables,
        opt_state=self.tx.init(params),
        rng=jax.random.key_data(state_rng),
      )

    return init

  def build_state(self, batch_spec: dict[str, Any], *, load_weights: bool = True) -> TrainState:
    """Initialises the sharded train state for (local) batches shaped like `batch_spec` (arrays or
    ShapeDtypeStructs); with `load_weights`, then loads `config.model.backbone_init` and `config.init_from`."""
    example = {k: jax.ShapeDtypeStruct(v.shape, v.dtype) for k, v in batch_spec.items()}
    dummy = lambda: {k: jnp.zeros((1,) + v.shape[1:], v.dtype) for k, v in example.items()}  # noqa: E731
    # The optimiser's masks (freezing, decay) need the parameter paths, so look at shapes first.
    with kernel_implementation(self.kernel_implementation):
      outputs_shape, variables_shape = jax.eval_shape(
        lambda: self.model.init_with_output(
          {"params": jax.random.key(0), "dropout": jax.random.key(0)}, **self._model_inputs(dummy()), train=False
        )
      )
    self._check_outputs(outputs_shape)
    self.tx, self.learning_rate = optimizers.build_optimizer(
      self.config.optimizer, self.total_steps, variables_shape["params"]
    )
    init = self._init_fn(example)
    rng = jax.random.PRNGKey(self.config.seed)
    abstract = jax.eval_shape(init, rng)
    self.state_sharding = sharding.state_shardings(abstract, self.mesh, self.config.sharding.rules)
    self.abstract_state = jax.tree.map(
      lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), abstract, self.state_sharding
    )
    state = jax.jit(init, out_shardings=self.state_sharding)(rng)
    if load_weights and self.config.model.get("backbone_init"):
      state = self._load_backbone(state)
    if load_weights and self.config.model.get("detector_run"):
      state = self._load_detector(state)
    if load_weights and self.config.init_from.workdir:
      state = self._load_other_run(state)
    return state

  def _check_outputs(self, outputs: dict[str, Any]) -> None:
    """Fails once, naming both, when the model does not produce an output the task reads."""
    missing = [key for key in self.task.required_outputs if key not in outputs]
    if missing:
      raise ConfigError(
        f"config.model.name={self.config.model.name!r} outputs {sorted(outputs)}, but "
        f"config.task.name={self.config.task.name!r} needs {missing} too"
      )

  def restore(
    self, workdir: str, checkpoint: str | int = "latest", batch_spec: dict[str, Any] | None = None
  ) -> TrainState:
    """The state saved in `workdir`: checkpoint 'latest', 'best' (checkpoints_best/) or a step number.

    Builds the state for `batch_spec` (default: the evaluation split's batches) without loading
    `backbone_init` or `init_from` (the checkpoint replaces them) and compiles the steps.
    """
    run_dirs.checkpoint_directory(workdir, checkpoint)  # checked first: Orbax would create the folder
    subdir = "checkpoints_best" if checkpoint == "best" else "checkpoints"
    if batch_spec is None:
      batches, _ = pipeline.build_eval_dataset(self.config.data, local_batch_size=self.local_batch_size)
      batch_spec = batches.batch_spec
    self.build_state(batch_spec, load_weights=False)
    self.compile()
    manager = Checkpoints(workdir, max_to_keep=self.config.checkpoint.keep, subdir=subdir, async_save=False)
    try:
      step = None if checkpoint in ("latest", "best") else int(checkpoint)
      state, _ = manager.restore(self.abstract_state, step)
    except FileNotFoundError as error:  # a step that is not there: the message lists the ones that are
      raise ConfigError(f"--checkpoint={checkpoint}: {error}") from None
    finally:
      manager.close()
    logging.info("Restored %s/%d", manager.directory, int(jax.device_get(state.step)))
    return state

  def _load_other_run(self, state: TrainState) -> TrainState:
    """Starts from another run's weights (e.g. COCO pre-training before VOC), not its optimiser or step."""
    from jaxgraphs.training import pretrained

    cfg = self.config.init_from
    other = Checkpoints(cfg.workdir, max_to_keep=1, subdir=cfg.subdir, async_save=False)
    step = other.latest_step() if cfg.step < 0 else cfg.step
    if step is None:
      raise FileNotFoundError(f"config.init_from.workdir={cfg.workdir!r} has no checkpoint in {other.directory}")
    saved = other.restore_raw(step)
    checkpoint = {"params": saved["params"], **saved["model_state"]}
    variables = pretrained.merge_pretrained(
      jax.device_get({"params": state.params, **state.model_state}),
      checkpoint,
      subtree=(),
      dont_load=tuple(cfg.dont_load),
      source=f"{other.directory}/{step}",
    )
    params = jax.device_put(variables.pop("params"), self.state_sharding.params)
    model_state = jax.device_put(variables, self.state_sharding.model_state)
    logging.info("Initialised from %s/%d", other.directory, step)
    return state.replace(params=params, model_state=model_state)

  def _load_detector(self, state: TrainState) -> TrainState:
    """Starts from a Faster R-CNN run's weights (`config.model.detector_run`): its best checkpoint, else its latest."""
    from jaxgraphs.training import pretrained

    run = self.config.model.detector_run
    subdir = "checkpoints_best" if run_dirs.complete_steps(run_dirs.join(run, "checkpoints_best")) else "checkpoints"
    other = Checkpoints(run, max_to_keep=1, subdir=subdir, async_save=False)
    step = other.latest_step()
    if step is None:
      raise ConfigError(f"config.model.detector_run={run!r}: no detector checkpoint in {other.directory}")
    source = f"{other.directory}/{step}"
    variables = jax.device_get({"params": state.params, **state.model_state})
    for subtree, tree in models.detector_weights(self.config.model, other.restore_raw(step)["params"]):
      variables = pretrained.merge_pretrained(variables, tree, subtree=subtree, source=source)
    params = jax.device_put(variables.pop("params"), self.state_sharding.params)
    model_state = jax.device_put(variables, self.state_sharding.model_state)
    logging.info("Loaded the detector's weights from %s", source)
    return state.replace(params=params, model_state=model_state)

  def _load_backbone(self, state: TrainState) -> TrainState:
    """Merges converted ImageNet weights into the fresh state (strict, `config.model.dont_load` aside)."""
    from jaxgraphs.training import pretrained

    variables = {"params": state.params, **state.model_state}
    loaded = pretrained.load_pretrained(
      jax.device_get(variables), self.config.model.backbone_init, dont_load=tuple(self.config.model.dont_load)
    )
    params = jax.device_put(loaded.pop("params"), self.state_sharding.params)
    model_state = jax.device_put(loaded, self.state_sharding.model_state)
    logging.info("Loaded backbone weights from %s", self.config.model.backbone_init)
    # The optimiser state stays as initialised: Adam's moments are zero whatever the weights are.
    return state.replace(params=params, model_state=model_state)

  # ---- steps ---------------------------------------------------------------------------------------
  def _model_inputs(self, batch):
    """The module's keyword arguments; a uint8 image batch is ImageNet-normalised here, on the device."""
    return self.task.model_inputs(with_network_images(batch))

  def _apply(self, params, model_state, batch, *, train: bool, rng=None):
    variables = {"params": params, **model_state}
    inputs = self._model_inputs(batch)
    with kernel_implementation(self.kernel_implementation):
      if not train:
        return self.model.apply(variables, **inputs, train=False), model_state
      mutable = list(model_state.keys())
      rngs = {"dropout": rng}
      if mutable:
        return self.model.apply(variables, **inputs, train=True, rngs=rngs, mutable=mutable)
      return self.model.apply(variables, **inputs, train=True, rngs=rngs), model_state

  def train_step(self, state: TrainState, batch):
    """One optimisation step on a global batch; returns the new state and scalar metrics."""
    rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)

    def loss_fn(params):
      outputs, model_state = self._apply(params, state.model_state, batch, train=True, rng=rng)
      loss, metrics = self.task.loss(outputs, batch)
      return loss, (metrics, model_state)

    (loss, (metrics, model_state)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    updates, opt_state = self.tx.update(grads, state.opt_state, state.params, value=loss)
    params = jax.tree.map(lambda p, u: p + u, state.params, updates)
    metrics = {
      **metrics,
      "loss": loss,
      "grad_norm": optax.tree.norm(grads),
      "learning_rate": self.learning_rate(state.step, state.opt_state),
    }
    new_state = state.replace(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state)
    return new_state, metrics

  def eval_step(self, state: TrainState, batch):
    """Forward pass in inference mode; returns the task's per-example evaluation outputs."""
    return self._eval_and_forward(state, batch)[0]

  def _eval_and_forward(self, state: TrainState, batch):
    outputs, _ = self._apply(state.params, state.model_state, batch, train=False)
    return self.task.eval_outputs(outputs, batch), outputs

  def compile(self):
    """Jits the steps with explicit shardings; the train step donates (reuses) the old state's buffers."""
    batch_sharding = sharding.batch_sharding(self.mesh)
    self.jit_train_step = jax.jit(
      self.train_step,
      in_shardings=(self.state_sharding, batch_sharding),
      out_shardings=(self.state_sharding, sharding.replicated(self.mesh)),
      donate_argnums=0,
    )
    self.jit_eval_step = jax.jit(
      self.eval_step, in_shardings=(self.state_sharding, batch_sharding), out_shardings=batch_sharding
    )
    self.jit_forward = jax.jit(
      lambda state, batch: self._apply(state.params, state.model_state, batch, train=False)[0],
      in_shardings=(self.state_sharding, batch_sharding),
    )
    # Evaluation compiles once: the same step returns the raw outputs that the pictures of batch 0 need.
    self.jit_eval_and_forward = jax.jit(self._eval_and_forward, in_shardings=(self.state_sharding, batch_sharding))

  # ---- evaluation ----------------------------------------------------------------------------------
  def evaluate(self, state: TrainState, split: str) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Runs the task's evaluator over a whole split (each example counts once); returns metrics and pictures."""
    batches, num_batches = pipeline.build_eval_dataset(self.config.data, split, local_batch_size=self.local_batch_size)
    evaluator = self.task.make_evaluator()
    start = time.perf_counter()
    pictures = {}
    if not self._eval_compiled:
      logging.info("Compiling the evaluation step (the first batch waits for it)...")
      self._eval_compiled = True
    for i, local in enumerate(batches):
      batch = sharding.global_batch(local, self.mesh)
      outputs, raw = self.jit_eval_and_forward(state, batch)
      if i == 0:
        pictures = self.task.eval_images(_to_host(raw), _to_host(batch))
      evaluator.update(_to_host(outputs))
      if (i + 1) % 50 == 0 or i + 1 == num_batches:
        logging.info("eval %s: batch %d/%d (%.1fs)", split, i + 1, num_batches, time.perf_counter() - start)
    metrics = evaluator.result()
    # Undecodable images are masked out of the metrics; report how many (each process counts its own part).
    skipped = batches.num_skipped
    if jax.process_count() > 1:
      skipped = int(np.sum(multihost_utils.process_allgather(np.int64(skipped))))
    metrics["skipped_images"] = skipped
    return metrics, pictures


def _to_host(tree) -> dict[str, np.ndarray]:
  """Brings globally sharded arrays to every process as full numpy arrays."""
  if jax.process_count() == 1:
    return jax.tree.map(np.asarray, jax.device_get(tree))
  return multihost_utils.process_allgather(tree, tiled=True)


def _split_scalars(metrics: dict[str, Any]) -> tuple[dict[str, float], dict[str, Any]]:
  is_number = lambda v: isinstance(v, (int, float, np.number, np.ndarray, jax.Array)) and np.ndim(v) == 0  # noqa: E731
  scalars = {k: float(v) for k, v in metrics.items() if is_number(v)}
  return scalars, {k: v for k, v in metrics.items() if k not in scalars}


def _write_json(path: str, payload: dict[str, Any]) -> None:
  """Writes JSON atomically (process 0 only), so a reader never sees half a file."""
  if jax.process_index() == 0:
    run_dirs.write_json(path, payload)


def _check_finite(pending: list[tuple[int, Any]], restored_from: str | None = None) -> None:
  """Fails naming the first step whose loss is NaN or Inf among those not yet checked."""
  losses = jax.device_get([m["loss"] for _, m in pending])
  for (step, _), loss in zip(pending, losses):
    if not np.isfinite(loss):
      where = (
        f"the run had just restored {restored_from}, so that checkpoint may be bad too; the one before it is kept"
        if restored_from
        else "the last checkpoint saved before this step is intact"
      )
      raise NonFiniteLossError(f"training loss became {float(loss)} at step {step}; stopping. {where}.")


def _count_parameters(params) -> int:
  return int(sum(np.prod(leaf.shape) for leaf in jax.tree.leaves(params)))


class _StopRequest:
  """SIGTERM (what TPU, SLURM and Kubernetes send before preempting) as a step at which to save and stop.

  One process: a Python handler sets a flag the loop reads after each step. Several processes: JAX's
  preemption service (started by `jax.distributed`, it owns SIGTERM there) tells every process the same step.
  """

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    import signal
    import threading

    if jax.process_count() == 1 and threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    self.requested = True
    logging.warning("SIGTERM received: finishing this step, saving, then stopping")

  def should_stop(self, step: int) -> bool:
    """True on every process at the same step once a stop was asked for."""
    if jax.process_count() == 1:
      return self.requested
    return multihost_utils.reached_preemption_sync_point(step)

  def __exit__(self, *exc):
    import signal

    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
    return False


def _latest_eval(workdir: str, step: int) -> dict[str, Any]:
  """The metrics a finished run wrote at its last step (to report them again on a restart)."""
  path = run_dirs.join(workdir, f"eval_{step}.json")
  return run_dirs.read_json(path) if run_dirs.exists(path) else {}


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict[str, Any]:
  """Trains `config` in `workdir`, resuming from its latest checkpoint; returns the final eval metrics.

  Everything that can fail on a configuration mistake (data, model, shapes, weights) runs before the first
  file is written into `workdir`.
  """
  from jaxgraphs.training.defaults import check_config

  check_config(config)
  experiment = Experiment(config)
  checkpoint_dir = run_dirs.join(workdir, "checkpoints")
  existing = None
  if run_dirs.is_dir(checkpoint_dir):
    existing = Checkpoints(workdir, max_to_keep=config.checkpoint.keep, async_save=config.checkpoint.async_save)
  # Verified: a step whose files do not match the checksums of its save is set aside here, and the run resumes
  # from the newest good one.
  resume_step = (existing.latest_step(verify=True) if existing else None) or 0

  def train_stream(step: int) -> pipeline.TrainIterator:
    # The stream starts where the checkpoint stopped; its element spec gives the state's shapes.
    return pipeline.build_train_dataset(
      config.data,
      local_batch_size=experiment.local_batch_size,
      seed=config.seed,
      start_example=step * experiment.local_batch_size,
    )

  train_iter = train_stream(resume_step)
  steps_per_epoch = max(1, train_iter.num_examples * jax.process_count() // config.batch_size)
  logging.info(
    "Data %s: train split %r, %d images, %d steps per epoch at batch %d (%.1f epochs in %d steps); eval split %r",
    config.data.source,
    experiment.data_info.train_split,
    train_iter.num_examples * jax.process_count(),
    steps_per_epoch,
    config.batch_size,
    experiment.total_steps / steps_per_epoch,
    experiment.total_steps,
    experiment.data_info.eval_split,
  )
  logging.info("Initialising the model (compiles its initialiser)...")
  state = experiment.build_state(train_iter.batch_spec, load_weights=not resume_step)
  logging.info(
    "Model %s: %s parameters (%s trained)",
    config.model.name,
    f"{_count_parameters(state.params):,}",
    f"{_count_parameters(optimizers.trained_params(state.params, config.optimizer)):,}",
  )
  experiment.compile()

  if jax.process_index() == 0:
    run_dirs.make_dirs(workdir)
  checkpoints = existing or Checkpoints(
    workdir, max_to_keep=config.checkpoint.keep, async_save=config.checkpoint.async_save
  )
  best = None
  best_metric, best_mode = config.checkpoint.best_metric, config.checkpoint.best_mode
  if best_metric == "task":
    best_metric, best_mode = experiment.task.default_metric, experiment.task.default_metric_mode
  if best_metric:
    best = Checkpoints(workdir, max_to_keep=1, subdir="checkpoints_best", async_save=False)
  writer = SummaryWriter(workdir)

  meta, restored_from = {"best_value": None}, None
  if resume_step:
    state, meta = checkpoints.restore(experiment.abstract_state)
    restored_step = int(jax.device_get(state.step))
    restored_from = f"{checkpoints.directory}/{restored_step}"
    logging.info("Resumed from %s at %s", checkpoints.directory, checkpoints.describe_restore())
    if restored_step != resume_step:  # the latest step could not be read: continue from the one restored
      resume_step, train_iter = restored_step, train_stream(restored_step)
  start_step = int(jax.device_get(state.step))
  if start_step == 0 and jax.process_index() == 0:
    writer.text(0, "config", f"```\n{config}\n```")
    writer.hparams(config.to_dict())
    _write_json(run_dirs.join(workdir, "config.json"), config.to_dict())
  if start_step >= experiment.total_steps:
    logging.info("The run already finished at step %d: reporting its last evaluation", start_step)
    checkpoints.close()
    return _latest_eval(workdir, start_step)

  progress = Progress(experiment.total_steps, start_step, config.batch_size)
  pending: list[tuple[int, Any]] = []
  eval_metrics: dict[str, Any] = {}
  profile = tuple(config.profile_steps)

  def save(step):
    _check_finite(pending, restored_from)  # never save parameters that already went through a NaN step
    checkpoints.save(state, {**meta, "step": step, "examples_consumed": step * experiment.local_batch_size})
    logging.info("Saving checkpoint %s/%d (in the background)", checkpoints.directory, step)

  # Whatever stops the loop (a NaN, SIGTERM, Ctrl-C), pending asynchronous saves are finished first, so the
  # last good checkpoint is complete on disk.
  step = start_step
  try:
    with _StopRequest() as stop:
      started = time.perf_counter()
      for step in range(start_step + 1, experiment.total_steps + 1):
        if profile and step == profile[0] and jax.process_index() == 0:
          jax.profiler.start_trace(run_dirs.join(workdir, "profile"))
        local = next(train_iter)
        if step == start_step + 1:
          writer.images(step, experiment.task.summary_images(local))
          logging.info("Compiling the train step (the first step waits for it)...")
        state, metrics = experiment.jit_train_step(state, sharding.global_batch(local, experiment.mesh))
        pending.append((step, metrics))
        if step == start_step + 1:
          jax.block_until_ready(metrics)  # keep compilation out of the first window's steps/s
          logging.info("Compiled and ran the first step in %.1fs", time.perf_counter() - started)
          progress = Progress(experiment.total_steps, step, config.batch_size)
        if profile and step == profile[1] and jax.process_index() == 0:
          jax.block_until_ready(state)
          jax.profiler.stop_trace()
          logging.info("Wrote a profile of steps %d-%d to %s/profile", profile[0], profile[1], workdir)

        if step % config.log_every_steps == 0 or step == experiment.total_steps:
          checkpoints.check()  # a failed background save is reported within a logging window, not at the next save
          _check_finite(pending, restored_from)
          averaged = {k: float(np.mean([m[k] for _, m in jax.device_get(pending)])) for k in pending[-1][1]}
          rates = progress.tick(step)
          skipped = train_iter.num_skipped
          writer.scalars(
            step,
            {
              **{f"train/{k}": v for k, v in averaged.items()},
              **{f"train/{k}": v for k, v in rates.items()},
              "data/skipped_images": skipped,
            },
          )
          values = {"loss": averaged["loss"], "lr": averaged["learning_rate"], "skipped": skipped}
          logging.info("%s", progress.line(step, rates, values))
          pending = []
          restored_from = None  # a whole logging window passed the finite check after the restore

        is_last = step == experiment.total_steps
        if is_last or (config.eval_every_steps and step % config.eval_every_steps == 0):
          _check_finite(pending, restored_from)
          eval_metrics, pictures = experiment.evaluate(state, experiment.data_info.eval_split)
          scalars, _ = _split_scalars(eval_metrics)
          writer.scalars(step, {f"eval/{k}": v for k, v in scalars.items()})
          writer.images(step, pictures)
          logging.info("eval at step %d: %s", step, ", ".join(f"{k} {format_metric(eval_metrics[k])}" for k in scalars))
          eval_metrics = {"step": step, "split": experiment.data_info.eval_split, **eval_metrics}
          _write_json(run_dirs.join(workdir, f"eval_{step}.json"), eval_metrics)
          if best is not None:
            if best_metric not in scalars:
              raise ConfigError(
                f"config.checkpoint.best_metric={best_metric!r} is not an eval metric; they are {sorted(scalars)}"
              )
            value = scalars[best_metric]
            better = meta["best_value"] is None or (value > meta["best_value"]) == (best_mode == "max")
            if better:
              meta["best_value"] = value
              best.save(state, {**meta, "step": step, "metric": best_metric})
              logging.info(
                "Saved the best checkpoint so far (%s %s) to %s", best_metric, format_metric(value), best.directory
              )
        stopping = not is_last and stop.should_stop(step)
        if is_last or stopping or step % config.checkpoint.every_steps == 0:
          save(step)
        writer.flush()
        if stopping:
          checkpoints.wait()
          raise Preempted(
            f"stopped by SIGTERM after step {step}; saved {checkpoints.directory}/{step}. "
            "Run the same command again to resume exactly there"
          )
  except KeyboardInterrupt:
    raise Interrupted(
      f"interrupted (Ctrl-C) at step {step}; the latest complete checkpoint is kept in {checkpoints.directory}. "
      "Run the same command again to resume from it"
    ) from None
  finally:
    checkpoints.close()
    if best is not None:
      best.close()
    writer.flush()
  return eval_metrics


def evaluate_checkpoint(
  config: ml_collections.ConfigDict, workdir: str, checkpoint: str = "latest", split: str | None = None
) -> dict[str, Any]:
  """Evaluates the latest, a numbered or the best checkpoint of `workdir`; writes the metrics as JSON."""
  experiment = Experiment(config)
  split = split or experiment.data_info.eval_split
  state = experiment.restore(workdir, checkpoint)
  step = int(jax.device_get(state.step))
  subdir = "checkpoints_best" if checkpoint == "best" else "checkpoints"
  restored = run_dirs.join(run_dirs.absolute(workdir), subdir, str(step))
  logging.info("Evaluating %s (--checkpoint=%s) on split %r", restored, checkpoint, split)
  metrics, _ = experiment.evaluate(state, split)
  path = run_dirs.join(workdir, f"eval_{split.replace('/', '_').replace('+', '_')}_step{step}.json")
  metrics = {"step": step, "split": split, "checkpoint": restored, **metrics}
  _write_json(path, metrics)
  logging.info("Wrote %s", path)
  return metrics
