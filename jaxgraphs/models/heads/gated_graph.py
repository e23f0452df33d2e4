"""Gated graph propagation (GGNN, Li et al. 2016) over a fixed class graph, as in SSGRL (eqs. 7-9) and its code.

Per step t, node c with state h_c (official code's `GGNN` module):
  a_c = [sum_c' A[c, c'] h_c', sum_c' A[c', c] h_c']        (the paper's eq. 8 writes h_c; the code uses h_c')
  z_c = sigmoid(W_z a_c + U_z h_c)
  r_c = sigmoid(W_r a_c + U_r h_c)
  h~_c = tanh(W a_c + U (r_c * h_c))
  h_c <- (1 - z_c) h_c + z_c h~_c
Every W (2D -> D) and U (D -> D) is a linear layer with its own bias, so each sum carries two biases, as in the code.
Parameter names map to the official ones: update_gate_{w,u} = fc_eq3_{w,u}, reset_gate_{w,u} = fc_eq4_{w,u},
candidate_{w,u} = fc_eq5_{w,u}.

`shared_reset_gate_bug=True` reproduces a version of the released code whose reset gate computes W_r a_c + U_z h_c
(fc_eq3_u); its U_r is then never used, so it is not created here. Another version of that file and the authors'
later code use a separate U_r (the default) (docs/paper_details.md, SSGRL network).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxgraphs.models.layers.init import TorchLinear


class GatedGraphPropagation(nn.Module):
  """T steps of GRU-style message passing over a constant (C, C) adjacency; node width stays D."""

  time_steps: int = 3
  shared_reset_gate_bug: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, nodes, adjacency, train: bool = False):
    """(B, C, D) initial states h^0 and (C, C) adjacency -> final states h^T (B, C, D)."""
    if nodes.ndim != 3:
      raise ValueError(f"GatedGraphPropagation: nodes must be (B, C, D), got shape {nodes.shape}")
    _, num_nodes, width = nodes.shape
    if adjacency.shape != (num_nodes, num_nodes):
      raise ValueError(
        f"GatedGraphPropagation: adjacency must be ({num_nodes}, {num_nodes}) for {num_nodes} nodes, "
        f"got shape {adjacency.shape}"
      )
    linear = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    update_gate_w = TorchLinear(2 * width, width, name="update_gate_w", **linear)
    update_gate_u = TorchLinear(width, width, name="update_gate_u", **linear)
    reset_gate_w = TorchLinear(2 * width, width, name="reset_gate_w", **linear)
    reset_gate_u = (
      update_gate_u if self.shared_reset_gate_bug else TorchLinear(width, width, name="reset_gate_u", **linear)
    )
    candidate_w = TorchLinear(2 * width, width, name="candidate_w", **linear)
    candidate_u = TorchLinear(width, width, name="candidate_u", **linear)

    # The graph is a statistic of the training labels, never trained.
    adjacency = jax.lax.stop_gradient(adjacency).astype(self.dtype)
    state = nodes.astype(self.dtype)
    for _ in range(self.time_steps):
      incoming = jnp.einsum("cd,bdn->bcn", adjacency, state)  # sum_c' A[c, c'] h_c'
      outgoing = jnp.einsum("dc,bdn->bcn", adjacency, state)  # sum_c' A[c', c] h_c'
      message = jnp.concatenate([incoming, outgoing], axis=-1)
      update = jax.nn.sigmoid(update_gate_w(message) + update_gate_u(state))
      reset = jax.nn.sigmoid(reset_gate_w(message) + reset_gate_u(state))
      candidate = jnp.tanh(candidate_w(message) + candidate_u(reset * state))
      state = (1 - update) * state + update * candidate
    return state
