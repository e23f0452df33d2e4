"""jaxgraphs: graph reasoning in vision (RGNet, SSGRL, LinkNet) in JAX/Flax."""
