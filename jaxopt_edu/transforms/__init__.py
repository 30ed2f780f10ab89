"""Transformations: one file per concept. Public names are exported from `jaxopt_edu`."""
