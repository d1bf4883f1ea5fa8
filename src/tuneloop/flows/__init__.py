"""Flows that join the two sides: the only modules that call both the training and eval sides."""
