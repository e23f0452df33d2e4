"""training of jaxgraphs."""
