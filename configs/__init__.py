"""The paper and built-in-data configs; installed as `jaxgraphs.shipped_configs`, so `--config=NAME` finds them."""
