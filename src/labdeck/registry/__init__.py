"""The model registry: registered models, versions, aliases, stages and their history."""
