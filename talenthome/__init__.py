"""Composition root for the command line: `talenthome` (cli.py) and the local servers it starts."""
