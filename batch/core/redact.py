"""One redaction rule for every place a location, endpoint or error sentence is written.

A URL's user-info (`http://user:password@host`) and the values of credential-looking query
parameters (`token`, `key`, `secret`, `password`, `signature`, `X-Amz-*`, ...) are masked
wherever they occur in a text; so are the values registered as secrets at start-up (the
OpenLineage API key, `AWS_SECRET_ACCESS_KEY`, ...), should one ever be copied into a message.

Pure: strings in, strings out. The process-wide secret list is the only state.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "***"

# A URL inside free text: a scheme, then everything up to white space or a quote/bracket that
# would end it in a sentence, a JSON string or an HTML attribute.
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]{0,30}://[^\s'\"<>`]+")
# scheme://userinfo@ -- the user-info is everything before the last @ of the authority.
_USERINFO = re.compile(r"^(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/?#]*)@")
# name=value pairs of a query string (or of a fragment written like one).
_PARAM = re.compile(r"(?P<sep>[?&;#])(?P<name>[^=&;#?]+)=(?P<value>[^&;#\\]*)")
_SECRET_NAMES = re.compile(
    r"token|key|secret|passw|pwd|signature|sig$|credential|auth|session|^x-amz-",
    re.IGNORECASE,
)
# Secret values shorter than this are not masked by value: "1" or "abc" would mask half of
# every sentence. Real keys and passwords are longer.
_MIN_SECRET_LENGTH = 6

_secrets: set[str] = set()


def register_secrets(values: Iterable[str | None]) -> None:
    """Mask these values wherever they appear from now on (blank and short ones are ignored)."""
    for value in values:
        if value and len(value.strip()) >= _MIN_SECRET_LENGTH:
            _secrets.add(value.strip())


def forget_secrets() -> None:
    """Clear the registered values (tests, and a process that loads new settings)."""
    _secrets.clear()


def redact_url(url: str) -> str:
    """`url` with its user-info and credential-looking query values masked."""
    url = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", url, count=1)

    def param(m: re.Match[str]) -> str:
        if _SECRET_NAMES.search(m["name"]):
            return f"{m['sep']}{m['name']}={MASK}"
        return m.group(0)

    return _PARAM.sub(param, url)


def redact(text: str) -> str:
    """`text` with every URL in it redacted and every registered secret value masked."""
    if not text:
        return text
    if "://" in text:
        text = _URL.sub(lambda m: redact_url(m.group(0)), text)
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return text
