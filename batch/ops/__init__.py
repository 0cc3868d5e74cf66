"""What operators and analysts read: reports, pages, metrics, lineage, run history."""
