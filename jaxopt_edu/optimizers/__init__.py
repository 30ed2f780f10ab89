"""Optimizers: thin chains of transformations. Public names are exported from `jaxopt_edu`."""
