"""What a labdeck workspace adds to its environment; it imports nothing of labdeck's."""
