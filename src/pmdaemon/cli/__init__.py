"""The command line: argument parsing, one function per command, and rendering."""
