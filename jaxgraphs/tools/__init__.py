"""tools of jaxgraphs."""
