"""Orbax checkpoints of the train state: atomic saves, restoring onto shardings, unfinished saves ignored."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgraphs.training import sharding
from jaxgraphs.training.checkpointing import Checkpoints
from jaxgraphs.training.train_state import TrainState


def _state(step, scale):
  params = {"dense": {"kernel": jnp.full((3, 2), scale), "bias": jnp.zeros((2,))}}
  tx = optax.adam(1e-3)
  return TrainState(
    step=jnp.asarray(step, jnp.int32),
    params=params,
    model_state={"batch_stats": {"bn": {"mean": jnp.full((2,), scale)}}},
    opt_state=tx.init(params),
    rng=jax.random.key_data(jax.random.key(step)),
  )


def _abstract(state, mesh):
  shardings = sharding.state_shardings(state, mesh, rules=((r"params/dense/kernel", ()),))
  return jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)


def test_round_trip_with_metadata(tmp_path):
  mesh = sharding.make_mesh()
  ckpt = Checkpoints(str(tmp_path), max_to_keep=2)
  ckpt.save(_state(3, 1.5), {"examples_consumed": 24})
  ckpt.wait()
  restored, meta = ckpt.restore(_abstract(_state(0, 0.0), mesh))
  ckpt.close()
  assert int(restored.step) == 3 and meta["examples_consumed"] == 24
  np.testing.assert_array_equal(restored.params["dense"]["kernel"], np.full((3, 2), 1.5))
  np.testing.assert_array_equal(restored.model_state["batch_stats"]["bn"]["mean"], [1.5, 1.5])
  np.testing.assert_array_equal(restored.rng, jax.random.key_data(jax.random.key(3)))
  assert restored.params["dense"]["kernel"].sharding.is_equivalent_to(sharding.replicated(mesh), 2)


def test_keeps_the_last_n(tmp_path):
  ckpt = Checkpoints(str(tmp_path), max_to_keep=2)
  for step in (1, 2, 3):
    ckpt.save(_state(step, float(step)), {})
  ckpt.close()
  assert Checkpoints(str(tmp_path), max_to_keep=2).all_steps() == [2, 3]


def test_an_unfinished_save_is_ignored_and_the_previous_step_restores(tmp_path):
  ckpt = Checkpoints(str(tmp_path), max_to_keep=3)
  ckpt.save(_state(2, 2.0), {"examples_consumed": 16})
  ckpt.close()
  # What a kill in the middle of writing step 4 leaves behind: Orbax's temporary directory, half filled.
  partial = tmp_path / "checkpoints" / "4.orbax-checkpoint-tmp-1234" / "state"
  partial.mkdir(parents=True)
  (partial / "half_written").write_bytes(b"\0" * 10)
  again = Checkpoints(str(tmp_path), max_to_keep=3)
  assert again.latest_step() == 2
  restored, meta = again.restore(_abstract(_state(0, 0.0), sharding.make_mesh()))
  assert int(restored.step) == 2 and meta["examples_consumed"] == 16
  again.close()
  assert not os.path.exists(partial)  # cleaned up when the manager started


def test_state_shardings_follow_the_first_matching_rule():
  mesh = sharding.make_mesh()
  state = {"params": {"head": {"kernel": jnp.zeros((4, 2))}, "backbone": {"kernel": jnp.zeros((4, 4))}}}
  shardings = sharding.state_shardings(state, mesh, rules=((r"^params/head/", ("data", None)),))
  assert shardings["params"]["head"]["kernel"].spec == jax.sharding.PartitionSpec("data", None)
  assert shardings["params"]["backbone"]["kernel"].spec == jax.sharding.PartitionSpec()
