"""SSGRLHead against a PyTorch transcription of the official SSGRL modules (semantic, GGNN, output, classifiers)."""

import jax
import numpy as np
import pytest

from jaxgraphs.models.heads.ssgrl_head import SSGRLHead
from ssgrl_numpy import randomize

torch = pytest.importorskip("torch", reason="PyTorch only builds the reference of this optional test")
nn = torch.nn
pytestmark = pytest.mark.torch

B, S, N, C, DS, D1 = 2, 3, 16, 5, 7, 8  # The official code assumes square maps (convsize x convsize) and d2 = d1.


class Semantic(nn.Module):
  """The official `semantic` module, transcribed (feature map NCHW)."""

  def __init__(self, num_classes, image_feature_dim, word_feature_dim, intermediary_dim):
    super().__init__()
    self.num_classes, self.image_feature_dim, self.d = num_classes, image_feature_dim, intermediary_dim
    self.fc_1 = nn.Linear(image_feature_dim, self.d, bias=False)
    self.fc_2 = nn.Linear(word_feature_dim, self.d, bias=False)
    self.fc_3 = nn.Linear(self.d, self.d)
    self.fc_a = nn.Linear(self.d, 1)

  def forward(self, batch_size, img_feature_map, word_features):
    convsize = img_feature_map.size()[3]
    img_feature_map = torch.transpose(torch.transpose(img_feature_map, 1, 2), 2, 3)
    f_wh_feature = img_feature_map.contiguous().view(batch_size * convsize * convsize, -1)
    f_wh_feature = self.fc_1(f_wh_feature).view(batch_size * convsize * convsize, 1, -1).repeat(1, self.num_classes, 1)
    f_wd_feature = (
      self.fc_2(word_features).view(1, self.num_classes, self.d).repeat(batch_size * convsize * convsize, 1, 1)
    )
    lb_feature = self.fc_3(torch.tanh(f_wh_feature * f_wd_feature).view(-1, self.d))
    coefficient = self.fc_a(lb_feature)
    coefficient = torch.transpose(
      torch.transpose(coefficient.view(batch_size, convsize, convsize, self.num_classes), 2, 3), 1, 2
    ).view(batch_size, self.num_classes, -1)
    coefficient = torch.softmax(coefficient, dim=2)
    coefficient = coefficient.view(batch_size, self.num_classes, convsize, convsize)
    coefficient = torch.transpose(torch.transpose(coefficient, 1, 2), 2, 3)
    coefficient = coefficient.view(batch_size, convsize, convsize, self.num_classes, 1).repeat(
      1, 1, 1, 1, self.image_feature_dim
    )
    img_feature_map = (
      img_feature_map.view(batch_size, convsize, convsize, 1, self.image_feature_dim).repeat(
        1, 1, 1, self.num_classes, 1
      )
      * coefficient
    )
    return torch.sum(torch.sum(img_feature_map, 1), 1)


class GGNN(nn.Module):
  """The official `GGNN` module, transcribed; `bug=True` keeps its reset gate's fc_eq3_u."""

  def __init__(self, input_dim, time_step, in_matrix, out_matrix, bug):
    super().__init__()
    self.input_dim, self.time_step, self.bug = input_dim, time_step, bug
    self._in_matrix, self._out_matrix = in_matrix, out_matrix
    self.fc_eq3_w = nn.Linear(2 * input_dim, input_dim)
    self.fc_eq3_u = nn.Linear(input_dim, input_dim)
    self.fc_eq4_w = nn.Linear(2 * input_dim, input_dim)
    self.fc_eq4_u = nn.Linear(input_dim, input_dim)
    self.fc_eq5_w = nn.Linear(2 * input_dim, input_dim)
    self.fc_eq5_u = nn.Linear(input_dim, input_dim)

  def forward(self, input):
    batch_size = input.size()[0]
    node_num = self._in_matrix.size()[0]
    batch_aog_nodes = input.view(batch_size, node_num, self.input_dim)
    batch_in_matrix = self._in_matrix.repeat(batch_size, 1).view(batch_size, node_num, -1)
    batch_out_matrix = self._out_matrix.repeat(batch_size, 1).view(batch_size, node_num, -1)
    for _ in range(self.time_step):
      av = torch.cat(
        (torch.bmm(batch_in_matrix, batch_aog_nodes), torch.bmm(batch_out_matrix, batch_aog_nodes)), 2
      ).view(batch_size * node_num, -1)
      flatten_aog_nodes = batch_aog_nodes.view(batch_size * node_num, -1)
      zv = torch.sigmoid(self.fc_eq3_w(av) + self.fc_eq3_u(flatten_aog_nodes))
      reset_u = self.fc_eq3_u if self.bug else self.fc_eq4_u
      rv = torch.sigmoid(self.fc_eq4_w(av) + reset_u(flatten_aog_nodes))
      hv = torch.tanh(self.fc_eq5_w(av) + self.fc_eq5_u(rv * flatten_aog_nodes))
      flatten_aog_nodes = (1 - zv) * flatten_aog_nodes + zv * hv
      batch_aog_nodes = flatten_aog_nodes.view(batch_size, node_num, -1)
    return batch_aog_nodes


def set_linear(layer, params):
  layer.weight.data = torch.tensor(np.asarray(params["kernel"]).T.copy())
  if "bias" in params:
    layer.bias.data = torch.tensor(np.asarray(params["bias"]).copy())


@pytest.mark.parametrize("bug", [False, True])
def test_matches_official_pytorch_modules(bug):
  rng = np.random.default_rng(0)
  feature_map = rng.standard_normal((B, S, S, N)).astype(np.float32)
  word_vectors = rng.standard_normal((C, DS)).astype(np.float32)
  adjacency = rng.uniform(size=(C, C)).astype(np.float32)
  np.fill_diagonal(adjacency, 1.0)
  module = SSGRLHead(joint_dim=D1, attention_hidden_dim=D1, time_steps=3, shared_reset_gate_bug=bug)
  params = randomize(
    module.init(jax.random.PRNGKey(0), feature_map, word_vectors, adjacency)["params"], seed=2, scale=0.3
  )
  outputs = module.apply({"params": params}, feature_map, word_vectors, adjacency)

  semantic = Semantic(C, N, DS, D1)
  sd = params["semantic_decoupling"]
  for name, key in (("fc_1", "image_proj"), ("fc_2", "word_proj"), ("fc_3", "joint_proj"), ("fc_a", "attention")):
    set_linear(getattr(semantic, name), sd[key])
  ggnn = GGNN(N, 3, torch.tensor(adjacency), torch.tensor(adjacency.T.copy()), bug)
  gp = params["graph_propagation"]
  for name, key in (
    ("fc_eq3_w", "update_gate_w"),
    ("fc_eq3_u", "update_gate_u"),
    ("fc_eq4_w", "reset_gate_w"),
    ("fc_eq5_w", "candidate_w"),
    ("fc_eq5_u", "candidate_u"),
  ):
    set_linear(getattr(ggnn, name), gp[key])
  if not bug:
    set_linear(ggnn.fc_eq4_u, gp["reset_gate_u"])
  output = nn.Linear(2 * N, N)
  set_linear(output, params["output"])
  classifier_weight = torch.tensor(np.asarray(params["classifier"]["kernel"]))
  classifier_bias = torch.tensor(np.asarray(params["classifier"]["bias"]))

  with torch.no_grad():  # The official SSGRL.forward after the backbone.
    graph_net_input = semantic(B, torch.tensor(feature_map.transpose(0, 3, 1, 2).copy()), torch.tensor(word_vectors))
    graph_net_feature = ggnn(graph_net_input)
    out = torch.cat((graph_net_feature.view(B * C, -1), graph_net_input.view(-1, N)), 1)
    out = torch.tanh(output(out)).view(B, C, N)
    logits = torch.sum(out * classifier_weight, 2) + classifier_bias

  np.testing.assert_allclose(outputs["class_features"], graph_net_input.numpy(), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(outputs["logits"], logits.numpy(), rtol=1e-4, atol=1e-4)
