"""`python -m tinydistill` = the `tinydistill` console script."""

from tinydistill.cli import main

if __name__ == "__main__":
    main()
