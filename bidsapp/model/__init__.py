"""The content classifier: network definition, shipped weights and inference."""
