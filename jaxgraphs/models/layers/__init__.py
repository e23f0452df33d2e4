"""layers of jaxgraphs."""
