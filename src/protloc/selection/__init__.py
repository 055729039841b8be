"""Feature-block selection: the genetic block selector of Taormina et al. 2025."""

from protloc.selection._genetic import GenerationState, GeneticBlockSelector

__all__ = ["GenerationState", "GeneticBlockSelector"]
