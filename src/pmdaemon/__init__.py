"""pmdaemon: a process manager that keeps apps in any language running."""

__version__ = "0.1.0"
