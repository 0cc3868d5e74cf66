"""True prices joined to past runs (`python -m jobs.labels`), and the label-free estimate.

`estimate` builds report.json's label-free error estimate; `sources` reads label files and a
run's predictions; `join` matches them and computes the realized errors; `results` writes and
reads labels/<run_id>.json and labels/history.jsonl (and is what the run pages call to show
realized numbers); `job` is the command's steps.
"""
