"""The checks of wiring.py, one module each; what they share is in common.py."""
