"""backbones of jaxgraphs."""
