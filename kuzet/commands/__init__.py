"""Sub-commands of the `kuzet` command line, one typer app per module."""
