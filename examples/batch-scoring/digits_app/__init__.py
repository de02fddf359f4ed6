"""Streamlets of the batch-scoring example."""
