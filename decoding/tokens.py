"""Token pills: the real text of a token, a readable display form, and the special-token flag.

Byte-level BPE vocabularies (GPT-2 style, as SmolLM2's) store bytes as printable stand-ins;
SentencePiece vocabularies use "▁" for a space and "<0xNN>" byte tokens. Both are turned back into
bytes here. A token holding part of a multi-byte character shows the partial bytes as \\xNN escapes, and a
sequence is shown with such pieces merged into the characters they form together.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

SPACE_MARK = "␣"  # U+2423 renders in Debian's Chromium fonts; U+2420 does not
NEWLINE_MARK = "↵"
TAB_MARK = "→"
_SP_BYTE = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


@dataclass(frozen=True)
class Pill:
    """One token as shown: `text` is the real decoded text, `display` the readable form."""

    id: int
    text: str
    display: str
    special: bool

    def as_dict(self) -> dict:
        return {"id": self.id, "text": self.text, "display": self.display, "special": self.special}


@cache
def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode table."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = list(printable)
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


def show_whitespace(text: str) -> str:
    """Visible markers for spaces, newlines and tabs, so a token's exact boundaries can be seen."""
    return text.replace(" ", SPACE_MARK).replace("\n", NEWLINE_MARK).replace("\t", TAB_MARK).replace("\r", "␍")


class TokenView:
    """Per-tokenizer memo of token bytes and pills (the vocabulary does not change while loaded)."""

    def __init__(self, tokenizer) -> None:
        self.tokenizer = tokenizer
        self.special_ids = frozenset(int(i) for i in tokenizer.all_special_ids)
        decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
        self.byte_level = type(decoder).__name__ == "ByteLevel" or "ByteLevel" in repr(decoder)
        self._bytes: dict[int, bytes] = {}
        self._pills: dict[int, Pill] = {}

    def token_bytes(self, token_id: int) -> bytes:
        cached = self._bytes.get(token_id)
        if cached is None:
            cached = self._bytes[token_id] = self._compute_bytes(token_id)
        return cached

    def _compute_bytes(self, token_id: int) -> bytes:
        piece = self.tokenizer.convert_ids_to_tokens(token_id)
        if piece is None:
            return b""
        if token_id in self.special_ids:
            return piece.encode()
        if self.byte_level:
            table = _byte_decoder()
            if all(ch in table for ch in piece):
                return bytes(table[ch] for ch in piece)
        match = _SP_BYTE.match(piece)
        if match:
            return bytes([int(match.group(1), 16)])
        if "▁" in piece:
            return piece.replace("▁", " ").encode()
        return self.tokenizer.decode([token_id]).encode()

    def pill(self, token_id: int) -> Pill:
        cached = self._pills.get(token_id)
        if cached is None:
            cached = self._pills[token_id] = self._make_pill(int(token_id))
        return cached

    def _make_pill(self, token_id: int) -> Pill:
        raw = self.token_bytes(token_id)
        special = token_id in self.special_ids
        try:
            text = raw.decode("utf-8")
            display = text if special else show_whitespace(text)
        except UnicodeDecodeError:
            text = raw.decode("utf-8", errors="replace")
            display = show_whitespace(raw.decode("utf-8", errors="backslashreplace"))
        return Pill(token_id, text, display or "∅", special)

    def pills(self, ids: Sequence[int]) -> list[Pill]:
        return [self.pill(i) for i in ids]

    def merged_pills(self, ids: Sequence[int]) -> list[Pill]:
        """Pills where a run of partial-byte tokens shows, on its last pill, the characters it forms.

        Earlier pieces of the run keep their hex display so each token stays clickable.
        """
        pills = self.pills(ids)
        out = list(pills)
        start = None
        for i, pill in enumerate(pills):
            if pill.special or not _is_partial(self.token_bytes(pill.id)):
                start = None
                continue
            start = i if start is None else start
            joined = b"".join(self.token_bytes(p.id) for p in pills[start : i + 1])
            try:
                text = joined.decode("utf-8")
            except UnicodeDecodeError:
                continue
            out[i] = Pill(pill.id, pill.text, show_whitespace(text), False)
            start = None
        return out

    def decode(self, ids: Sequence[int]) -> str:
        """The text of a sequence, bytes joined before decoding so split characters come out whole."""
        return b"".join(self.token_bytes(i) for i in ids).decode("utf-8", errors="replace")


def _is_partial(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
