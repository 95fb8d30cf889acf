"""Context service: conversation memory and context strategies."""
