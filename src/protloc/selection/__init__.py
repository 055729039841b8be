"""protloc.selection."""
