"""Honest outputs: read what a language model represents as true, and catch outputs that disagree."""
