"""`python -m prefkit` runs the command-line interface."""

from prefkit.cli.main import main

if __name__ == "__main__":
    main()
