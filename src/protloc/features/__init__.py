"""protloc.features."""
