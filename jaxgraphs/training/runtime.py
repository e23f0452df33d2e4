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


HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort", "--helpfull", "-helpfull")


def run_app(main) -> None:
  """`absl.app.run(main)`, except that asking for help exits 0 (absl prints the flags and exits 1)."""
  import sys

  from absl import app

  asked_for_help = any(arg in HELP_FLAGS for arg in sys.argv[1:])
  try:
    app.run(main)
  except SystemExit as exit_:
    # With a help flag absl stops while parsing, before `main`, so its exit 1 can only be the help's.
    if asked_for_help and exit_.code == 1:
      raise SystemExit(0) from None
    raise
