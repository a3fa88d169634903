"""Subcommands of `talenthome`, one module per area; each has register(subparsers)."""
