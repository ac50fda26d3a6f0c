"""Generation: requests that start work on a provider, the engine that follows it, the models."""
