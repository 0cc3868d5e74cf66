"""Pure rules, statistics, column types and errors: no files, settings or clocks."""
