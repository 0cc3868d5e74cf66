"""The results: per-size summary (naive extrapolated), the targets, consistency checks, the Markdown."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from benchmarks.common import CASES, human

TARGET_ROWS, TARGET_BIG_ROWS = 10_000_000, 40_000_000
TARGET_FLOOR_RATIO = 1.0  # (a) <= 1.0 x (c) at 10M Parquet (the pipelined scorer)
TARGET_CSV_FLOOR_RATIO = 1.3  # (a) <= 1.3 x (c) at 10M CSV
TARGET_NAIVE_RATIO = 20.0  # (b) >= 20 x (a)
TARGET_RSS_MB = 1500.0  # (a) peak RSS < 1.5 GB (10^6-byte MB, the stricter reading)
TARGET_RSS_GROWTH = 0.10  # (a) peak RSS grows < 10 % from 10M to 40M rows
TARGET_SMALL_WALL_S = 1.5  # (s) sample_inputs/, start to exit
TARGET_SMALL_RSS_MB = 350.0  # (s) peak RSS of the local run
TARGET_SMALL_DASK_RSS = 0.5  # (s) Dask process tree: the fold's RSS at most half the Keras path's


def small_summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The small run (s): median wall time and largest RSS per variant, and its targets."""
    variants: dict[str, list[dict]] = {}
    for r in results:
        if r["case"] == "s":
            variants.setdefault(r["format"], []).append(r)
    cells = {}
    for name, recs in variants.items():
        ok = [r for r in recs if r["ok"]]
        cells[name] = (
            {
                "ok": True,
                "wall_s": statistics.median(r["wall_s"] for r in ok),
                "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
                "runs": len(ok),
                "rows": ok[0]["rows"],
                "prediction_path": ok[0].get("prediction_path", ""),
            }
            if ok
            else {"ok": False, "error": recs[-1].get("error")}
        )
    out = []
    fold, keras = cells.get("local/fold"), cells.get("local/keras")
    if _ok(fold):
        out.append(
            {
                "target": "(s) sample_inputs/ wall <= 1.5 s",
                "value": f"{fold['wall_s']:.2f} s",
                "verdict": "PASS" if fold["wall_s"] <= TARGET_SMALL_WALL_S else "FAIL",
                "note": f"Keras path {keras['wall_s']:.2f} s" if _ok(keras) else "",
            }
        )
        out.append(
            {
                "target": "(s) sample_inputs/ peak RSS <= 350 MB",
                "value": f"{fold['peak_rss_mb']:,.0f} MB",
                "verdict": "PASS" if fold["peak_rss_mb"] <= TARGET_SMALL_RSS_MB else "FAIL",
                "note": (f"Keras path {keras['peak_rss_mb']:,.0f} MB" if _ok(keras) else ""),
            }
        )
    dfold, dkeras = cells.get("dask/fold"), cells.get("dask/keras")
    if _ok(dfold) and _ok(dkeras):
        ratio = dfold["peak_rss_mb"] / dkeras["peak_rss_mb"]
        out.append(
            {
                "target": "(s) Dask (2 workers) process-tree RSS at least halves",
                "value": f"{ratio:.2f}x",
                "verdict": "PASS" if ratio <= TARGET_SMALL_DASK_RSS else "FAIL",
                "note": f"{dkeras['peak_rss_mb']:,.0f} -> {dfold['peak_rss_mb']:,.0f} MB "
                "(Keras path -> verified fold)",
            }
        )
    return {"variants": cells, "targets": out}


def summarise(results: list[dict[str, Any]], sizes: dict[str, list[int]]) -> dict[str, Any]:
    """Median wall time and max RSS per (case, format, rows); naive extrapolated to every size.

    `sizes` maps each input format, in the order asked for, to its sizes (ascending).
    """
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["case"], r["format"], r["rows"]), []).append(r)
    cells: dict[tuple, dict[str, Any]] = {}
    for key, recs in groups.items():
        ok = [r for r in recs if r["ok"]]
        if not ok:
            cells[key] = {"ok": False, "error": recs[-1].get("error")}
            continue
        cells[key] = {
            "ok": True,
            "wall_s": statistics.median(r["wall_s"] for r in ok),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in ok),
            "runs": len(ok),
            "rows": key[2],
            "measured_rows": key[2],
            "extrapolated": False,
        }
    rows_out = []
    for fmt, fmt_sizes in sizes.items():
        naive = [(k, v) for k, v in cells.items() if k[0] == "b" and k[1] == fmt and v["ok"]]
        for n in fmt_sizes:
            line: dict[str, Any] = {"format": fmt, "rows": n}
            for case in "acde":
                line[case] = cells.get((case, fmt, n))
            if naive:
                (_, _, m), v = naive[0]
                if m == n:
                    line["b"] = v
                else:
                    line["b"] = extrapolate(
                        v,
                        m,
                        n,
                        [r for r in results if r["case"] == "b" and r["format"] == fmt and r["ok"]],
                    )
            a, b, c, d = (line.get(x) for x in "abcd")
            line["a_over_c"] = a["wall_s"] / c["wall_s"] if _ok(a) and _ok(c) else None
            line["b_over_a"] = b["wall_s"] / a["wall_s"] if _ok(a) and _ok(b) else None
            line["d_over_a"] = d["wall_s"] / a["wall_s"] if _ok(a) and _ok(d) else None
            e = line.get("e")
            line["e_over_a"] = e["wall_s"] / a["wall_s"] if _ok(a) and _ok(e) else None
            line["b_over_c"] = b["wall_s"] / c["wall_s"] if _ok(b) and _ok(c) else None
            rows_out.append(line)
    return {"rows": rows_out, "targets": targets(rows_out)}


def _ok(cell: dict | None) -> bool:
    """Whether a summary cell holds a successful measurement."""
    return bool(cell and cell.get("ok"))


def extrapolate(cell: dict, measured: int, n: int, recs: list[dict]) -> dict[str, Any]:
    """Naive time at n rows: fixed start-up (imports, model load) + per-row phases x n/measured."""
    per_row = statistics.median(
        sum(r["phases"].get(k, 0.0) for k in ("read_s", "predict_s", "write_s")) for r in recs
    )
    fixed = max(cell["wall_s"] - per_row, 0.0)
    return {
        "ok": True,
        "wall_s": fixed + per_row * n / measured,
        "peak_rss_mb": None,
        "measured_rss_mb": cell["peak_rss_mb"],
        "rows": n,
        "measured_rows": measured,
        "extrapolated": True,
        "fixed_s": fixed,
        "per_row_s": per_row,
    }


def targets(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The issue's targets, checked where the sizes they name were run (else indicative only)."""
    pq = {line["rows"]: line for line in lines if line["format"] == "parquet"}
    if not pq:
        return []
    at = TARGET_ROWS if TARGET_ROWS in pq else max(pq)
    note = "" if at == TARGET_ROWS else f" (indicative: measured at {human(at)}, target is at 10M)"
    line = pq[at]
    out = []

    def add(name: str, value: str, ok: bool | None, extra: str = "") -> None:
        verdict = "n/a" if ok is None else ("PASS" if ok else "FAIL")
        if ok is not None and "indicative" in extra:
            verdict = f"({verdict})"
        out.append({"target": name, "value": value, "verdict": verdict, "note": extra})

    r = line["a_over_c"]
    add(
        f"(a) <= {TARGET_FLOOR_RATIO:.1f} x (c) at 10M Parquet",
        f"{r:.2f}x" if r else "n/a",
        None if r is None else r <= TARGET_FLOOR_RATIO,
        note,
    )
    csv = {row["rows"]: row for row in lines if row["format"] == "csv"}
    if csv:
        at_csv = TARGET_ROWS if TARGET_ROWS in csv else max(csv)
        r = csv[at_csv]["a_over_c"]
        add(
            f"(a) <= {TARGET_CSV_FLOOR_RATIO:.1f} x (c) at 10M CSV",
            f"{r:.2f}x" if r else "n/a",
            None if r is None else r <= TARGET_CSV_FLOOR_RATIO,
            ""
            if at_csv == TARGET_ROWS
            else f" (indicative: measured at {human(at_csv)}, target is at 10M)",
        )
    r = line["b_over_a"]
    b = line.get("b") or {}
    how = (
        f"(b) extrapolated from {human(b['measured_rows'])} rows"
        if b.get("extrapolated")
        else "(b) measured"
        if b
        else "(b) not run"
    )
    if r is not None and line["b_over_c"] is not None and line["b_over_c"] < TARGET_NAIVE_RATIO:
        how += (
            f"; note (b)/(c) = {line['b_over_c']:.1f}x: even a scorer as fast as the I/O "
            "floor could not reach 20x here"
        )
    add(
        "(b) >= 20 x (a) at 10M Parquet",
        f"{r:.1f}x" if r else "n/a",
        None if r is None else r >= TARGET_NAIVE_RATIO,
        how + note,
    )
    rss = {n: line["a"]["peak_rss_mb"] for n, line in pq.items() if _ok(line["a"])}
    big = [n for n in rss if n >= TARGET_ROWS] or list(rss)
    if big:
        worst = max(rss[n] for n in big)
        add(
            "(a) peak RSS < 1.5 GB",
            f"{worst:,.0f} MB",
            worst < TARGET_RSS_MB,
            "max over " + ", ".join(human(n) for n in sorted(big)),
        )
    if TARGET_ROWS in rss and TARGET_BIG_ROWS in rss:
        lo_n, hi_n, extra = TARGET_ROWS, TARGET_BIG_ROWS, ""
    elif len(rss) >= 2:
        lo_n, hi_n = min(rss), max(rss)
        extra = f" (indicative: {human(lo_n)} -> {human(hi_n)}, target is 10M -> 40M)"
    else:
        lo_n = hi_n = None
        extra = ""
    if lo_n is not None:
        growth = rss[hi_n] / rss[lo_n] - 1
        add(
            "(a) peak RSS grows < 10% from 10M to 40M",
            f"{growth:+.1%}",
            growth < TARGET_RSS_GROWTH,
            f"{rss[lo_n]:,.0f} -> {rss[hi_n]:,.0f} MB" + extra,
        )
    else:
        add(
            "(a) peak RSS grows < 10% from 10M to 40M",
            "n/a",
            None,
            "needs two Parquet sizes (default: 10M and 40M)",
        )
    return out


def fmt_s(cell: dict | None) -> str:
    """A table cell's wall time: "failed", "—" (not run), or seconds ("~…*" when extrapolated)."""
    if not cell:
        return "—"
    if not cell.get("ok"):
        return "failed"
    text = f"{cell['wall_s']:,.1f}"
    return f"~{text}*" if cell.get("extrapolated") else text


def fmt_rss(cell: dict | None) -> str:
    """A table cell's peak RSS in MB; an extrapolated cell shows the measured size's RSS."""
    if not _ok(cell):
        return "—"
    if cell.get("extrapolated"):
        return f"({cell['measured_rss_mb']:,.0f} @ {human(cell['measured_rows'])})"
    return f"{cell['peak_rss_mb']:,.0f}"


def fmt_ratio(r: float | None, extrapolated: bool = False) -> str:
    """A ratio of two wall times ("~…x*" when one side is extrapolated)."""
    if r is None:
        return "—"
    return f"~{r:.1f}x*" if extrapolated else f"{r:.2f}x"


def markdown(report: dict[str, Any]) -> str:
    """The results file: machine, summary table, every run, targets and notes."""
    m, s = report["machine"], report["summary"]
    tf = m.get("tensorflow") or m.get("tensorflow-cpu", "?")
    out = [
        f"# Scorer benchmark — {report['started_at']}",
        "",
        f"Machine: {m.get('cpu', '?')}, {m.get('cores')} cores, {m.get('ram_gb', '?')} GB RAM; "
        f"{m['platform']}; Python {m['python']}, pyarrow {m.get('pyarrow', '?')}, "
        f"TensorFlow {tf}, Keras {m.get('keras', '?')}, pandas {m.get('pandas', '?')}, "
        f"dask {m.get('dask', 'not installed')}. Repo {m.get('git', '?')}. "
        f"Load average before/after: {report['loadavg_before']} / {report['loadavg_after']}.",
        "",
        f"Command: `{report['command']}`",
        "",
        "| input | rows | (a) scorer s | (a) rows/s | (a) peak RSS MB | (c) I/O floor s "
        "| (b) naive s | (d) dask s | (e) s3 s | (a)/(c) | (b)/(a) | (d)/(a) | (e)/(a) "
        "| (b)/(c) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for line in s["rows"]:
        a, b = line.get("a"), line.get("b")
        rate = f"{line['rows'] / a['wall_s']:,.0f}" if _ok(a) else "—"
        d, e = line.get("d"), line.get("e")
        out.append(
            f"| {line['format']} | {line['rows']:,} | {fmt_s(a)} | {rate} | {fmt_rss(a)} | "
            f"{fmt_s(line.get('c'))} | {fmt_s(b)} | {fmt_s(d) if _ok(d) else 'skipped'} | "
            f"{fmt_s(e) if e else 'skipped'} | "
            f"{fmt_ratio(line['a_over_c'])} | "
            f"{fmt_ratio(line['b_over_a'], bool(b and b.get('extrapolated')))} | "
            f"{fmt_ratio(line['d_over_a'])} | {fmt_ratio(line.get('e_over_a'))} | "
            f"{fmt_ratio(line['b_over_c'], bool(b and b.get('extrapolated')))} |"
        )
    out += [
        "",
        "Every measured run (wall time from time.monotonic() around the child process; "
        "peak RSS = max of the child's ru_maxrss from os.wait4 and the sampled RSS sum of its "
        "process tree):",
        "",
        "| case | input | rows | rep | wall s | rows/s | peak RSS MB | user+sys s | exit |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        rate = f"{r['rows'] / r['wall_s']:,.0f}" if r["ok"] else "—"
        out.append(
            f"| ({r['case']}) {CASES[r['case']]} | {r['format']} | {r['rows']:,} | "
            f"{r['rep']} | {r['wall_s']:,.1f} | {rate} | {r['peak_rss_mb']:,.0f} | "
            f"{r['user_s'] + r['sys_s']:,.1f} | {r['exit_code']} |"
        )
    small = s.get("small") or {}
    if small.get("variants"):
        out += [
            "",
            "Small run (s): `python -m jobs.score --input sample_inputs` start to exit, "
            "median of the repeats; peak RSS of the process tree:",
            "",
            "| engine/path | rows | wall s | peak RSS MB | prediction path |",
            "|---|---:|---:|---:|---|",
        ]
        for name, cell in small["variants"].items():
            if _ok(cell):
                out.append(
                    f"| {name} | {cell['rows']} | {cell['wall_s']:.2f} | "
                    f"{cell['peak_rss_mb']:,.0f} | {cell['prediction_path']} |"
                )
            else:
                out.append(f"| {name} | — | failed | — | {cell.get('error')} |")
    all_targets = list(s["targets"]) + list(small.get("targets", []))
    if all_targets:
        out += [
            "",
            "Targets (2-core, 24 GB machine):",
            "",
            "| target | value | verdict | note |",
            "|---|---:|---|---|",
        ]
        out += [
            f"| {t['target']} | {t['value']} | {t['verdict']} | {t['note']} |" for t in all_targets
        ]
    out += ["", "Notes:", ""]
    if any((line.get("b") or {}).get("extrapolated") for line in s["rows"]):
        out.append(
            "- \\* (b) is measured on fewer rows and extrapolated linearly: its start-up "
            "(imports, model load) stays fixed, its read + predict + write time scales "
            "with rows. Its RSS is shown at the measured size (it holds the whole table "
            "in memory, so it grows with rows)."
        )
    for r in report["runs"]:
        if r["case"] == "b" and r["ok"]:
            ph = r["phases"]
            per_row = sum(ph.get(k, 0.0) for k in ("read_s", "predict_s", "write_s"))
            out.append(
                f"- (b) {r['format']} {human(r['rows'])} measured: start-up "
                f"{r['wall_s'] - per_row:.1f}s, read {ph.get('read_s', 0):.1f}s, "
                f"predict {ph.get('predict_s', 0):.1f}s, write {ph.get('write_s', 0):.1f}s"
            )
    out += [f"- {phase_note(r)}" for r in report["runs"] if r["case"] in "ade" and r["ok"]]
    if any(r["case"] == "d" and r["ok"] for r in report["runs"]):
        out.append(
            "- (d) ran the scorer with `--engine dask --dask-workers "
            f"{report['args']['dask_workers']}`; its peak RSS is the sum over the process "
            "tree (scheduler + workers; pages they share are counted in each, so it is "
            "an upper bound)."
        )
    if any(r["case"] == "e" and r["ok"] for r in report["runs"]):
        out.append(
            "- (e) ran the scorer with `--input s3://…` and `--output-dir s3://…` on a "
            "local S3 endpoint (moto in server mode, started by the benchmark on the same "
            "machine; the model stays on disk). The endpoint shares the cores with the "
            "scorer and is no real store: (e)/(a) is the cost of the S3 protocol path "
            "here (HTTP, multipart uploads, the staging copy and `_SUCCESS`), not a "
            "forecast for AWS. Its RSS is the scorer's alone (the endpoint is not its "
            "child). Uploading the input beforehand and downloading the run for the "
            "checks are not timed."
        )
    out += [f"- {note}" for note in report.get("dask_notes", [])]
    out.append(
        "- Every case reads its input once before it starts (warm page cache); outputs "
        "are deleted after each case. Logs: benchmarks/data/logs/."
    )
    failed = [r for r in report["runs"] if not r["ok"] and r["case"] != "d"]
    for r in failed:
        out.append(f"- FAILED ({r['case']}) {r['format']} {r['rows']:,}: {r.get('error')}")
    checks = report.get("checks") or []
    out += [f"- {c}" for c in checks]
    return "\n".join(out) + "\n"


def phase_note(run: dict[str, Any]) -> str:
    """The note line of one scorer run (a) or (d): the phases the scorer recorded.

    Phases are shown in the scorer's order with whatever names it uses (report.json's
    phases_seconds, then publish from the JSON summary); the rest of the wall time is what no
    phase covers (interpreter start-up, imports, exit). A scorer that records none gets "–".
    """
    what = f"({run['case']}) {run['format']} {human(run['rows'])} scorer phases:"
    phases = run.get("phases") or {}
    if not phases:
        return f"{what} – (not recorded: the run's report.json has no phases_seconds)"
    listed = ", ".join(f"{name} {seconds:.2f}s" for name, seconds in phases.items())
    rest = run["wall_s"] - sum(phases.values())
    if rest >= 0:
        listed += f"; outside them {rest:.2f}s (interpreter start-up, imports, exit)"
    return f"{what} {listed}"


def consistency(results: list[dict[str, Any]]) -> list[str]:
    """The floor must write what the scorer writes: same rows, columns, types and compression."""
    notes = []
    by = {(r["case"], r["format"], r["rows"]): r for r in results if r["ok"] and r.get("output")}
    for (case, fmt, rows), r in by.items():
        if case not in "cde" or ("a", fmt, rows) not in by:
            continue
        a, o = by[("a", fmt, rows)]["output"], r["output"]
        what = f"({case}) vs (a) at {fmt} {human(rows)}"
        diffs = [
            k
            for k in ("rows", "schema", "parquet_compression", "csv_header")
            if a.get(k) != o.get(k)
        ]
        if diffs:
            notes.append(
                f"CHECK {what}: outputs differ in {', '.join(diffs)} "
                f"(a: {[a.get(k) for k in diffs]}; {case}: {[o.get(k) for k in diffs]})"
            )
        else:
            layout = (
                f"; predictions.parquet is a folder of {o['parquet_parts']} parts"
                if o.get("parquet_parts")
                else ""
            )
            notes.append(
                f"check {what}: same rows, columns, types, compression "
                f"({', '.join(a.get('parquet_compression', []))}) and CSV header; "
                f"output sizes parquet {a.get('parquet_mb', 0):,.0f}/"
                f"{o.get('parquet_mb', 0):,.0f} MB, csv {a.get('csv_mb', 0):,.0f}/"
                f"{o.get('csv_mb', 0):,.0f} MB{layout}"
            )
    return notes


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
