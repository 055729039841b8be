"""protloc.multilabel."""
