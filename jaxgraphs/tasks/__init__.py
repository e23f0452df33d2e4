"""Tasks: the loss, evaluation outputs and metrics of each paper's problem, chosen by name."""

from jaxgraphs.tasks.base import Evaluator, Task
from jaxgraphs.training.runtime import ConfigError


def _multilabel():
  from jaxgraphs.tasks.multilabel import MultiLabelTask
  return MultiLabelTask()


TASKS = {"multilabel": _multilabel}


def build_task(name: str) -> Task:
  """Returns the task registered under `name` (config key `config.task.name`)."""
  if name not in TASKS:
    raise ConfigError(f"config.task.name={name!r} is not a known task; choose one of {sorted(TASKS)}")
  return TASKS[name]()
