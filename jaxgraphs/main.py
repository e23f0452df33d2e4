"""Command line: `python -m jaxgraphs.main --config=configs/X.py --workdir=DIR [--config.key=value ...]`.

Also installed as the `jaxgraphs` command. `--config` takes a file path or the name of a config shipped with the
package (`--config=ssgrl_coco`, `--config=ssgrl_coco.py:without_si`). `--mode=eval` without `--config` evaluates
with the run's own saved `config.json`. Mistakes end in one `error:` line and exit code 2, before anything is
written (see `jaxgraphs.cli` for the exit codes).
"""

import os
import sys

from absl import flags
from ml_collections import config_flags

from jaxgraphs import cli
from jaxgraphs.configs.common import config_differences, resolve_config_path
from jaxgraphs.errors import ConfigError

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config",
  None,
  "A config file (configs/*.py) or a shipped config's name; eval mode: default the run's config.json.",
  lock_config=True,
)
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
  """Joins a multi-process run (`jax.distributed`) and arms the dead-peer watch (jaxgraphs/training/peers.py).

  When a process dies (killed, crashed), every other one stops within about a second: one line
  `error: process J of N stopped (lost connection: ...); the last complete checkpoint is <workdir>/checkpoints/<step>;
  rerun the same command to resume`, exit code 75, without waiting in JAX's shutdown barrier. Timeouts, in seconds,
  from the environment (launch/local_multiprocess.py sets them from its flags of the same names):
    JAXGRAPHS_HEARTBEAT_TIMEOUT (default 10; JAX's is 100): a process whose heartbeats stop for this long (frozen,
      unreachable: its sockets stay open) is declared dead by JAX's coordination service, which aborts the others.
    JAXGRAPHS_SHUTDOWN_TIMEOUT (default 60; JAX's is 300): how long an exiting process waits for the others at
      the shutdown barrier; one that failed alone waits there while the others wait for it in a collective, until
      JAX aborts them all.
  """
  if not (FLAGS.coordinator_address or FLAGS.distributed):
    return
  import jax

  from jaxgraphs.training import peers

  timeouts = peers.timeouts_from_environment()
  if FLAGS.coordinator_address:
    # Only affects the CPU backend (collectives across processes there); asking for the backend here
    # would initialise it before jax.distributed, which JAX forbids.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(FLAGS.coordinator_address, FLAGS.num_processes, FLAGS.process_id, **timeouts)
  else:
    jax.distributed.initialize(**timeouts)
  peers.watch(FLAGS.workdir, training=FLAGS.mode == "train")


def check_workdir(workdir: str | None) -> str:
  """The workdir, after checking (without creating anything) that it can be created or written."""
  if not workdir:
    raise ConfigError("--workdir is required: the directory for checkpoints, TensorBoard logs and eval JSON")
  if "://" in workdir:  # a bucket: the file system checks it when the first file is written
    return workdir
  workdir = os.path.abspath(os.path.expanduser(workdir))
  existing = workdir
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.path.isdir(existing):
    raise ConfigError(f"--workdir={workdir}: {existing} is a file, not a directory")
  if not os.access(existing, os.W_OK | os.X_OK):
    raise ConfigError(f"--workdir={workdir}: {existing} is not writable")
  return workdir


def _config_for_eval(workdir: str):
  """The run's saved config.json, for `--mode=eval` without `--config`."""
  from jaxgraphs.training.run_dirs import config_from_workdir

  try:
    return config_from_workdir(workdir), workdir.rstrip("/") + "/config.json"
  except FileNotFoundError as error:
    raise ConfigError(f"--mode=eval without --config: {error}") from None


def _config_origin() -> tuple[str, list[str]]:
  """Where the config came from ('configs/x.py:arg') and the keys the command line changed from the file."""
  from jaxgraphs.configs.common import load_config

  given = _config_flag() or ""
  return given, config_differences(load_config(resolve_config_path(given)), FLAGS.config)


def _config_flag() -> str | None:
  """The `--config=` value given on the command line, or None."""
  return next((a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--config=")), None)


def main(argv):
  if len(argv) > 1:
    raise ConfigError(f"unexpected arguments: {' '.join(argv[1:])} (flags are written --name=value)")
  workdir = check_workdir(FLAGS.workdir)
  if FLAGS.config is not None:
    config, (origin, changed) = FLAGS.config, _config_origin()
  elif FLAGS.mode == "eval":
    (config, origin), changed = _config_for_eval(workdir), []
  else:
    raise ConfigError("--config is required, e.g. --config=configs/baseline_shapes.py")
  if FLAGS.mode == "eval":
    from jaxgraphs.training.run_dirs import checkpoint_directory

    checkpoint_directory(workdir, FLAGS.checkpoint)
  from jaxgraphs.training.defaults import check_config

  check_config(config, training=FLAGS.mode == "train")
  _start_distributed()
  # Imported after jax.distributed is up, and after flags are parsed.
  from jaxgraphs.training import runtime, trainer

  runtime.prepare_host()
  runtime.log_startup(origin, changed)
  if FLAGS.mode == "train":
    metrics = trainer.train_and_evaluate(config, workdir)
  else:
    metrics = trainer.evaluate_checkpoint(config, workdir, FLAGS.checkpoint, FLAGS.eval_split)
  import jax

  if jax.process_index() == 0:
    print(_final_report(metrics, workdir))


def _final_report(metrics, workdir: str) -> str:
  """The closing lines: every scalar metric and where to look next."""
  if not metrics:
    return f"No evaluation to report: {workdir} has no eval JSON of its last step"
  scalars = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
  where = f" of {metrics['checkpoint']}" if "checkpoint" in metrics else ""
  lines = [f"Final evaluation (step {metrics['step']}{where}):" if "step" in metrics else "Final evaluation:"]
  from jaxgraphs.training.summaries import format_metric

  lines += [f"  {k:<24} {format_metric(v)}" for k, v in scalars.items() if k != "step"]
  lines.append(
    f"Checkpoints, eval JSON and TensorBoard logs are in {workdir} (tensorboard --logdir {workdir}/tensorboard)"
  )
  return "\n".join(lines)


def _explain(error: Exception) -> str:
  """One line for a mistake found while parsing flags: a missing or broken config file, or an unknown key."""
  given = _config_flag()
  if given is not None:
    from jaxgraphs.configs.common import load_config

    try:
      config = load_config(resolve_config_path(given))
    except ConfigError as config_error:
      return str(config_error)
    except Exception as load_error:  # the file itself is broken: say where
      return f"--config={given}: {type(load_error).__name__}: {load_error}"
    for override in (a for a in sys.argv[1:] if a.startswith("--config.")):
      node, keys = config, override.split("=", 1)[0][len("--config.") :].split(".")
      for depth, key in enumerate(keys):
        if not hasattr(node, "keys") or key not in node:
          where = ".".join(["config", *keys[:depth]])
          return f"{override}: {where} has no key {key!r} (keys are fixed by the config file)"
        node = node[key]
    overrides = " ".join(a for a in sys.argv[1:] if a.startswith("--config."))
    if overrides:
      return f"cannot apply {overrides}: {error}"
  return str(error)


def run():
  """Entry point (`python -m jaxgraphs.main`, `jaxgraphs`): shipped config names resolved, one-line errors."""
  sys.argv = [sys.argv[0]] + [_resolve_config_flag(a) for a in sys.argv[1:]]
  cli.run(main, _explain)


def _resolve_config_flag(arg: str) -> str:
  """`--config=NAME[:ARG]` with NAME a shipped config becomes its path; other arguments are unchanged."""
  if not arg.startswith("--config="):
    return arg
  try:
    return "--config=" + resolve_config_path(arg.split("=", 1)[1])
  except ConfigError as error:
    cli.fail(str(error))


if __name__ == "__main__":
  run()
