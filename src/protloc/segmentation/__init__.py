"""protloc.segmentation."""
