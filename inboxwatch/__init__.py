"""inboxwatch: find every conversation left without a reply past your window."""

__version__ = "0.1.0"
