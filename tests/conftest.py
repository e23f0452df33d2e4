"""Test-wide settings: CPU only, a shared XLA compilation cache, and tests/ importable for the shared helpers."""

import importlib.util
import os
import sys
import tempfile

# torchvision loads triton, whose LLVM crashes the process (segmentation fault) once TensorFlow's is loaded: with the
# optional PyTorch installed (for the reference tests), import it before any test module imports TensorFlow.
if importlib.util.find_spec("torchvision") is not None:
  import torchvision  # noqa: F401

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Many tests (and the command-line runs they start, which inherit the environment) compile the same tiny
# networks; JAX's persistent cache serves a repeated compilation from disk. It changes no number: an entry is
# the executable XLA would build again, keyed by the program and the compile options.
os.environ.setdefault(
  "JAX_COMPILATION_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"jaxgraphs-tests-xla-cache-{os.getuid()}")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
sys.path.insert(0, os.path.dirname(__file__))


import jax  # noqa: E402  (after the environment above)
import pytest  # noqa: E402


@pytest.fixture
def no_implicit_transfers():
  """Within the test, a jitted step that copies data between host and device implicitly fails (explicit
  `jax.device_put` / `device_get` stay allowed): batches must arrive on the mesh already sharded."""
  with jax.transfer_guard("disallow"):
    yield


# The longest tests (1.5-3 minutes each on 2 cores: models that must learn), started before everything else.
LONGEST = ("test_detector_runs.py", "test_diagnostic_learning.py")


def pytest_collection_modifyitems(config, items):
  """The longest tests, then the other slow ones, then the rest (a stable sort, the same order in every xdist
  worker): the long runs start at once and the short tests fill the other worker around them, instead of a long
  test running on alone at the end."""
  items.sort(key=lambda item: (item.get_closest_marker("slow") is None, item.path.name not in LONGEST))
