"""Strict loading of converted weights (load_pretrained) and the torchvision converter."""

import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import linen as nn

from jaxgraphs.training import pretrained
from jaxgraphs.models.backbones import ResNet
from jaxgraphs.tools import convert_torchvision

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "backbones", "resnet_basic_os32.npz")
BACKBONE = dict(depth=18, width=2, stage_sizes=(1, 1, 1, 1))


class Classifier(nn.Module):
  """A fully convolutional backbone under 'backbone' and a new head, as the task models are built."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    features = ResNet(**BACKBONE, name="backbone")(x, train)
    return nn.Dense(3, name="head")(
      features["pre_logits"] if "pre_logits" in features else features["feature_map"].mean((1, 2))
    )


def fixture_tree():
  """The converted {'params', 'batch_stats'} of the small torchvision ResNet-18 fixture (with its 5-way fc)."""
  arrays = np.load(FIXTURE)
  state = {key[len("state/") :]: arrays[key] for key in arrays.files if key.startswith("state/")}
  return convert_torchvision.convert_state_dict(state, "resnet18"), arrays


def fresh_variables():
  return jax.eval_shape(Classifier().init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))


def concrete(tree):
  return jax.tree.map(lambda leaf: np.full(leaf.shape, 7.0, leaf.dtype), tree)


def test_merge_places_the_checkpoint_at_the_subtree_and_keeps_the_new_head():
  checkpoint, arrays = fixture_tree()
  variables = concrete(fresh_variables())
  merged = pretrained.merge_pretrained(variables, checkpoint, dont_load=[r"params/backbone/fc/.*"])
  np.testing.assert_array_equal(
    merged["params"]["backbone"]["conv1"]["kernel"], checkpoint["params"]["conv1"]["kernel"]
  )
  np.testing.assert_array_equal(
    merged["batch_stats"]["backbone"]["layer4_0"]["bn2"]["var"], checkpoint["batch_stats"]["layer4_0"]["bn2"]["var"]
  )
  assert (merged["params"]["head"]["kernel"] == 7.0).all()
  # The merged backbone computes what torchvision computed.
  features = ResNet(**BACKBONE).apply(
    {collection: merged[collection]["backbone"] for collection in merged}, arrays["input"].astype(np.float32)
  )
  np.testing.assert_allclose(features["layer4"], arrays["eval/layer4"], rtol=1e-4, atol=1e-4)


def test_extra_entry_fails_naming_its_path():
  checkpoint, _ = fixture_tree()
  with pytest.raises(ValueError, match=r"not in the model: params/backbone/fc/kernel \(checkpoint shape \(16, 5\)\)"):
    pretrained.merge_pretrained(concrete(fresh_variables()), checkpoint)


def test_missing_entry_fails_naming_its_path():
  checkpoint, _ = fixture_tree()
  del checkpoint["params"]["fc"]
  del checkpoint["batch_stats"]["layer2_0"]["downsample_1"]["var"]
  with pytest.raises(
    ValueError,
    match=r"missing in checkpoint: batch_stats/backbone/layer2_0/downsample_1/var "
    r"\(model shape \(4,\)\)",
  ):
    pretrained.merge_pretrained(concrete(fresh_variables()), checkpoint)


def test_misshaped_entry_fails_naming_its_path_and_both_shapes():
  checkpoint, _ = fixture_tree()
  del checkpoint["params"]["fc"]
  checkpoint["params"]["layer3_0"]["conv1"]["kernel"] = np.zeros((3, 3, 4, 9), np.float32)
  with pytest.raises(
    ValueError,
    match=r"shape mismatch at params/backbone/layer3_0/conv1/kernel: "
    r"model \(3, 3, 4, 8\), checkpoint \(3, 3, 4, 9\)",
  ):
    pretrained.merge_pretrained(concrete(fresh_variables()), checkpoint)


def test_dont_load_covers_missing_extra_and_misshaped_entries():
  checkpoint, _ = fixture_tree()
  del checkpoint["batch_stats"]["bn1"]["mean"]
  checkpoint["params"]["layer3_0"]["conv1"]["kernel"] = np.zeros((3, 3, 4, 9), np.float32)
  variables = concrete(fresh_variables())
  merged = pretrained.merge_pretrained(
    variables,
    checkpoint,
    dont_load=[r"params/backbone/fc/.*", r"batch_stats/backbone/bn1/mean", r".*/layer3_0/conv1/kernel"],
  )
  assert (merged["batch_stats"]["backbone"]["bn1"]["mean"] == 7.0).all()
  assert (merged["params"]["backbone"]["layer3_0"]["conv1"]["kernel"] == 7.0).all()
  assert "fc" not in merged["params"]["backbone"]
  # Patterns match whole paths: a fragment covers nothing.
  with pytest.raises(ValueError, match="not in the model: params/backbone/fc/bias"):
    pretrained.merge_pretrained(variables, checkpoint, dont_load=["fc"])


def test_every_problem_is_listed_at_once():
  checkpoint, _ = fixture_tree()
  del checkpoint["batch_stats"]["bn1"]["mean"]
  with pytest.raises(ValueError) as error:
    pretrained.merge_pretrained(concrete(fresh_variables()), checkpoint)
  assert "params/backbone/fc/bias" in str(error.value) and "batch_stats/backbone/bn1/mean" in str(error.value)


def test_unknown_subtree_fails_naming_the_model_submodules():
  checkpoint, _ = fixture_tree()
  with pytest.raises(ValueError, match=r"no 'params/encoder'.*\['backbone', 'head'\]"):
    pretrained.merge_pretrained(concrete(fresh_variables()), checkpoint, subtree=("encoder",))


def test_load_pretrained_reads_an_orbax_checkpoint(tmp_path):
  checkpoint, _ = fixture_tree()
  checkpointer = ocp.StandardCheckpointer()
  checkpointer.save(tmp_path / "resnet", checkpoint)
  checkpointer.wait_until_finished()
  variables = jax.tree.map(lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), fresh_variables())
  merged = pretrained.load_pretrained(variables, str(tmp_path / "resnet"), dont_load=["params/backbone/fc/.*"])
  np.testing.assert_array_equal(
    merged["params"]["backbone"]["layer1_0"]["conv2"]["kernel"], checkpoint["params"]["layer1_0"]["conv2"]["kernel"]
  )
  assert isinstance(merged["params"]["head"]["kernel"], jax.Array)
  with pytest.raises(FileNotFoundError, match="convert_torchvision"):
    pretrained.load_pretrained(variables, str(tmp_path / "absent"))


def test_reading_a_pth_without_torch_says_what_to_install(monkeypatch):
  monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
  with pytest.raises(ImportError, match="needs PyTorch"):
    convert_torchvision.read_torch_checkpoint("resnet18-f37072fd.pth")


def test_flax_paths_of_torchvision_keys():
  assert convert_torchvision.flax_path("layer1.0.downsample.1.running_var") == (
    "layer1_0",
    "downsample_1",
    "running_var",
  )
  assert convert_torchvision.flax_path("features.denseblock2.denselayer3.norm.1.weight") == (
    "features",
    "denseblock2",
    "denselayer3",
    "norm1",
    "weight",
  )
  assert convert_torchvision.flax_path("classifier.6.bias") == ("classifier_6", "bias")
  fc6 = np.arange(4 * 3 * 49, dtype=np.float32).reshape(4, 3 * 49)
  kernel = convert_torchvision.vgg_fc6_as_hwio(fc6)
  # fc6 reads torch's NCHW flattening: input (c, h, w) sits at column c*49 + h*7 + w.
  assert kernel.shape == (7, 7, 3, 4) and kernel[2, 5, 1, 3] == fc6[3, 1 * 49 + 2 * 7 + 5]


@pytest.mark.torch
def test_command_line_converts_a_torchvision_checkpoint(tmp_path):
  torch = pytest.importorskip("torch", reason="writing a .pth needs PyTorch")
  torchvision = pytest.importorskip("torchvision", reason="the reference network needs torchvision")
  model = torchvision.models.resnet18().eval()
  torch.save(model.state_dict(), tmp_path / "resnet18.pth")
  result = subprocess.run(
    [
      sys.executable,
      "-m",
      "jaxgraphs.tools.convert_torchvision",
      "--arch=resnet18",
      f"--src={tmp_path / 'resnet18.pth'}",
      f"--dst={tmp_path / 'converted'}",
    ],
    capture_output=True,
    text=True,
    check=False,
    env=dict(os.environ, JAX_PLATFORMS="cpu"),
  )
  assert result.returncode == 0, result.stderr[-3000:]
  assert "11,689,512 parameters" in result.stdout
  net = ResNet(18, num_classes=1000)
  variables = pretrained.load_pretrained(
    jax.eval_shape(net.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3))), str(tmp_path / "converted"), subtree=()
  )
  x = torch.randn(1, 3, 64, 64)
  with torch.no_grad():
    expected = model(x).numpy()
  logits = jax.jit(net.apply)(variables, x.numpy().transpose(0, 2, 3, 1))["logits"]
  assert np.abs(logits - expected).max() / np.abs(expected).max() < 1e-4
