"""Random, friendly run names ("clever-owl-417"), as MLflow gives runs without one."""

import random

_ADJECTIVES = (
    "able", "bold", "brave", "bright", "calm", "clever", "crisp", "eager", "fair", "fast",
    "gentle", "glad", "grand", "honest", "keen", "kind", "lively", "lucky", "merry", "mild",
    "neat", "nimble", "polite", "proud", "quick", "quiet", "rare", "sharp", "shy", "smart",
    "steady", "sunny", "swift", "tidy", "vast", "warm", "wise", "witty", "young", "zesty",
)
_ANIMALS = (
    "ant", "bat", "bear", "bee", "carp", "cat", "crab", "crow", "deer", "dove", "duck",
    "eel", "elk", "fox", "frog", "goat", "hare", "hawk", "heron", "horse", "lark", "lion",
    "lynx", "mole", "moth", "newt", "owl", "panda", "pig", "quail", "ram", "robin", "seal",
    "shark", "snail", "swan", "tern", "toad", "trout", "wasp", "whale", "wolf", "wren", "yak",
)


def random_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randint(0, 999)}"
