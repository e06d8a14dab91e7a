"""Click command groups of the `carbonchain` CLI, one module per area; cli.py assembles them."""
