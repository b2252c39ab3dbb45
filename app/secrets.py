"""Masking secrets in text: passwords inside URIs and libpq parameters."""

from __future__ import annotations

import re

# `scheme://user:password@` anywhere in a text, and libpq's `password=` parameter.
_URI_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*):[^\s/]*@")
_PARAM_PASSWORD = re.compile(r"((?:^|[?&;\s])password=)[^&\s]*", re.IGNORECASE)
MASK = "********"


def mask_credentials(text: str) -> str:
    """The text with passwords inside URIs (`scheme://user:pw@`, `?password=`) masked."""
    return _PARAM_PASSWORD.sub(rf"\1{MASK}", _URI_PASSWORD.sub(rf"\1:{MASK}@", text))
