"""Secrets out of every message: one redaction for URLs and connection strings.

Messages, log lines and stored details (``schedule_firings.detail``, job
errors) often name the server they could not reach. The configured value
may carry a password in any of the forms the drivers accept, and each one
must be hidden:

- URL user info: ``postgresql://user:secret@host``, the password-only form
  ``redis://:secret@host`` (also ``rediss://`` and ``unix://:secret@/path``);
- secret query parameters: ``?password=secret``, ``&sslpassword=secret``, …;
- keyword connection strings: ``host=db password=secret`` or
  ``password='a b'``.

:func:`redact` takes any text (a bare URL or a whole message holding one) and
returns it with each secret replaced by ``***``; user names, hosts, ports and
database names stay, since they are what an operator needs to fix a problem.
"""

from __future__ import annotations

import re

MASK = "***"

# Parameter names whose value is a secret, in URLs and keyword strings
# (libpq, redis-py, fsspec and cloud SDK spellings).
SECRET_NAMES = (
    "password", "passwd", "pwd", "pass", "sslpassword", "secret", "client_secret",
    "secret_key", "secret_access_key", "aws_secret_access_key", "access_token", "token",
    "auth", "auth_token", "api_key", "apikey", "sas_token", "sig", "account_key",
)

# scheme://userinfo@ — the user info runs to the last "@" before the path.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#\s@]*(?:@[^/?#\s@]*)*)@")
# name=value as a query parameter or a keyword of a connection string; the
# value is a quoted string (libpq quoting, backslash escapes) or runs to the
# next separator.
_PARAM = re.compile(
    r"(?P<name>(?<![\w.\-])(?:" + "|".join(sorted(SECRET_NAMES, key=len, reverse=True)) + r"))"
    r"(?P<eq>\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&;#,]*)",
    re.IGNORECASE,
)


def _hide_userinfo(match: re.Match[str]) -> str:
    userinfo = match.group("userinfo")
    user, colon, _password = userinfo.partition(":")
    if not colon:
        return match.group(0)  # a user name alone carries no secret
    return f"{match.group('scheme')}{user}:{MASK}@"


def redact(text: str) -> str:
    """``text`` with every password of a URL or connection string replaced by ``***``."""
    if not isinstance(text, str) or not text:
        return text
    text = _USERINFO.sub(_hide_userinfo, text)
    return _PARAM.sub(lambda m: f"{m.group('name')}{m.group('eq')}{MASK}", text)


def redact_value(value: object) -> object:
    """:func:`redact` for strings; any other value as it is."""
    return redact(value) if isinstance(value, str) else value
