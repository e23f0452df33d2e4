"""tf.data input pipelines: per-process numpy batches for training (infinite) and evaluation (padded, masked).

Train stream. The split is cut evenly over processes (`tfds.even_splits`), each process reads its part
with images still encoded, shuffles it once per epoch with a seed derived from (seed, epoch, process),
and repeats forever. Stream position k (counted from 0 at the start of training, on this process) gets
the augmentation seed fold_in(seed, k * process_count + process_index). The stream is therefore a pure
function of (seed, process layout): `start_example=k` rebuilds it from position k, skipping the first
k mod N examples of the current epoch before anything is decoded, and yields exactly the batches an
uninterrupted run would have yielded from there on. Batch i always covers positions
[start_example + i B, start_example + (i + 1) B): an image that fails to decode keeps its slot with
`mask` 0 and all-zero `label_weights` (see image_decoding), so `start_example = step * local_batch_size`.

Evaluation. Each process reads its part of the split once, in order; the last batch is padded and every
process yields the same number of batches (fully masked ones where its part is shorter), so a jitted
step with collectives never waits on a process that stopped early and each example counts once.

Batches are dicts of numpy arrays, leading axis = local batch size:

  image          float32 (B, H, W, 3) after `normalize_imagenet` / `value_range` (uint8 if pp ends earlier)
  labels         float32 (B, C)
  label_weights  float32 (B, C)   0 = ignored entry (and whole rows of skipped or padded examples)
  mask           float32 (B,)     1 = real example, 0 = undecodable image or evaluation padding
  boxes, box_labels, box_mask  (B, max_boxes, 4) float32, (B, max_boxes) int32, (B, max_boxes) float32
                                 only when config.data.max_boxes > 0

Skipped images. An image that does not decode (garbage or truncated bytes in a prepared TFRecord) never
stops a run. `.num_skipped` of a train iterator counts the undecodable images in the batches it has handed
out so far; `EvalBatches.num_skipped` counts those of this process's part of the split in the current pass
(reset when a pass starts, complete once its `num_steps` batches are read). Each is logged with its image
id. A skipped image still occupies its slot as a black 1x1 image resized by the ops (mask 0): losses and
metrics ignore it, BatchNorm statistics in train mode see it (a rare event on real data; the count tells
how rare). Both counts are per process: a multi-process run sums them to report the whole split.

Notes. Shuffling is a `shuffle_buffer`-sized buffer over the files' order (TFDS shuffles examples when it
writes them), reseeded every epoch. Resuming reads, without decoding, at most one epoch of this process's
part. The order depends on the process layout, so it is reproduced exactly only with the same number of
processes. tf.data's shuffle mixes its op seed with TensorFlow's global seed: nothing here sets it; calling
`tf.random.set_seed` elsewhere changes the order (consistently).

TensorFlow never sees the accelerators: building a pipeline hides GPUs from it first.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator

import jax
import ml_collections
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from jaxgraphs.data import image_decoding, sources, transforms
from jaxgraphs.errors import ConfigError
from jaxgraphs.data.data_config import default_data_config  # noqa: F401  (part of this module's API)

SKIPPED_KEY = image_decoding.SKIPPED_KEY
TRUNCATED_KEY = "_boxes_truncated"
_HOST_ONLY_KEYS = ("image_id", SKIPPED_KEY, TRUNCATED_KEY)
_ENDLESS = 2**62


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  """What the trainer, the task and the model factory need to know about `config.data` before reading it.

  `word_vectors` (C, d) and `label_adjacency` (C, C) are filled in by `label_priors.provide` only for a model
  that asks for them.
  """

  source: str
  tfds_name: str
  class_names: tuple[str, ...]
  num_classes: int
  train_split: str
  eval_split: str
  pp_train: str
  pp_eval: str
  predicate_names: tuple[str, ...] = ()  # scene-graph sources: '__background__' first; empty otherwise
  targets: tuple[str, ...] = ("labels",)  # what the examples carry to learn from (sources.Source.targets)
  positive_label_key: str = "labels"  # the TFDS feature of a training image's positive classes
  word_vectors: np.ndarray | None = None
  label_adjacency: np.ndarray | None = None


def dataset_info(data_cfg: ml_collections.ConfigDict) -> DatasetInfo:
  """Resolves `config.data` against its source's defaults (splits, preprocessing, classes)."""
  source = sources.get_source(data_cfg.source)
  class_names = source.class_names_in(data_cfg.get("data_dir") or None)
  return DatasetInfo(
    source=data_cfg.source,
    tfds_name=source.tfds_name,
    class_names=class_names,
    num_classes=len(class_names),
    train_split=data_cfg.train_split or source.train_split,
    eval_split=data_cfg.eval_split or source.eval_split,
    pp_train=data_cfg.pp_train or source.pp_train,
    pp_eval=data_cfg.pp_eval or source.pp_eval,
    predicate_names=tuple(getattr(source, "predicate_names", ())),
    targets=source.targets,
    positive_label_key=source.positive_label_key,
  )


def pad_to(tensor: tf.Tensor, max_len: int) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
  """First `max_len` rows zero-padded to exactly `max_len`; returns (rows, float32 row mask, whether rows were cut)."""
  count = tf.shape(tensor)[0]
  kept = tensor[:max_len]
  num_kept = tf.shape(kept)[0]
  padding = [[0, max_len - num_kept]] + [[0, 0]] * (tensor.shape.rank - 1)
  padded = tf.pad(kept, padding)
  padded.set_shape([max_len] + tensor.shape[1:].as_list())
  mask = tf.cast(tf.range(max_len) < num_kept, tf.float32)
  return padded, mask, count > max_len


# ---- host side ---------------------------------------------------------------------------------------
class BatchIterator:
  """Numpy batches of one process with the pipeline's bookkeeping removed; counts skipped images."""

  def __init__(self, ds: tf.data.Dataset, name: str):
    self._ds = ds
    self._iterator = ds.as_numpy_iterator()
    self.name = name
    self.num_batches = 0
    self.num_skipped = 0  # undecodable images seen in the batches yielded so far
    self.num_truncated = 0  # examples with more than max_boxes objects

  def __iter__(self) -> BatchIterator:
    return self

  @property
  def batch_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
    """Shape and dtype of every array a batch holds, known before the first batch is read."""
    return element_spec(self._ds)

  def __next__(self) -> dict[str, np.ndarray]:
    batch = next(self._iterator)
    skipped = batch.pop(SKIPPED_KEY)
    image_ids = batch.pop("image_id")
    self.num_truncated += int(np.sum(batch.pop(TRUNCATED_KEY, 0)))
    if np.any(skipped):
      self.num_skipped += int(np.sum(skipped))
      names = ", ".join(i.decode("utf-8", "replace") for i in image_ids[skipped])
      logging.warning("%s: skipped undecodable image(s) %s (%d so far)", self.name, names, self.num_skipped)
    self.num_batches += 1
    return batch


class TrainIterator(BatchIterator):
  """The endless per-process train stream; `position` is the next stream position (for resuming)."""

  def __init__(self, ds: tf.data.Dataset, name: str, *, start_example: int, local_batch_size: int, num_examples: int):
    super().__init__(ds, name)
    self.start_example = start_example
    self.local_batch_size = local_batch_size
    self.num_examples = num_examples  # in this process's part of the split (one epoch)

  @property
  def position(self) -> int:
    """Stream positions consumed: pass it as `start_example` to continue exactly here."""
    return self.start_example + self.num_batches * self.local_batch_size


class EvalBatches:
  """One pass over an evaluation split per `iter()`: exactly `num_steps` padded batches with a 'mask'."""

  def __init__(
    self,
    ds: tf.data.Dataset,
    name: str,
    *,
    num_steps: int,
    local_batch_size: int,
    num_examples: int,
    num_examples_total: int,
  ):
    self._ds = ds
    self.name = name
    self.num_steps = num_steps
    self.local_batch_size = local_batch_size
    self.num_examples = num_examples  # real examples of this process
    self.num_examples_total = num_examples_total  # over all processes
    self.num_skipped = 0  # undecodable images of this process in the current (or last) pass

  def __len__(self) -> int:
    return self.num_steps

  @property
  def batch_spec(self) -> dict[str, jax.ShapeDtypeStruct]:
    """Shape and dtype of every array a batch holds, known before the first batch is read."""
    return element_spec(self._ds)

  def __iter__(self) -> Iterator[dict[str, np.ndarray]]:
    batches = BatchIterator(self._ds, self.name)
    self.num_skipped = 0
    for _ in range(self.num_steps):
      batch = next(batches, None)
      # Updated before the yield: a caller that reads exactly num_steps batches and stops sees the full count.
      self.num_skipped = batches.num_skipped
      yield self._padding_batch() if batch is None else self._pad(batch)
    if next(batches, None) is not None:
      raise RuntimeError(f"{self.name}: more batches than the {self.num_steps} computed from the split sizes")
    if self.num_skipped:
      logging.warning(
        "%s: %d of %d images could not be decoded and were left out", self.name, self.num_skipped, self.num_examples
      )

  def _pad(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    missing = self.local_batch_size - len(batch["mask"])
    return {k: np.concatenate([v, np.zeros((missing,) + v.shape[1:], v.dtype)]) for k, v in batch.items()}

  def _padding_batch(self) -> dict[str, np.ndarray]:
    # _preprocess guarantees fixed per-example shapes, so a batch of zeros can be built from the spec.
    return {
      key: np.zeros((self.local_batch_size,) + spec.shape[1:], spec.dtype) for key, spec in self.batch_spec.items()
    }


def element_spec(ds: tf.data.Dataset) -> dict[str, jax.ShapeDtypeStruct]:
  """The batched dataset's arrays as host batches will hold them (bookkeeping keys left out)."""
  return {
    key: jax.ShapeDtypeStruct(tuple(spec.shape.as_list()), spec.dtype.as_numpy_dtype)
    for key, spec in ds.element_spec.items()
    if key not in _HOST_ONLY_KEYS
  }


# ---- tf.data -----------------------------------------------------------------------------------------
def _hide_accelerators_from_tf() -> None:
  """tf.data runs on the host; TF must not grab GPU memory that JAX needs."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:  # TF already initialised its devices; nothing can change that now
    logging.warning("TensorFlow was initialised before the input pipeline could hide the GPUs from it")


def _process_layout(process_index: int | None, process_count: int | None) -> tuple[int, int]:
  index = jax.process_index() if process_index is None else int(process_index)
  count = jax.process_count() if process_count is None else int(process_count)
  if not 0 <= index < count:
    raise ValueError(f"process_index must be in [0, {count}), got {index}")
  return index, count


def _read(builder: tfds.core.DatasetBuilder, split) -> tf.data.Dataset:
  """Raw examples of `split` in file order, images left encoded; an unprepared dataset fails in one line."""
  try:
    return builder.as_dataset(
      split=split,
      decoders={"image": tfds.decode.SkipDecoding()},
      shuffle_files=False,
      read_config=tfds.ReadConfig(try_autocache=False),
    )
  except AssertionError as error:  # TFDS's "could not find data in ... call download_and_prepare()"
    name = builder.info.name
    raise ConfigError(
      f"config.data.source: {name} is not prepared in {builder.data_dir}; prepare it once with "
      f"`python -m jaxgraphs.tools.prepare_dataset --dataset={name}` (README, Datasets), or point "
      f"--config.data.data_dir at the TFDS directory that holds it ({str(error).splitlines()[0][:120]})"
    ) from None


def _count(ds: tf.data.Dataset) -> int:
  """Number of elements, from the cardinality TFDS records or else by reading (not decoding) them."""
  cardinality = int(ds.cardinality())
  if cardinality >= 0:
    return cardinality
  return int(ds.reduce(np.int64(0), lambda n, _: n + 1))


def _options() -> tf.data.Options:
  options = tf.data.Options()
  options.deterministic = True  # the same seed must give the same order whatever the thread timing
  options.threading.max_intra_op_parallelism = 1
  options.experimental_optimization.map_parallelization = True
  # Consecutive maps run as one function per example (VG's 592-px train input: 273 -> 293-299 img/s on 2 cores).
  options.experimental_optimization.map_fusion = True
  return options


# Ops that may follow a normalisation moved to the device: they move or label pixels but compute none, except
# pad_bottom_right, which pads uint8 with the mean colour (within 0.01 of the zeros it pads a normalised image with).
MAY_FOLLOW_DEFERRED_NORMALIZATION = frozenset(
  {"flip_lr", "keep_image_size", "one_predicate_per_pair", "overlapping_relations", "pack_scene_graph"}
  | {"sample_relation_pairs", "pad_bottom_right"}
)


def defer_normalization(ops: list[transforms.Op]) -> list[transforms.Op]:
  """`ops` without a normalize_imagenet followed only by MAY_FOLLOW_DEFERRED_NORMALIZATION ops: its images stay
  uint8 for the device to normalise (image_statistics.network_images). Other op lists are returned unchanged."""
  names = [op.name for op in ops]
  if "normalize_imagenet" not in names:
    return ops
  index = len(names) - 1 - names[::-1].index("normalize_imagenet")
  if not set(names[index + 1 :]) <= MAY_FOLLOW_DEFERRED_NORMALIZATION:
    return ops
  return ops[:index] + ops[index + 1 :]


CHUNKED_DECODE_MIN_EXAMPLES = 2048  # decode_chunk_size=-1 chunks splits at least this large


def decode_chunk_size(data_cfg: ml_collections.ConfigDict, num_examples: int) -> int:
  """config.data.decode_chunk_size, with -1 resolved for a process's split of `num_examples` examples: the
  source's chunk (64 for photo datasets, 1 for the generated ones) from CHUNKED_DECODE_MIN_EXAMPLES on, else 1."""
  size = data_cfg.decode_chunk_size
  if not (isinstance(size, int) and (size == -1 or size >= 1)):
    raise ValueError(f"config.data.decode_chunk_size must be -1 (automatic) or a positive int, got {size!r}")
  if size == -1:
    return sources.get_source(data_cfg.source).decode_chunk_size if num_examples >= CHUNKED_DECODE_MIN_EXAMPLES else 1
  return size


def _preprocess(ds: tf.data.Dataset, spec: str, data_cfg, where: str, num_examples: int) -> tf.data.Dataset:
  """Decode (failures kept as skipped), the rest of the ops, then the mask and fixed-size box arrays."""
  ops = transforms.build_ops(spec, where=where, fuse=data_cfg.fuse_decode)
  if data_cfg.normalize_on_device:
    ops = defer_normalization(ops)
  parallel = data_cfg.num_parallel_calls
  if ds.element_spec["image"].dtype == tf.string:
    if ops[0].name not in transforms.DECODE_OPS:
      raise ValueError(f"{where}: {spec!r} must start with 'decode' (the source yields encoded images)")
    # A fused op decodes inside the robust decode (a failure becomes a placeholder), resamples in the map below.
    decode_stage, resample_stage = getattr(ops[0].fn, "stages", (ops[0].fn, None))
    chunk = decode_chunk_size(data_cfg, num_examples)
    ds = image_decoding.decode_with_fallback(ds, decode_stage, num_parallel_calls=parallel, chunk_size=chunk)
    ops = ([transforms.Op(ops[0].name, resample_stage)] if resample_stage else []) + ops[1:]
  else:
    ds = ds.map(tf.autograph.experimental.do_not_convert(lambda ex: {**ex, SKIPPED_KEY: tf.constant(False)}))
  rest = transforms.compose(ops)
  max_boxes = data_cfg.max_boxes

  @tf.autograph.experimental.do_not_convert
  def finish(example):
    example = rest(example)
    example.pop(transforms.SEED_KEY, None)
    mask = 1.0 - tf.cast(example[SKIPPED_KEY], tf.float32)
    example["mask"] = mask
    if "label_weights" in example:  # a skipped image must not count in a loss that only reads the weights
      example["label_weights"] = example["label_weights"] * mask
    if max_boxes > 0:
      example["boxes"], box_mask, example[TRUNCATED_KEY] = pad_to(example["boxes"], max_boxes)
      example["box_labels"], _, _ = pad_to(example["box_labels"], max_boxes)
      example["box_mask"] = box_mask * mask
    return example

  ds = ds.map(finish, num_parallel_calls=parallel, deterministic=True)
  for key, element in ds.element_spec.items():
    if not element.shape.is_fully_defined():
      raise ValueError(
        f"{where}: {spec!r} must give fixed-size arrays to batch, but {key!r} has shape "
        f"{element.shape} (end the image ops with resize(...), center_crop(...) or random_crop(...))"
      )
  return ds


def _shuffled_epochs(
  examples: tf.data.Dataset, *, seed: int, start_epoch: int, buffer: int, process_index: int, process_count: int
) -> tf.data.Dataset:
  """Endless epochs from `start_epoch` on, epoch e shuffled with a seed drawn from (seed, e, process)."""
  if buffer <= 1:
    return examples.repeat()  # every epoch in file order
  base = tf.constant(seed, tf.int64)

  @tf.autograph.experimental.do_not_convert
  def epoch(e):
    key = tf.stack([base, e * process_count + process_index])
    shuffle_seed = tf.random.stateless_uniform([], key, minval=None, maxval=None, dtype=tf.int64)
    return examples.shuffle(buffer, seed=shuffle_seed, reshuffle_each_iteration=False)

  return tf.data.Dataset.range(start_epoch, _ENDLESS).flat_map(epoch)


def build_train_dataset(
  data_cfg: ml_collections.ConfigDict,
  *,
  local_batch_size: int,
  seed: int,
  start_example: int = 0,
  process_index: int | None = None,
  process_count: int | None = None,
) -> TrainIterator:
  """The endless, deterministic train stream of this process, from stream position `start_example` on."""
  _hide_accelerators_from_tf()
  if local_batch_size <= 0:
    raise ValueError(f"local_batch_size must be positive, got {local_batch_size}")
  if start_example < 0:
    raise ValueError(f"start_example must be >= 0, got {start_example}")
  info = dataset_info(data_cfg)
  source = sources.get_source(data_cfg.source)
  index, count = _process_layout(process_index, process_count)
  builder = source.builder(data_cfg.data_dir, data_cfg.download)
  examples = _read(builder, tfds.even_splits(info.train_split, n=count)[index])
  examples = examples.map(source.adapter(data_cfg), num_parallel_calls=data_cfg.num_parallel_calls)
  if data_cfg.cache:
    examples = examples.cache()
  num_examples = _count(examples)
  if num_examples == 0:
    raise ValueError(
      f"config.data.train_split {info.train_split!r} of {info.tfds_name} gives process {index} of {count} no examples"
    )
  start_epoch, offset = divmod(start_example, num_examples)
  stream = _shuffled_epochs(
    examples,
    seed=seed,
    start_epoch=start_epoch,
    buffer=data_cfg.shuffle_buffer,
    process_index=index,
    process_count=count,
  )
  # Skip within the epoch before decoding: resuming costs reading these examples, not decoding them.
  stream = stream.skip(offset).enumerate(start=start_example)
  base_seed = tf.constant([seed, 0], tf.int64)

  @tf.autograph.experimental.do_not_convert
  def with_seed(position, example):
    global_index = position * count + index  # distinct across processes, so augmentations differ too
    return {**example, transforms.SEED_KEY: tf.random.experimental.stateless_fold_in(base_seed, global_index)}

  stream = stream.map(with_seed)
  ds = _preprocess(stream, info.pp_train, data_cfg, "config.data.pp_train", num_examples)
  ds = ds.batch(local_batch_size, drop_remainder=True).prefetch(data_cfg.prefetch).with_options(_options())
  return TrainIterator(
    ds,
    f"train {info.tfds_name}:{info.train_split}",
    start_example=start_example,
    local_batch_size=local_batch_size,
    num_examples=num_examples,
  )


def build_eval_dataset(
  data_cfg: ml_collections.ConfigDict,
  split: str | None = None,
  *,
  local_batch_size: int,
  process_index: int | None = None,
  process_count: int | None = None,
) -> tuple[EvalBatches, int]:
  """(re-iterable padded batches of this process's part of `split`, number of batches per pass)."""
  _hide_accelerators_from_tf()
  if local_batch_size <= 0:
    raise ValueError(f"local_batch_size must be positive, got {local_batch_size}")
  info = dataset_info(data_cfg)
  source = sources.get_source(data_cfg.source)
  split = split or info.eval_split
  index, count = _process_layout(process_index, process_count)
  builder = source.builder(data_cfg.data_dir, data_cfg.download)
  parts = tfds.even_splits(split, n=count)
  # Every process computes every part's size, so all agree on the number of steps without communicating.
  sizes = [_count(_read(builder, part)) for part in parts]
  num_steps = max(math.ceil(size / local_batch_size) for size in sizes)
  examples = _read(builder, parts[index]).map(source.adapter(data_cfg), num_parallel_calls=data_cfg.num_parallel_calls)
  ds = _preprocess(examples, info.pp_eval, data_cfg, "config.data.pp_eval", sizes[index])
  ds = ds.batch(local_batch_size).prefetch(data_cfg.prefetch).with_options(_options())
  batches = EvalBatches(
    ds,
    f"eval {info.tfds_name}:{split}",
    num_steps=num_steps,
    local_batch_size=local_batch_size,
    num_examples=sizes[index],
    num_examples_total=sum(sizes),
  )
  return batches, num_steps
