"""`casevault`, the command-line face of the client: client.cli.commands parses and presents,
client.cli.output writes, client.cli.exits maps error classes to exit codes."""

from client.cli.commands import main
from client.cli.exits import EXIT_ERROR, EXIT_INTEGRITY, EXIT_KEY_CHANGED, EXIT_OK, EXIT_USAGE

__all__ = ["EXIT_ERROR", "EXIT_INTEGRITY", "EXIT_KEY_CHANGED", "EXIT_OK", "EXIT_USAGE", "main"]
