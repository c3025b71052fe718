"""labdeck: a data-science platform for a small team, in one Python package."""

__version__ = "0.1.0"
