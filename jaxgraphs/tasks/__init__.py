"""tasks of jaxgraphs."""
