"""heads of jaxgraphs."""
