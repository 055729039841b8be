"""protloc.nets."""
