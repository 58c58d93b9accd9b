"""The command line: argument parsing, one function per command, and rendering."""


class UsageError(Exception):
    """A command line that cannot be carried out as written: exit code 2."""
