"""The agent kinds, one module per kind."""
