"""Process set-up shared by every command, and the error type for configuration mistakes."""


class ConfigError(ValueError):
  """A configuration mistake; commands print its message as one line instead of a traceback."""


def prepare_host() -> None:
  """Keeps TensorFlow (tf.data only) off the accelerators so JAX owns their memory."""
  import tensorflow as tf
  tf.config.set_visible_devices([], "GPU")
  tf.config.set_visible_devices([], "TPU") if tf.config.list_physical_devices("TPU") else None
