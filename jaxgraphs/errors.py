"""Error types every layer may raise (models included), and the exit codes the commands give them."""


class ConfigError(ValueError):
  """A configuration or command-line mistake; commands print its message as one line and exit 2."""


class RunError(RuntimeError):
  """A run stopped for a reason its message fully explains (a NaN loss, a failed save): one line, exit 1."""


class Preempted(RunError):
  """The run was asked to stop (SIGTERM), saved its state and stopped; rerunning resumes it."""

  exit_code = 75  # EX_TEMPFAIL: "try again", what a scheduler's requeue logic looks for


class Interrupted(RunError):
  """Ctrl-C: the run stopped between steps; its last checkpoint is complete."""

  exit_code = 130  # the shell's code for SIGINT


EXIT_USAGE = 2
EXIT_FAILED = 1
