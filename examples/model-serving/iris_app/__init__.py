"""Streamlets of the model-serving example."""
