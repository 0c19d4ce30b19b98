"""Dataset adapters and the built-in demo corpus."""
