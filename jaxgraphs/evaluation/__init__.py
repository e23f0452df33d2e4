"""evaluation of jaxgraphs."""
