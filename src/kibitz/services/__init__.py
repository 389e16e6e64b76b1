"""The services of kibitz: each a set of handlers for the topics it consumes, plus loops."""
