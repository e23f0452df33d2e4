"""`config.data`: every field the input pipeline reads, with its default (no TensorFlow import, so configs load fast)."""

import ml_collections


def default_data_config() -> ml_collections.ConfigDict:
  """`config.data` with every field the pipeline reads; None means "the source's default"."""
  optional_str = lambda: ml_collections.config_dict.placeholder(str)  # None, overridable from the command line
  config = ml_collections.ConfigDict()
  config.source = "coco/2014"  # a key of sources.SOURCES
  config.data_dir = optional_str()  # TFDS data directory; None: $TFDS_DATA_DIR or ~/tensorflow_datasets
  config.download = False  # let TFDS download and prepare a missing dataset (generated sources always prepare)
  config.train_split = optional_str()  # TFDS split; None: the source's (coco 'train', voc/2007 'train+validation')
  config.eval_split = optional_str()  # None: the source's (coco 'validation', voc/2007 'test', voc/2012 'validation')
  config.pp_train = optional_str()  # preprocessing string (see transforms); None: the source's default
  config.pp_eval = optional_str()  # must end in a fixed size so evaluation batches can be padded
  # decode|resize|crop|resize as one op that decodes and resizes only the crop (transforms.fuse_ops): same random
  # draws, resampling noise apart; False runs the ops as written.
  config.fuse_decode = True
  # A pp string whose last pixel-changing op is normalize_imagenet hands batches over as uint8 and the train step
  # normalises them (image_statistics): a quarter of the host's copying. False normalises on the host.
  config.normalize_on_device = True
  config.shuffle_buffer = 10_000  # encoded examples held for shuffling; <= 1 disables shuffling
  config.cache = False  # keep this process's encoded examples in memory after the first epoch
  config.voc_difficult = "ignore"  # 'ignore' (standard protocol) or 'negative' (the SSGRL code)
  config.max_boxes = 0  # > 0: also emit boxes / box_labels / box_mask padded to this many objects
  config.prefetch = 2  # batches prepared ahead on the host
  config.num_parallel_calls = -1  # decode / preprocessing parallelism; -1: tf.data AUTOTUNE
  # Examples the robust decode (image_decoding.decode_with_fallback) decodes in one tf.data dataset: larger is faster
  # (64: RGNet's input ~1.3x one per example) but holds more decoded images and starts each pass ~0.2 s later.
  # -1: the source's choice (64 for photo datasets, 1 for the generated ones) where this process's split has at least
  # 2048 examples, else 1.
  config.decode_chunk_size = -1
  return config
