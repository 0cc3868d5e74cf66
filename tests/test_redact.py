"""The one redaction rule: user-info and credential-looking query values of any URL in a text,
and the registered secret values, are masked; everything else is left alone."""

from __future__ import annotations

import pytest

from batch.core.redact import MASK, forget_secrets, redact, redact_url, register_secrets


@pytest.fixture(autouse=True)
def _no_secrets():
    forget_secrets()
    yield
    forget_secrets()


@pytest.mark.parametrize(
    "url, expected",
    [
        ("http://user:pa55word@host:5000/api", f"http://{MASK}@host:5000/api"),
        ("https://token@host/api/v1/lineage", f"https://{MASK}@host/api/v1/lineage"),
        ("http://u:p%40ss@host/x", f"http://{MASK}@host/x"),
        ("https://h/x?api_key=abc&x=1", f"https://h/x?api_key={MASK}&x=1"),
        ("https://h/x?x=1&TOKEN=abc", f"https://h/x?x=1&TOKEN={MASK}"),
        (
            "https://b.s3.amazonaws.com/k?X-Amz-Credential=AK%2F1&X-Amz-Signature=f00&v=2",
            f"https://b.s3.amazonaws.com/k?X-Amz-Credential={MASK}&X-Amz-Signature={MASK}&v=2",
        ),
        ("http://h/x?password=a;secret=b", f"http://h/x?password={MASK};secret={MASK}"),
        ("s3://bucket/prefix/file.csv", "s3://bucket/prefix/file.csv"),
        ("http://host:5000/api/v1/lineage?ns=prod", "http://host:5000/api/v1/lineage?ns=prod"),
    ],
)
def test_redact_url(url, expected):
    assert redact_url(url) == expected


def test_urls_inside_sentences_json_and_html_are_redacted():
    text = (
        "lineage endpoint http://alice:hunter22@marquez:5000/api unreachable; "
        '{"url": "http://bob:s3cr3tpw@h/x?token=zzz"} <a href="https://h/?key=kkk">x</a>'
    )
    out = redact(text)
    for secret in ("hunter22", "alice", "s3cr3tpw", "zzz", "kkk"):
        assert secret not in out
    assert "marquez:5000/api unreachable" in out and '"url": "http://***@h/x?token=***"' in out


def test_registered_values_are_masked_and_short_ones_ignored():
    register_secrets(["wJalrXUtnFEMI/K7MDENG", "ab", None, ""])
    assert redact("key is wJalrXUtnFEMI/K7MDENG here ab") == f"key is {MASK} here ab"


def test_text_without_secrets_is_unchanged():
    text = "rooms 6.5, file /data/in.csv, s3://b/k.parquet, 12:30"
    assert redact(text) == text


def test_documents_are_written_redacted():
    """Every JSON document goes through dump(): a credential in any string never reaches a file."""
    from batch.core.documents import RunLine, dump, parse_run_line

    register_secrets(["AKIAEXAMPLESECRET99"])
    line = RunLine(
        run_id=None,
        status="failed",
        exit_code=7,
        error="cannot reach http://ops:hunter22@minio:9000/b?X-Amz-Signature=abc "
        "with AKIAEXAMPLESECRET99",
        started_at="2026-12-05T00:00:00Z",
        finished_at="2026-12-05T00:00:01Z",
        duration_seconds=1.0,
        rows_read=0,
        rows_scored=0,
        rows_rejected=0,
        rows_out_of_range=0,
        reject_fraction=0.0,
        drift=False,
        interval_coverage=None,
        mse=None,
        mean_prediction=None,
        model_version=None,
        run_dir=None,
    )
    text = dump(line)
    for secret in ("hunter22", "abc", "AKIAEXAMPLESECRET99"):
        assert secret not in text
    assert parse_run_line(text, "runs.jsonl line 1").error.startswith(
        "cannot reach http://***@minio"
    )
