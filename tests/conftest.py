"""Test-wide settings: CPU only, a shared XLA compilation cache, and tests/ importable for the shared helpers."""

import os
import sys
import tempfile

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
