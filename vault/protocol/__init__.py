"""Pure format code shared by server and client. Imports nothing else from the project."""
