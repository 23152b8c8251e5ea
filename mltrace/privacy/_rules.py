"""``CaptureRules``: which parts of a payload may leave the process, and how big it may be.

Field paths are dot-separated keys, matched case-insensitively; a list element's index is a
segment too. ``*`` matches one segment, ``**`` any number (zero included):
``user.email``, ``features.*.ssn``, ``items.*.card``, ``**.password``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Literal

from .._errors import ConfigurationError
from .._settings import ENV

#: What a redacted value becomes in everything mltrace writes (captured payloads, ``feature.*``
#: attributes, exception messages) -- except ``url.query``, below.
REDACTED = "[REDACTED]"
#: The placeholder of a redacted ``url.query`` value (``sig=REDACTED``): OTel's HTTP conventions
#: prescribe this exact word, and OTel's own Python instrumentations write it, so a span's
#: ``url.query`` reads the same whichever instrumentation made it. Nowhere else.
URL_REDACTED = "REDACTED"
TRUNCATED = "[TRUNCATED]"


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card(match: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", match.group(0))
    return REDACTED if 13 <= len(digits) <= 19 and _luhn_ok(digits) else match.group(0)


def _keep_name(match: re.Match[str]) -> str:
    return f"{match.group(1)}={REDACTED}"


# name -> (pattern, replacement). Every pattern is linear-time: quantifiers are bounded or
# anchored on a fixed prefix, so a megabyte of hostile text cannot make redaction hang.
BUILTIN_PATTERNS: dict[str, tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = {
    "email": (
        re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}"),
        REDACTED,
    ),
    "card_number": (re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"), _card),
    "bearer_token": (re.compile(r"(?i)\b(?:bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), REDACTED),
    "jwt": (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"), REDACTED),
    "api_key": (
        re.compile(
            r"\b(?:(?:sk|pk|rk)_(?:live|test)_[A-Za-z0-9]{10,}|sk-[A-Za-z0-9_-]{16,}|gh[pousr]_[A-Za-z0-9]{20,}"
            r"|github_pat_[A-Za-z0-9_]{20,}|AKIA[0-9A-Z]{16}|xox[abprs]-[A-Za-z0-9-]{10,}|AIza[0-9A-Za-z_-]{35})"
        ),
        REDACTED,
    ),
    "secret_assignment": (
        re.compile(
            r"(?i)\b(password|passwd|pwd|secret|client_secret|token|access_token|refresh_token|api[_-]?key)"
            r"\s*[=:]\s*[^\s&,;\"']{1,512}"
        ),
        _keep_name,
    ),
    "us_ssn": (re.compile(r"(?<!\d)\d{3}-\d{2}-\d{4}(?!\d)"), REDACTED),
}
DEFAULT_PATTERNS: tuple[str, ...] = tuple(BUILTIN_PATTERNS)

# Keys whose values are never captured, at any depth (matched case-insensitively).
DEFAULT_DENY_KEYS: tuple[str, ...] = (
    "password", "passwd", "pwd", "passphrase", "secret", "client_secret", "token", "access_token",
    "refresh_token", "id_token", "api_key", "apikey", "x-api-key", "authorization", "auth", "cookie",
    "set-cookie", "session", "sessionid", "session_id", "ssn", "social_security_number", "card_number",
    "cardnumber", "credit_card", "creditcard", "cc_number", "cvv", "cvc", "pin", "private_key", "otp",
)

# Query parameters that carry a credential in a URL, beyond DEFAULT_DENY_KEYS: OTel's url.query
# list (AWSAccessKeyId, Signature, sig, X-Goog-Signature, X-Amz-*: presigned URLs) and `key`
# (Google API keys). Lower case; matched case-insensitively.
URL_CREDENTIAL_PARAMS: tuple[str, ...] = (
    "sig", "signature", "key", "awsaccesskeyid", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    "x-goog-signature",
)
#: The one list of sensitive key names for query strings (``url.query`` on spans, the query of a
#: captured payload): every default deny key plus the URL credential parameters.
SENSITIVE_QUERY_PARAMS: frozenset[str] = frozenset((*DEFAULT_DENY_KEYS, *URL_CREDENTIAL_PARAMS))

# Headers never recorded, whatever the rules say; plus any header whose name matches this.
SENSITIVE_HEADERS: frozenset[str] = frozenset(
    {
        "authorization", "proxy-authorization", "cookie", "set-cookie", "set-cookie2", "x-api-key",
        "api-key", "x-auth-token", "x-access-token", "x-csrf-token", "x-xsrf-token", "x-amz-security-token",
        "x-goog-iam-authorization-token", "x-vault-token", "www-authenticate", "proxy-authenticate",
    }
)
SENSITIVE_HEADER_NAME = re.compile(r"(?i)auth|token|secret|passw|cookie|session|api[-_]?key|signature|credential")

Replacement = str | Callable[[re.Match[str]], str]


def match_segments(pat: tuple[str, ...], path: tuple[str, ...], i: int = 0, j: int = 0, prefix: bool = False) -> bool:
    """Whether field-path rule ``pat`` matches key path ``path`` (or, with ``prefix``, some path that
    starts with it); both lower-cased segments, ``*`` one segment, ``**`` any number."""
    while True:
        if j == len(path):
            return prefix or all(p == "**" for p in pat[i:])
        if i == len(pat):
            return False
        p = pat[i]
        if p == "**":
            return match_segments(pat, path, i + 1, j, prefix) or match_segments(pat, path, i, j + 1, prefix)
        if p != "*" and p != path[j]:
            return False
        i += 1
        j += 1


def _segments(path: str) -> tuple[str, ...]:
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError(f"a field path must be a non-empty string; got {path!r}")
    return tuple(s.strip().lower() for s in path.strip().split("."))


def _patterns(items: Iterable[str | re.Pattern[str]]) -> tuple[tuple[re.Pattern[str], Replacement], ...]:
    out: list[tuple[re.Pattern[str], Replacement]] = []
    for item in items:
        if isinstance(item, re.Pattern):
            out.append((item, REDACTED))
        elif isinstance(item, str) and item in BUILTIN_PATTERNS:
            out.append(BUILTIN_PATTERNS[item])
        elif isinstance(item, str):
            try:
                out.append((re.compile(item), REDACTED))
            except re.error as exc:
                raise ConfigurationError(f"redact pattern {item!r} is not a valid regex: {exc}") from None
        else:
            raise ConfigurationError(f"redact patterns are builtin names, regex strings or re.Pattern; got {item!r}")
    return tuple(out)


@dataclass(frozen=True)
class CaptureRules:
    """What raw payload capture keeps. Deny beats allow; regexes run on every kept string.

    ``allow``: when given, only these field paths (and everything under them) are kept; any other
    value becomes ``[REDACTED]``. ``deny``: field paths whose values become ``[REDACTED]``.
    ``deny_keys``: key names denied at any depth (defaults cover passwords, tokens, card numbers).
    ``redact_patterns``: builtin names (:data:`DEFAULT_PATTERNS`: email, card_number, bearer_token,
    jwt, api_key, secret_assignment, us_ssn), regex strings or compiled patterns, applied to string
    values, dict keys and header values. ``max_bytes``: a body (or captured object) larger than this
    is not stored, only its size (an HTTP exchange's document: at most twice this plus 16 KiB of
    method, path, query and headers). ``max_string``: longer strings
    are cut (after redaction). ``max_depth``/``max_nodes``: deeper or larger structures are cut.
    ``request``/``response``/``headers``: which parts of an HTTP exchange are captured.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()
    redact_patterns: tuple[str | re.Pattern[str], ...] = DEFAULT_PATTERNS
    deny_keys: tuple[str, ...] = DEFAULT_DENY_KEYS
    max_bytes: int = 64 * 1024
    max_string: int = 1024
    max_depth: int = 32
    max_nodes: int = 10_000
    request: bool = True
    response: bool = True
    headers: bool = True
    _allow: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    _deny: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    _deny_keys: frozenset[str] = field(init=False, repr=False, compare=False)
    _compiled: tuple[tuple[re.Pattern[str], Replacement], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("allow", "deny", "redact_patterns", "deny_keys"):
            value = getattr(self, name)
            if isinstance(value, str | re.Pattern):
                value = (value,)
            object.__setattr__(self, name, tuple(value))
        for name in ("max_bytes", "max_string", "max_depth", "max_nodes"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigurationError(f"CaptureRules.{name} must be a positive integer; got {getattr(self, name)!r}")
        object.__setattr__(self, "_allow", tuple(_segments(p) for p in self.allow))
        object.__setattr__(self, "_deny", tuple(_segments(p) for p in self.deny))
        object.__setattr__(self, "_deny_keys", frozenset(k.lower() for k in self.deny_keys))
        object.__setattr__(self, "_compiled", _patterns(self.redact_patterns))

    def substitute(self, text: str) -> str:
        """``text`` with every redact pattern applied, uncut (:func:`redact_text` also caps it)."""
        for pattern, replacement in self._compiled:
            text = pattern.sub(replacement, text)
        return text

    def denies(
        self, path: tuple[str, ...], covers: Callable[[tuple[str, ...], tuple[str, ...]], bool] | None = None
    ) -> bool:
        """Whether a lower-cased key path is denied: by its last key's name or by a :attr:`deny`
        rule (``covers(rule, path)`` decides a rule's reach; default: :func:`match_segments`)."""
        if path and path[-1] in self._deny_keys:
            return True
        covers = covers or match_segments
        return any(covers(p, path) for p in self._deny)

    def allow_state(
        self, path: tuple[str, ...], covers: Callable[[tuple[str, ...], tuple[str, ...]], bool] | None = None
    ) -> Literal["all", "some", "none"]:
        """Whether :attr:`allow` keeps ``path``: ``all`` (no allow list, or a rule covers it), ``some``
        (an allowed path lies below it) or ``none``."""
        allow = self._allow
        if not allow:
            return "all"
        covers = covers or match_segments
        if any(covers(p, path) for p in allow):
            return "all"
        if any(match_segments(p, path, prefix=True) for p in allow):
            return "some"
        return "none"

    @classmethod
    def from_env(cls) -> CaptureRules:
        """Rules from ``MLTRACE_PAYLOAD_ALLOW`` / ``_DENY`` (comma-separated paths), ``_MAX_BYTES``."""

        def paths(name: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in os.environ.get(name, "").split(",") if p.strip())

        return cls(
            allow=ENV.PAYLOAD_ALLOW.get(),
            deny=ENV.PAYLOAD_DENY.get(),
            max_bytes=ENV.PAYLOAD_MAX_BYTES.get(),
            headers=ENV.PAYLOAD_HEADERS.get(),
        )


def header_allowed(name: str, extra: frozenset[str] = frozenset()) -> bool:
    """False for credentials-bearing headers (``Authorization``, ``Cookie``, ``Set-Cookie``, ...)."""
    lower = name.lower()
    return lower not in SENSITIVE_HEADERS and lower not in extra and SENSITIVE_HEADER_NAME.search(lower) is None
