"""What every document shares: the base model, field types, one error type, parse and dump.

Pure: text in, models out, and back. No file is opened here; callers pass a location string
(`where`) only so that an error names the file.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from typing import Annotated, Any, ClassVar, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from batch.core.jsontext import dumps
from batch.core.redact import redact

SCHEMA_VERSION = 1  # the version of every document this product writes and reads


class DocumentError(ValueError):
    """A JSON document the product reads back is damaged, or was written by a newer version.

    The message is one sentence: the document kind, where it is, the first offending field and
    what to do about it.
    """


# -- field types ------------------------------------------------------------------------------

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(allow_inf_nan=False, ge=0)]
Share = Annotated[float, Field(allow_inf_nan=False, ge=0, le=1)]
Count = Annotated[int, Field(ge=0)]

_VERSION_RE = re.compile(r"^v\d+$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _utc_time(value: str) -> str:
    """An ISO-8601 time with a UTC offset of zero (kept as the text the product wrote)."""
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("must be an ISO-8601 time such as 2026-01-01T00:00:00+00:00") from None
    if parsed.utcoffset() != dt.timedelta(0):
        raise ValueError("must be a UTC time (offset +00:00)")
    return value


def _version_name(value: str) -> str:
    if not _VERSION_RE.match(value):
        raise ValueError('must name a model version such as "v1"')
    return value


def _sha256(value: str) -> str:
    if not _SHA256_RE.match(value):
        raise ValueError("must be a sha256 as 64 lowercase hexadecimal digits")
    return value


def _day(value: str) -> str:
    """A calendar day as YYYY-MM-DD (kept as the text the product wrote)."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("must be a date as YYYY-MM-DD, e.g. 2026-11-01") from None
    return value


UtcTime = Annotated[str, AfterValidator(_utc_time)]
Day = Annotated[str, AfterValidator(_day)]
VersionName = Annotated[str, AfterValidator(_version_name)]
Sha256 = Annotated[str, AfterValidator(_sha256)]


# -- base models ------------------------------------------------------------------------------


class Part(BaseModel):
    """A nested object whose keys are all known: an unknown key is damage."""

    model_config = ConfigDict(strict=True, extra="forbid", validate_by_name=True)


class OpenPart(BaseModel):
    """A nested object of a document other tools read and later features extend: unknown keys
    are carried through parse and dump unchanged."""

    model_config = ConfigDict(strict=True, extra="allow", validate_by_name=True)


class Document(Part):
    """A whole JSON document (a file, or one line of a JSON-lines file).

    Class settings say how the product writes it: `kind` names it in errors, `fix` says what to
    do about damage, and `indent` / `digits` / `sort_keys` / `line` are jsontext.dumps's style.
    """

    kind: ClassVar[str] = "document"
    fix: ClassVar[str] = "restore it from a backup"
    indent: ClassVar[int | None] = 2
    digits: ClassVar[int | None] = None
    sort_keys: ClassVar[bool] = False
    line: ClassVar[bool] = False  # one line of a JSON-lines file (no indent, no newline)

    schema_version: int = Field(
        default=SCHEMA_VERSION,
        ge=1,
        description="layout version of this document (absent before 1)",
    )


class OpenDocument(Document):
    """A document whose unknown top-level keys are carried (other tools add and read them)."""

    model_config = ConfigDict(strict=True, extra="allow", validate_by_name=True)


D = TypeVar("D", bound=Document)


# -- parse --------------------------------------------------------------------------------------


def parse(model: type[D], data: bytes | str, where: str) -> D:
    """`data` (a whole document's text) as `model`; DocumentError naming what is wrong."""
    head = f"{model.kind} at {where}"
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
    except UnicodeDecodeError as exc:
        raise DocumentError(
            f"{head} is damaged: it is not UTF-8 text ({exc.reason}); {model.fix}"
        ) from None
    try:
        # NaN and Infinity parse as floats: the finite-number fields then name them.
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentError(
            f"{head} is damaged: it is not valid JSON ({exc.msg} at line {exc.lineno} column "
            f"{exc.colno}); {model.fix}"
        ) from None
    return validate(model, value, where)


def validate(model: type[D], value: Any, where: str) -> D:
    """An already decoded JSON value as `model`: migrated when older, refused when newer."""
    head = f"{model.kind} at {where}"
    if not isinstance(value, dict):
        raise DocumentError(
            f"{head} is damaged: it should be a JSON object, not {_json_type(value)}; {model.fix}"
        )
    version = value.get("schema_version", None)
    if "schema_version" not in value:
        # Written before documents had a version: the shape of version 1, migrated as it is.
        value = {"schema_version": SCHEMA_VERSION, **value}
    elif isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise DocumentError(
            f"{head} has schema_version {version}, newer than the {SCHEMA_VERSION} this version "
            "of the product reads: a newer version of the product wrote it; upgrade this one "
            "to read it"
        )
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        problem = describe(exc.errors()[0])
        raise DocumentError(f"{head} is damaged: {problem}; {model.fix}") from None


# -- error sentences ----------------------------------------------------------------------------

_PHRASES = {
    "finite_number": "must be a finite number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "int_type": "must be a whole number",
    "int_from_float": "must be a whole number",
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "dict_type": "must be an object",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "list_type": "must be a list",
    "missing": "is missing",
    "extra_forbidden": "is not a field of this document",
}
# Pydantic's names of union members and validators in an error location: not field names.
_TAG = re.compile(r"^(str|int|float|bool|list|dict|none|function-.*|.*\[.*\])$")


def field_path(loc: tuple[int | str, ...]) -> str:
    """An error location as the document's own path: interval.scale.floor, inputs[0].path."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _TAG.match(part):
            out += f".{part}" if out else part
    return out or "(the document)"


def describe(error: ErrorDetails) -> str:
    """One pydantic error as plain words: field 'weight' must be a finite number (got 'nan')."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "value_error":
        phrase = str(ctx.get("error", error["msg"]))
    elif kind in _PHRASES:
        phrase = _PHRASES[kind]
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        sign = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<="}
        limit = next(iter(ctx.values()), "?")
        phrase = f"must be {sign.get(kind, '<')} {limit}"
    else:
        phrase = error["msg"][:1].lower() + error["msg"][1:]
    text = f"field '{field_path(tuple(error['loc']))}' {phrase}"
    if kind != "missing":
        text += f" (got {_shown(error['input'])!r})"
    return text


def _shown(value: Any) -> str:
    if isinstance(value, str):
        shown = value
    elif isinstance(value, float) and not math.isfinite(value):
        shown = str(value)  # nan, inf
    else:
        shown = json.dumps(value, default=str)
    return shown if len(shown) <= 40 else shown[:39] + "…"


def _json_type(value: Any) -> str:
    names = {list: "a list", str: "text", bool: "true or false", type(None): "null"}
    return names.get(type(value), "a number")


# -- dump -------------------------------------------------------------------------------------


def dump(document: Document) -> str:
    """The document as the product writes it: jsontext.dumps in that file's style.

    A whole file ends with a newline; a JSON-lines entry is one line without it. Optional keys
    that were absent when parsed (or never set) stay absent; schema_version is always first.
    """
    data = document.model_dump(mode="python", by_alias=True, exclude_unset=True)
    data = {"schema_version": document.schema_version, **_redacted(data)}
    kind = type(document)
    if kind.line:
        return dumps(data, kind.digits)
    text = dumps(data, kind.digits, indent=kind.indent, sort_keys=kind.sort_keys)
    return text + "\n"


def _redacted(value: Any) -> Any:
    """Every string in a document passes the one redaction rule: no credential is ever written
    (a location or endpoint with user-info or a token in its query, a registered secret)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {redact(k) if isinstance(k, str) else k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(v) for v in value]
    return value
