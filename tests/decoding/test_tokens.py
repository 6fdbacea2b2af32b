"""Token pills: decoded text, whitespace markers, special flags, partial-byte pieces and their merging."""

from __future__ import annotations

import pytest

from decoding.tokens import NEWLINE_MARK, SPACE_MARK, TAB_MARK, TokenView, show_whitespace


@pytest.fixture(scope="module")
def view(tokenizer) -> TokenView:
    return TokenView(tokenizer)


def encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_show_whitespace_marks_space_newline_and_tab():
    assert show_whitespace(" a\n\tb") == f"{SPACE_MARK}a{NEWLINE_MARK}{TAB_MARK}b"


def test_leading_space_token_shows_space_marker(view, tokenizer):
    (token,) = encode(tokenizer, " hello")
    pill = view.pill(token)
    assert pill.text == " hello"
    assert pill.display == f"{SPACE_MARK}hello"
    assert not pill.special


@pytest.mark.parametrize(("text", "mark"), [("\n", NEWLINE_MARK), ("\t", TAB_MARK)])
def test_newline_and_tab_tokens_show_markers(view, tokenizer, text, mark):
    (token,) = encode(tokenizer, text)
    assert view.pill(token).text == text
    assert view.pill(token).display == mark


@pytest.mark.parametrize("name", ["<|im_start|>", "<|im_end|>", "<|endoftext|>"])
def test_special_tokens_are_flagged_and_shown_verbatim(view, tokenizer, name):
    pill = view.pill(tokenizer.convert_tokens_to_ids(name))
    assert pill.special
    assert pill.text == name and pill.display == name


def test_ordinary_token_is_not_special(view, tokenizer):
    assert not any(p.special for p in view.pills(encode(tokenizer, "Hello world")))


def test_partial_bytes_of_check_mark_show_hex_escapes(view, tokenizer):
    ids = encode(tokenizer, "✓")
    displays = [view.pill(i).display for i in ids]
    assert len(ids) > 1
    assert "".join(displays) == "\\xe2\\x9c\\x93"
    assert all("\ufffd" in view.pill(i).text for i in ids)


@pytest.mark.parametrize("text", ["✓", "日本", "a ✓ b"])
def test_merged_pills_show_the_character_on_its_last_piece(view, tokenizer, text):
    ids = encode(tokenizer, text)
    merged = view.merged_pills(ids)
    assert [p.id for p in merged] == ids
    assert "".join(p.display for p in merged if "\\x" not in p.display) == show_whitespace(text)


def test_merged_pills_keep_hex_on_earlier_pieces(view, tokenizer):
    merged = view.merged_pills(encode(tokenizer, "日本"))
    assert merged[0].display.startswith("\\x")
    assert merged[1].display == "日"
    assert merged[-1].display == "本"


def test_merged_pills_leave_complete_tokens_alone(view, tokenizer):
    ids = encode(tokenizer, "plain words here")
    assert view.merged_pills(ids) == view.pills(ids)


@pytest.mark.parametrize("text", ["Hi ✓ 日本\n\tcode() — naïve 🙂 done", "  two spaces\r\nline", "x"])
def test_decode_roundtrips_mixed_text(view, tokenizer, text):
    assert view.decode(encode(tokenizer, text)) == text


def test_decode_keeps_special_tokens(view, tokenizer):
    start = tokenizer.convert_tokens_to_ids("<|im_start|>")
    assert view.decode([start, *encode(tokenizer, "user")]) == "<|im_start|>user"


def test_pill_as_dict_has_the_api_fields(view):
    assert set(view.pill(100).as_dict()) == {"id", "text", "display", "special"}
