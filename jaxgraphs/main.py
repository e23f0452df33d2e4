"""Command line: `python -m jaxgraphs.main --config=configs/X.py --workdir=DIR [--config.key=value ...]`."""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, TensorBoard logs and eval JSON.")
flags.DEFINE_enum("mode", "train", ["train", "eval"], "train (resumes by itself) or only evaluate.")
flags.DEFINE_string("checkpoint", "latest", "eval mode: 'latest', 'best' or a step number.")
flags.DEFINE_string("eval_split", None, "eval mode: a split other than config.data.eval_split.")
flags.DEFINE_string(
  "coordinator_address",
  None,
  "host:port of process 0, for multi-process runs "
  "(not needed on TPU pods or under SLURM, where JAX finds it by itself).",
)
flags.DEFINE_integer("num_processes", None, "Number of processes in a multi-process run.")
flags.DEFINE_integer("process_id", None, "This process's index in a multi-process run.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() with cluster auto-detection.")


def _start_distributed():
  import jax

  if FLAGS.coordinator_address:
    # Only affects the CPU backend (collectives across processes there); asking for the backend here
    # would initialise it before jax.distributed, which JAX forbids.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id)
  elif FLAGS.distributed:
    jax.distributed.initialize()


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
  if FLAGS.config is None:
    raise app.UsageError("--config is required, e.g. --config=configs/baseline_shapes.py")
  if not FLAGS.workdir:
    raise app.UsageError("--workdir is required: it holds checkpoints, TensorBoard logs and eval JSON")
  _start_distributed()
  # Imported after jax.distributed is up, and after flags are parsed.
  from jaxgraphs.training import trainer
  from jaxgraphs.training.runtime import prepare_host

  prepare_host()
  if FLAGS.mode == "train":
    metrics = trainer.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  else:
    metrics = trainer.evaluate_checkpoint(FLAGS.config, FLAGS.workdir, FLAGS.checkpoint, FLAGS.eval_split)
  import jax

  if jax.process_index() == 0:
    print(_final_report(metrics, FLAGS.workdir))


def _final_report(metrics, workdir: str) -> str:
  """The closing lines: every scalar metric and where to look next."""
  scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
  lines = ["Final evaluation:"] + [f"  {k:<24} {v:.4f}" for k, v in scalars.items()]
  lines.append(
    f"Checkpoints, eval JSON and TensorBoard logs are in {workdir} (tensorboard --logdir {workdir}/tensorboard)"
  )
  return "\n".join(lines)


def _unknown_override(error: Exception) -> str:
  """Names the `--config.a.b=v` override whose key does not exist in the config file."""
  from jaxgraphs.configs.common import load_config

  config_path = next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--config=")), None)
  overrides = [a for a in sys.argv[1:] if a.startswith("--config.")]
  try:
    config = load_config(config_path)
  except Exception:  # the config itself is broken: fall back to the parser's own words
    return f"error: cannot apply {' '.join(overrides)}: {error}"
  for override in overrides:
    node, keys = config, override.split("=", 1)[0][len("--config.") :].split(".")
    for depth, key in enumerate(keys):
      if not hasattr(node, "keys") or key not in node:
        where = ".".join(["config", *keys[:depth]])
        return f"error: {override}: {where} has no key {key!r} (keys are fixed by the config file)"
      node = node[key]
  return f"error: cannot apply {' '.join(overrides)}: {error}"


def run():
  """Entry point that turns known configuration mistakes into one clear line instead of a traceback."""
  from jaxgraphs.errors import ConfigError

  try:
    app.run(main)
  except FloatingPointError as e:  # trainer.NonFiniteLossError: the message names the step
    logging.error("%s", e)
    raise SystemExit(f"error: {e}")
  except ValueError as e:
    # By convention an error that starts with the config key it is about is a user mistake, not a bug.
    if not (isinstance(e, ConfigError) or str(e).startswith("config.")):
      raise
    logging.error("%s", e)
    raise SystemExit(f"error: {e}")
  except (AttributeError, KeyError) as e:
    # Raised while absl parses `--config.x=y` for a key the locked config does not have.
    if not any(a.startswith("--config.") for a in sys.argv[1:]) or FLAGS.is_parsed():
      raise
    raise SystemExit(_unknown_override(e))


if __name__ == "__main__":
  run()
