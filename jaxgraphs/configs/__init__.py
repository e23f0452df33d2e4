"""What the config files in `configs/` share: the config-argument parser, a config loader, and each paper's
model keys and variant arguments (the hyper-parameters of each run are in the config file itself).

This is the top of the import graph: it may import models, data and training; nothing in the library
imports it.
"""
