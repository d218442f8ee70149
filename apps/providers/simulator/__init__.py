"""A local stand-in for the data vendors: same paths and shapes, synthetic people."""
