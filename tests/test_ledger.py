"""The ledger outlives prune: --new-only after `jobs.runs prune` re-scores nothing old, and a
damaged ledger line is skipped with a warning (through the real CLI)."""

from __future__ import annotations

import json

from batch.ops.ledger import LEDGER
from tests.helpers import run_cli
from tests.scoring_helpers import score
from tests.test_analysts import suburbs, write


def test_prune_then_new_only_scores_nothing_old(models, tmp_path):
    out = tmp_path / "out"
    old = write(tmp_path, "old.csv", suburbs(40, seed=1))
    first = score(models, out, old.parent, extra=["--new-only"], subprocess=True)
    assert first.code == 0, first.stderr[-2000:]
    new = write(tmp_path, "new.csv", suburbs(40, seed=2))
    second = score(models, out, old.parent, extra=["--new-only"], subprocess=True)
    assert second.code == 0, second.stderr[-2000:]
    assert second.json["rows_scored"] == 40  # only new.csv

    pruned = run_cli("jobs.runs", "prune", "--keep", "1", "--output-dir", out)
    assert pruned.code == 0, pruned.stderr
    assert not (out / "runs" / first.json["run_id"]).exists()  # old.csv's run is gone
    ledger = [json.loads(t) for t in (out / LEDGER).read_text().splitlines()]
    assert [(line["path"].rsplit("/", 1)[-1], line["run_id"]) for line in ledger] == [
        ("old.csv", first.json["run_id"]),
        ("new.csv", second.json["run_id"]),
    ]

    # A damaged line (a torn write) is skipped with a warning; the rest still counts.
    with (out / LEDGER).open("a") as fh:
        fh.write('{"schema_version": 1, "path": "x", "sha2\n')
    again = score(models, out, new.parent, extra=["--new-only"], subprocess=True)
    assert again.code == 0, again.stderr[-2000:]
    assert again.json["status"] == "nothing_new" and again.json["rows_scored"] == 0
    assert again.json["skipped_inputs"] == 2
    assert "ledger.jsonl" in again.stderr and "line 3" in again.stderr
