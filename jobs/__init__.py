"""Command-line entry points: parse flags, build settings, set up logging, call the library."""
