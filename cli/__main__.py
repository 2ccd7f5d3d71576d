"""`python -m cli`: the same as the `kino` command."""

from cli.app import main

main()
