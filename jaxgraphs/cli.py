"""What every command shares: `--help` exits 0, and a mistake ends in one `error: ...` line, printed once.

Exit codes: 0 done, 1 a run that failed for a reason its line names (NaN loss, failed save), 2 a usage or
configuration mistake (nothing was written), 75 stopped early but resumable: preempted by SIGTERM after saving,
or a peer process of a multi-process run died (rerun to resume), 130 Ctrl-C.
"""

from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags

from jaxgraphs.errors import EXIT_FAILED, EXIT_USAGE, ConfigError, RunError

HELP_FLAGS = ("--help", "-help", "-h", "-?", "--helpshort", "-helpshort", "--helpfull", "-helpfull")


def fail(message: str, code: int = EXIT_USAGE) -> None:
  """Prints `error: message` (one line) on stderr and exits with `code`."""
  print(f"error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
  raise SystemExit(code)


def parse_flags(argv: list[str], explain: Callable[[Exception], str] | None = None) -> list[str]:
  """absl's flag parsing, with a bad flag or config file reported as one line (exit 2) instead of usage text."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as error:
    fail(explain(error) if explain else str(error))
  except (ConfigError, SyntaxError, OSError, AttributeError, KeyError, TypeError, ValueError) as error:
    # Raised while a config file is loaded or a `--config.x=y` override is applied.
    fail(explain(error) if explain else f"{type(error).__name__}: {error}")


def run(main: Callable[[list[str]], None], explain: Callable[[Exception], str] | None = None) -> None:
  """Runs `main` under absl with one-line errors; `explain` rewords flag-parsing errors (e.g. naming a key)."""
  asked_for_help = any(arg in HELP_FLAGS for arg in sys.argv[1:])

  def main_with_usage_errors_as_config_errors(argv):
    try:
      return main(argv)
    except app.UsageError as error:  # absl would print the whole flag help for it
      raise ConfigError(str(error)) from None

  try:
    app.run(main_with_usage_errors_as_config_errors, flags_parser=lambda argv: parse_flags(argv, explain))
  except SystemExit as exit_:
    # With a help flag absl stops while parsing, before `main`, so its exit 1 can only be the help's.
    if asked_for_help and exit_.code == 1:
      raise SystemExit(0) from None
    raise
  except ConfigError as error:
    fail(str(error), EXIT_USAGE)
  except RunError as error:
    fail(str(error), getattr(error, "exit_code", EXIT_FAILED))
  except FloatingPointError as error:
    fail(str(error), EXIT_FAILED)
  except KeyboardInterrupt:
    fail("interrupted (Ctrl-C); run the same command again to resume from the latest checkpoint", 130)
