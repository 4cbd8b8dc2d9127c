"""A package whose compiled part lives next to it only once built: importing it from the
source tree fails with ModuleNotFoundError for `ftfixture_toplevel._ext`."""

from ftfixture_toplevel._ext import hit, hits

__all__ = ["hit", "hits"]
