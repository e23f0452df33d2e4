"""models of jaxgraphs."""
