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


def log_startup(config_origin: str, changed_keys: list[str]) -> None:
  """Logs the backend, devices and processes in use, where the config came from and what the command line
  changed; warns when an accelerator is present but JAX runs on CPU (a jax without CUDA/TPU support)."""
  import os
  import shutil

  import jax
  from absl import logging

  devices = jax.devices()
  kinds = sorted({d.device_kind for d in devices})
  logging.info(
    "JAX %s on %s: %d device(s) (%s), %d local, process %d of %d",
    jax.__version__,
    jax.default_backend(),
    len(devices),
    ", ".join(kinds),
    jax.local_device_count(),
    jax.process_index(),
    jax.process_count(),
  )
  gpu_present = os.path.exists("/dev/nvidia0") or shutil.which("nvidia-smi")
  if jax.default_backend() == "cpu" and gpu_present and os.environ.get("JAX_PLATFORMS") != "cpu":
    logging.warning(
      "An NVIDIA GPU is present but JAX runs on CPU: install JAX with CUDA (pip install -e '.[cuda]'), "
      "or set JAX_PLATFORMS=cpu to silence this"
    )
  logging.info("Config %s%s", config_origin, "" if changed_keys else " (as written)")
  for change in changed_keys:
    logging.info("  changed on the command line: %s", change)
