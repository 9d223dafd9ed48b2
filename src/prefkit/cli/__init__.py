"""The `prefkit` command: each module is one command group; they only parse and render."""
