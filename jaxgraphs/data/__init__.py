"""data of jaxgraphs."""
