"""Process set-up shared by every command."""


class _DropLibraryChatter:
  """Drops Orbax's per-save INFO lines so the progress line stays readable; warnings still pass."""

  def filter(self, record) -> bool:
    import logging

    return record.levelno >= logging.WARNING or "/orbax/" not in record.pathname


def quiet_library_logs() -> None:
  """Installs the Orbax INFO filter on absl's logger."""
  import logging

  logging.getLogger("absl").addFilter(_DropLibraryChatter())


def prepare_host() -> None:
  """Keeps TensorFlow (tf.data only) off the accelerators so JAX owns their memory; quiets Orbax."""
  quiet_library_logs()
  import tensorflow as tf

  tf.config.set_visible_devices([], "GPU")
