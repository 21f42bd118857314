"""The one rule that masks the secrets of URLs in text that is shown or logged.

Every place that shows an address uses it: the LMS layer (errors, reprs,
``lms list``; ``redact(str(url))`` for an ``httpx.URL``), the log formatters
of ``workers.logs``, a command's log lines (``workers.cli.logs``), ``toolbox
config`` and the CLI's connection errors.  It lives in ``models``,
the bottom layer, because both ``lms`` (which never imports ``workers``) and
``workers.settings`` (which every command loads, and which should not load
the LMS layer) need it.

What is masked, always as ``***``, in every URL found in the text:

- a password: ``https://user:***@host``.  It may hold an unescaped ``@``, or
  a ``/``, ``?`` or ``#`` that no parser would take for one (the run up to
  the last ``@`` before the host is masked); after a colon, digits followed
  by the end of the address are a port, as every client reads them;
- a user part without a password, masked whole (it is often a token):
  ``https://***@host``;
- the values of secret query parameters (``SECRET_PARAMS``, any case):
  ``?access_token=***``;
- the values of credential headers (``SECRET_HEADERS``) as httpcore's DEBUG
  lines quote every response header: ``(b'Set-Cookie', b'***')`` (an LMS's
  session cookie, such as Blackboard's ``BbRouter``).

It also masks, anywhere in the text, the secrets a process was told of with
``remember``: a model provider's API key, which a provider's (or a proxy's)
error may quote, ``Invalid API key: sk-...``, in no URL at all.

It never raises, so an address stored by an older version, however malformed,
can still be shown.
"""

from __future__ import annotations

import json
import re
import threading

MASK = "***"
#: Shorter values are not remembered: they would mask ordinary words (``EMPTY``, a local
#: server's placeholder key).
MIN_REMEMBERED = 8
#: Query and form parameters whose values are secrets (compared in lower case): besides
#: passwords and tokens, API keys (``?key=``), OAuth 1 tokens, client assertions, ID tokens,
#: signed-URL signatures (S3's) and Canvas's file ``verifier``, which a next-page link or a
#: redirect of an LMS may carry.
SECRET_PARAMS = frozenset(
    "access_token api_key apikey assertion client_assertion client_secret id_token key"
    " oauth_signature oauth_token password private_token refresh_token secret sig signature"
    " ssl_keyfile_password ssl_password sslpassword token verifier wstoken x-amz-credential"
    " x-amz-security-token"
    " x-amz-signature".split()
)

#: Headers whose values are credentials (compared in any case).
SECRET_HEADERS = frozenset(
    "authorization cookie proxy-authorization set-cookie x-api-key x-auth-token".split()
)

# What ends a URL in text (blanks, quotes, angle brackets), and what ends its authority.
_QUIET = r"\s\"'<>"
_AUTHORITY_END = rf"(?:[/?#{_QUIET}]|$)"
_USERINFO = re.compile(
    rf"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?:"
    # user:password@host -- the @ after which the authority holds no other @
    rf"(?P<user>[^:/?#@{_QUIET}]*):(?!\d*{_AUTHORITY_END})[^{_QUIET}]*?"
    rf"@(?=[^@/?#{_QUIET}]*{_AUTHORITY_END})"
    # or a user part without a colon
    rf"|[^/?#{_QUIET}]+@)"
)
_SECRET_VALUE = re.compile(
    rf"(?i)(?P<key>[?&](?:{'|'.join(map(re.escape, sorted(SECRET_PARAMS)))})=)[^&#{_QUIET}]*"
)

# ``(b'Set-Cookie', b'v')`` as httpcore logs a header; in a JSON line a " is \"
_SECRET_HEADER = re.compile(
    rf"(?i)(?P<head>\(b(?P<nq>\\?['\"])(?:{'|'.join(map(re.escape, sorted(SECRET_HEADERS)))})"
    r"(?P=nq), b)(?P<q>\\?['\"]).*?(?<!\\)(?P=q)\)"
)

_ESCAPED = re.compile(r"[\x00-\x1f\x7f-\x9f\\'\"]+")
_remembered: tuple[str, ...] = ()
_known: frozenset[str] = frozenset()  # the secrets whose forms are all in _remembered
_remember_lock = threading.Lock()


def remember(*secrets: str) -> None:
    """Mask these values wherever ``redact`` runs in this process from now on, also quoted
    escaped: as a ``repr`` of text or bytes shows them (``b'Bearer a\\nb'``, how a library
    names a header it refuses), and that again inside a JSON log line."""
    global _remembered, _known
    new = {secret for secret in secrets if len(secret) >= MIN_REMEMBERED} - _known
    if not new:  # a client built again with the same secrets: nothing to do
        return
    forms = {form for secret in new for form in _forms(secret)}
    with _remember_lock:
        _known = _known | new
        _remembered = tuple(sorted({*_remembered, *forms}, key=len, reverse=True))


def _forms(secret: str) -> set[str]:
    """``secret``, quoted escaped up to twice (an exception's ``repr`` quoting a message that
    quotes bytes), each also as a JSON string holds it; and the runs between the characters
    that get escaped, so that a third quoting still masks all but those characters."""
    forms = {secret}
    for _ in range(2):
        forms |= {quoted for form in forms for quoted in _quoted(form)}
    forms |= {run for run in _ESCAPED.split(secret) if len(run) >= MIN_REMEMBERED}
    return forms | {json.dumps(form)[1:-1] for form in forms}


def _quoted(text: str) -> tuple[str, str]:
    return repr(text)[1:-1], repr(text.encode())[2:-1]


def redact(text: str) -> str:
    """``text`` with the secrets of every URL in it masked, ready to show or log."""
    for secret in _remembered:
        if secret in text:
            text = text.replace(secret, MASK)
    if "@" in text:
        text = _USERINFO.sub(_masked_userinfo, text)
    if "(b" in text:
        text = _SECRET_HEADER.sub(rf"\g<head>\g<q>{MASK}\g<q>)", text)
    return _SECRET_VALUE.sub(rf"\g<key>{MASK}", text) if "=" in text else text


def _masked_userinfo(match: re.Match[str]) -> str:
    user = match["user"]
    return f"{match['scheme']}{user}:{MASK}@" if user is not None else f"{match['scheme']}{MASK}@"
