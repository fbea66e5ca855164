"""Presidio recognizers that run offline, without an NLP engine, plus ours for keys and tokens.

Presidio's predefined recognizers do the hard parts: e-mail addresses (validated against the
public-suffix list), payment cards (Luhn checksum), IBANs (mod-97 checksum) and phone numbers
(Google's ``phonenumbers``). Its default engine wants a spaCy model, which cannot be downloaded
here; pattern recognizers need none, so they are called directly.

Presidio's e-mail check calls ``tldextract.extract``, which fetches the suffix list from the
internet on first use. ``OfflineEmailRecognizer`` uses the snapshot that ships inside tldextract
instead: nothing downloads at run time.

Keys and tokens have no Presidio recognizer: ``PatternRecognizer``s for the well-known formats
(OpenAI/Anthropic ``sk-``, GitHub ``ghp_``/``github_pat_``, AWS ``AKIA``, Slack ``xox*``, Google
``AIza``, Stripe, JWTs, PEM private keys), and ``SecretValueRecognizer`` for the value of a
``Bearer`` header or an ``api_key=…`` / ``password: …`` assignment in a pasted config.
"""

from __future__ import annotations

import re

import tldextract
from presidio_analyzer import EntityRecognizer, LocalRecognizer, Pattern, PatternRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    EmailRecognizer,
    IbanRecognizer,
    PhoneRecognizer,
)

# The public-suffix list as tldextract ships it: no URL to fetch, no cache directory to write.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)


class OfflineEmailRecognizer(EmailRecognizer):
    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLD(pattern_text).fqdn)


_API_KEY_PATTERNS = [
    # OpenAI (sk-, sk-proj-, sk-svcacct-), Anthropic (sk-ant-), DeepSeek (sk- + 32 hex).
    Pattern("openai_style", r"\bsk-(?:[A-Za-z0-9_-]{2,20}-)?[A-Za-z0-9_-]{20,}", 0.9),
    Pattern("github", r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b", 0.95),
    Pattern("aws_access_key_id", r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}\b", 0.9),
    Pattern("slack", r"\bxox[abposr]-[A-Za-z0-9-]{10,}", 0.9),
    Pattern("google_api", r"\bAIza[0-9A-Za-z_-]{35}\b", 0.9),
    Pattern("stripe", r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b", 0.9),
    Pattern("huggingface", r"\bhf_[A-Za-z0-9]{30,}\b", 0.9),
]
_JWT = Pattern("jwt", r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}", 0.95)
_PEM = Pattern(
    "pem_private_key",
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----",
    0.99,
)


class SecretValueRecognizer(LocalRecognizer):
    """The value after ``Bearer`` or after a secret-looking key in ``key = value`` / ``key: value``.

    Only the value is replaced (the key name stays readable), which a ``PatternRecognizer`` cannot
    do: it reports whole matches, so this one reports the regex's ``secret`` group."""

    _RULES = (
        re.compile(r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9._~+/-]{16,}=*)"),
        re.compile(
            r"(?i)\b[\w.-]*(?:api[_-]?key|secret|token|passw(?:or)?d|access[_-]?key|auth)[\w.-]*"
            r"[\"']?\s*[:=]\s*[\"']?(?P<secret>[^\s\"',;]{8,})"
        ),
    )
    # A value that is itself a placeholder or a variable reference is no secret.
    _NOT_SECRET = re.compile(r"^(?:<[A-Z_]+>|\$\{?[\w.]+\}?|%\(\w+\)s|\{\{.*\}\}|x{8,}|\*{8,})$")

    def __init__(self) -> None:
        super().__init__(supported_entities=["TOKEN"], name="SecretValueRecognizer")

    def load(self) -> None:
        pass

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        out = []
        for rule in self._RULES:
            for m in rule.finditer(text):
                value = m.group("secret")
                if not self._NOT_SECRET.match(value):
                    out.append(RecognizerResult("TOKEN", m.start("secret"), m.end("secret"), 0.8))
        return out


class PlausiblePhoneRecognizer(PhoneRecognizer):
    """``phonenumbers``' matches, less the numbers no one writes as a phone number.

    Some numbering plans (Germany's) make any group of four or more digits a valid number, so
    ``1642`` in ``add: 1642+20173`` was one. A phone number has at least 7 digits; one written as a
    bare run of digits (no spaces, dashes, brackets or leading ``+``) at least 10; and one that
    touches an arithmetic operator is an operand."""

    MIN_DIGITS = 7
    MIN_BARE_DIGITS = 10
    _OPERATORS = frozenset("+-*/=×÷^%<>")

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        return [
            r for r in super().analyze(text, entities, nlp_artifacts) if self._plausible(text, r.start, r.end)
        ]

    def _plausible(self, text: str, start: int, end: int) -> bool:
        span = text[start:end]
        digits = sum(c.isdigit() for c in span)
        if digits < self.MIN_DIGITS or (span.isdigit() and digits < self.MIN_BARE_DIGITS):
            return False
        before = text[:start].rstrip(" ")[-1:]
        after = text[end:].lstrip(" ")[:1]
        return before not in self._OPERATORS and after not in self._OPERATORS


def build_recognizers(entities: list[str], phone_regions: list[str]) -> dict[str, list[EntityRecognizer]]:
    """Our entity name → the Presidio recognizers that find it (only the enabled entities)."""
    available: dict[str, list[EntityRecognizer]] = {
        "EMAIL": [OfflineEmailRecognizer()],
        "PHONE": [PlausiblePhoneRecognizer(supported_regions=tuple(phone_regions))],
        "CREDIT_CARD": [CreditCardRecognizer()],
        "IBAN": [IbanRecognizer()],
        "API_KEY": [PatternRecognizer("API_KEY", patterns=_API_KEY_PATTERNS, name="ApiKeyRecognizer")],
        "TOKEN": [PatternRecognizer("TOKEN", patterns=[_JWT], name="JwtRecognizer"), SecretValueRecognizer()],
        "PRIVATE_KEY": [PatternRecognizer("PRIVATE_KEY", patterns=[_PEM], name="PrivateKeyRecognizer")],
    }
    return {e: available[e] for e in entities}
