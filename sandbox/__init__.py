"""A synthetic country: population with ground truth, four agency systems, demo scenario."""

__all__: list[str] = []
