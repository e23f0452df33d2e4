"""Tasks: the loss, evaluation outputs and metrics of each paper's problem, chosen by name."""

from jaxgraphs.tasks.base import Evaluator, Task
from jaxgraphs.errors import ConfigError


def _multilabel(config, data_info):
  from jaxgraphs.tasks.multilabel import MultiLabelTask

  return MultiLabelTask(data_info.class_names)


def _aesthetics(config, data_info):
  from jaxgraphs.tasks.aesthetics import aesthetics_task_from_config

  return aesthetics_task_from_config(config, data_info)


# name -> factory(config, data_info) returning a Task; data_info is pipeline.DatasetInfo.
TASKS = {"multilabel": _multilabel, "aesthetics": _aesthetics}


def _scene_graph(config, data_info):
  from jaxgraphs.tasks.scene_graph import scene_graph_task

  return scene_graph_task(config, data_info)


TASKS["scene_graph"] = _scene_graph


def _detection(config, data_info):
  from jaxgraphs.tasks.detection import detection_task

  return detection_task(config, data_info)


TASKS["detection"] = _detection


def build_task(config, data_info) -> Task:
  """Returns the task named by `config.task.name`."""
  name = config.task.name
  if name not in TASKS:
    raise ConfigError(f"config.task.name={name!r} is not a known task; choose one of {sorted(TASKS)}")
  return TASKS[name](config, data_info)
