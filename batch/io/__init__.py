"""Reading inputs and writing a run's outputs."""
