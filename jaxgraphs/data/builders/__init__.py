"""builders of jaxgraphs."""
