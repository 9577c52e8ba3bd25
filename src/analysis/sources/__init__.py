"""Readers, recodes and linkage of the user's source files (floor 3; imports nothing of the simulator)."""
