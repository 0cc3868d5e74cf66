"""report.html explains the price band: what it is (level, method, calibration rows), why a low
end shows $0, its width per rooms decile and, with true prices, its coverage per decile."""

from __future__ import annotations

import html as htmllib
import re

from tests.scoring_helpers import run_dir, score
from tests.test_analysts import report_of, suburbs, write


def test_the_band_is_explained_in_words_and_per_decile(models, tmp_path):
    frame = suburbs(300, seed=7)
    frame.loc[:20, "rm"] = 4.0  # cheap suburbs: predictions near $0, low ends lifted to it
    res = score(models, tmp_path / "out", write(tmp_path, "f.csv", frame))
    folder = run_dir(res)
    interval = report_of(res)["interval"]
    deciles = interval["deciles"]
    assert len(deciles) == 10 and sum(d["rows"] for d in deciles) == 300
    assert all(d["rows_with_price"] == 30 and 0 <= d["coverage"] <= 1 for d in deciles)
    assert [d["rooms_min"] for d in deciles] == sorted(d["rooms_min"] for d in deciles)
    assert interval["lower_bound"] == 0 and interval["lifted_rows"] >= 21
    page = htmllib.unescape(re.sub(r"<[^>]+>", " ", (folder / "report.html").read_text()))
    page = " ".join(page.split())
    assert f"about {interval['level']:.0%} of true prices" in page
    assert f"method {interval['method']}" in page
    assert f"on {interval['calibration_rows']:,} held-out training rows" in page
    assert "shown as $0K" in page and f"{interval['lifted_rows']} of the 300 sampled rows" in page
    assert "per rooms decile" in page and "coverage" in page
    first = deciles[0]
    assert f"{first['coverage']:.0%}" in page

    # Without true prices: widths per decile, no coverage.
    plain = score(models, tmp_path / "out2", write(tmp_path, "g.csv", frame.drop(columns="medv")))
    rows = report_of(plain)["interval"]["deciles"]
    assert all(d["coverage"] is None and d["rows_with_price"] == 0 for d in rows)
    assert all(d["mean_width"] > 0 for d in rows)
