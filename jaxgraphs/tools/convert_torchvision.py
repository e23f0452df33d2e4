r"""Convert a torchvision ImageNet checkpoint into a Flax {"params", "batch_stats"} tree saved with Orbax.

  python -m jaxgraphs.tools.convert_torchvision --arch=densenet121 \
      --src=densenet121-a639ec97.pth --dst=/tmp/densenet121

The .pth files are torchvision's ImageNet weights, e.g. https://download.pytorch.org/models/
densenet121-a639ec97.pth (torchvision's `weights=...` enums list every URL; torchvision caches the files
under ~/.cache/torch/hub/checkpoints/). Reading a .pth needs PyTorch; the conversion itself is NumPy.
Before saving, the result is checked strictly against the Flax model that --arch builds.
"""

import os
import re
from typing import Mapping

import numpy as np

# torchvision's DenseNet checkpoints keep pre-0.4 names such as `denselayer1.norm.1.weight`.
LEGACY_DENSENET_KEY = re.compile(
  r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$"
)
BATCH_STATS_NAMES = {"running_mean": "mean", "running_var": "var"}
SKIPPED_NAMES = {"num_batches_tracked"}


def flax_path(torch_key: str) -> tuple[str, ...]:
  """torchvision key -> Flax path: `layer1.0.downsample.1.weight` -> (layer1_0, downsample_1, weight)."""
  legacy = LEGACY_DENSENET_KEY.match(torch_key)
  if legacy:
    torch_key = legacy.group(1) + legacy.group(2)
  # Sequential indices are joined to their container's name, as the Flax submodules are named.
  return tuple(re.sub(r"\.(\d+)(?=\.)", r"_\1", torch_key).split("."))


def convert_tensor(name: str, value: np.ndarray) -> tuple[str, str, np.ndarray]:
  """(collection, Flax name, array) for one torch parameter or buffer called `name`."""
  if name in BATCH_STATS_NAMES:
    return "batch_stats", BATCH_STATS_NAMES[name], value
  if name == "bias":
    return "params", "bias", value
  if name != "weight":
    raise ValueError(f"unexpected tensor name {name!r}")
  if value.ndim == 4:  # convolution OIHW -> HWIO
    return "params", "kernel", value.transpose(2, 3, 1, 0)
  if value.ndim == 2:  # linear (out, in) -> (in, out)
    return "params", "kernel", value.T
  if value.ndim == 1:  # batch norm
    return "params", "scale", value
  raise ValueError(f"unexpected {value.ndim}-d weight")


def vgg_fc6_as_hwio(value: np.ndarray) -> np.ndarray:
  """VGG's first classifier Linear (4096, C*7*7), which reads NCHW-flattened input -> a (7, 7, C, 4096) kernel."""
  out_features, in_features = value.shape
  return value.reshape(out_features, in_features // 49, 7, 7).transpose(2, 3, 1, 0)


def convert_state_dict(state_dict: Mapping[str, np.ndarray], arch: str) -> dict:
  """torchvision state_dict of arrays -> nested {"params": ..., "batch_stats": ...} of float32 NumPy arrays."""
  tree = {"params": {}, "batch_stats": {}}
  for key, value in state_dict.items():
    value = np.asarray(value)
    *modules, name = flax_path(key)
    if name in SKIPPED_NAMES:
      continue
    try:
      if arch.startswith("vgg") and modules == ["classifier_0"] and name == "weight":
        collection, leaf, array = "params", "kernel", vgg_fc6_as_hwio(value)
      else:
        collection, leaf, array = convert_tensor(name, value)
    except ValueError as error:
      raise ValueError(f"torchvision key {key!r}: {error}") from None
    node = tree[collection]
    for module in modules:
      node = node.setdefault(module, {})
    node[leaf] = np.array(array, dtype=np.float32, order="C")  # a copy: torch tensors share their memory
  return tree


def read_torch_checkpoint(path: str) -> dict[str, np.ndarray]:
  """A .pth state_dict as NumPy arrays; needs PyTorch, imported only here."""
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError as error:
    raise ImportError(
      f"Reading the torchvision checkpoint {path} needs PyTorch (`pip install torch`, the CPU build is "
      "enough); the jaxgraphs library itself never imports torch."
    ) from error
  state_dict = torch.load(path, map_location="cpu", weights_only=True)
  return {key: value.detach().numpy() for key, value in state_dict.items()}


def classifier_name(arch: str) -> str:
  """The Flax name of a torchvision classifier's last linear layer."""
  if arch.startswith("resnet"):
    return "fc"
  if arch.startswith("densenet"):
    return "classifier"
  return "classifier_6"


def convert_file(arch: str, src: str, dst: str) -> dict:
  """Converts `src` for torchvision architecture `arch`, checks it strictly and saves it with Orbax at `dst`."""
  # Imported here so `convert_state_dict` stays importable without JAX device setup.
  import jax  # pylint: disable=import-outside-toplevel
  import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel

  from jaxgraphs.models import backbones  # pylint: disable=import-outside-toplevel
  from jaxgraphs.training import pretrained  # pylint: disable=import-outside-toplevel

  from jaxgraphs.errors import ConfigError  # pylint: disable=import-outside-toplevel

  # Checked before PyTorch is asked for, so a typo is not answered with "install torch".
  if arch not in backbones.BACKBONES:
    raise ConfigError(
      f"--arch={arch} is not a torchvision architecture this project builds: {', '.join(backbones.BACKBONES)}"
    )
  if not os.path.isfile(os.path.expanduser(src)):
    raise ConfigError(f"--src={src}: no such file")
  if os.path.exists(os.path.expanduser(dst)):
    raise ConfigError(f"--dst={dst} already exists; give a new directory")
  try:
    tree = convert_state_dict(read_torch_checkpoint(src), arch)
  except ImportError as error:
    raise ConfigError(str(error)) from None
  classifier = tree["params"].get(classifier_name(arch))
  # A features-only checkpoint (e.g. vgg16_features-amdegroot-88682ab5.pth) matches the FCN form.
  model = backbones.build_backbone(arch, num_classes=classifier["bias"].shape[0] if classifier else None)
  expected = jax.eval_shape(model.init, jax.random.key(0), np.zeros((1, 224, 224, 3), np.float32))
  pretrained.check_matches(expected, tree, source=src)
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(os.path.abspath(dst), tree)
  checkpointer.wait_until_finished()
  return tree


def main(argv):
  """Command-line entry point."""
  del argv
  from absl import flags  # pylint: disable=import-outside-toplevel

  args = flags.FLAGS
  tree = convert_file(args.arch, args.src, args.dst)
  import jax  # pylint: disable=import-outside-toplevel

  count = sum(leaf.size for leaf in jax.tree.leaves(tree["params"]))
  print(f"{args.arch}: {count:,} parameters from {args.src} saved to {os.path.abspath(args.dst)}")


if __name__ == "__main__":
  from absl import flags  # pylint: disable=import-outside-toplevel

  from jaxgraphs import cli

  flags.DEFINE_string("arch", None, "torchvision architecture, e.g. resnet101, densenet121, vgg16_bn.")
  flags.DEFINE_string("src", None, "torchvision state_dict file (.pth).")
  flags.DEFINE_string("dst", None, "output directory of the Orbax checkpoint (must not exist yet).")
  flags.mark_flags_as_required(["arch", "src", "dst"])
  cli.run(main)
