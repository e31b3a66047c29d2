"""Chunking over generated documents: up to the chunk cap the windows cover every token of the
document in order, none is empty, each fits the window, and the last ends at the document's
end; past the cap the document is cut to max_chunks windows and reported."""

from __future__ import annotations

import pytest

pytest.importorskip("hypothesis")

from hypothesis import assume, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from semsearch.corpora.chunking import ChunkConfig, chunk_documents  # noqa: E402


def words(texts: list[str]) -> list[int]:
    """A whitespace tokenizer with the encoder's two special tokens."""
    return [len(text.split()) + 2 for text in texts]


def pieces(texts: list[str]) -> list[int]:
    """A subword-like tokenizer: a token every 3 characters of each word (long words cost more
    than a window, so they are cut by size)."""
    return [sum(-(-len(word) // 3) for word in text.split()) + 2 for text in texts]


TOKENIZERS = {"words": words, "pieces": pieces}
WORD = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1,
               max_size=30)
DOCUMENT = st.lists(WORD, min_size=1, max_size=120).map(" ".join)


def covers(text: str, chunks: list[str]) -> bool:
    """Whether the chunks (spaces removed) can be laid on the text (spaces removed) as windows
    that each start after the last one started and no later than it ended (no gap), the first
    at the start and the last ending at the text's end. Repetitive text can place a window in
    several spots, so every placement is tried (memoised)."""
    import functools

    flat = "".join(text.split())
    flats = ["".join(chunk.split()) for chunk in chunks]

    @functools.cache
    def place(number: int, start: int, end: int) -> bool:
        if number == len(flats):
            return end == len(flat)
        piece = flats[number]
        first = 0 if number == 0 else start + 1
        last = 0 if number == 0 else end
        for at in range(first, min(last, len(flat) - len(piece)) + 1):
            if flat.startswith(piece, at):
                finish = at + len(piece)
                if number == len(flats) - 1 and finish != len(flat):
                    continue  # the last window ends at the document's end
                if place(number + 1, at, max(end, finish)):
                    return True
        return False

    return place(0, 0, 0)


@given(text=DOCUMENT, max_tokens=st.integers(3, 40), overlap=st.floats(0, 0.9),
       tokenizer=st.sampled_from(sorted(TOKENIZERS)))
def test_windows_cover_the_document_fit_and_are_never_empty(text, max_tokens, overlap,
                                                             tokenizer):
    count = TOKENIZERS[tokenizer]
    config = ChunkConfig(max_tokens, overlap, max_chunks=10_000)
    cut: list[int] = []
    [chunks] = chunk_documents([text], count, config, cut)
    assert cut == [] and chunks
    assert all(chunk.strip() for chunk in chunks)
    if count([text])[0] <= max_tokens:
        assert chunks == [text]
    assert covers(text, chunks), chunks
    assert all(n <= max_tokens for n in count(chunks)), chunks


@given(text=DOCUMENT, max_tokens=st.integers(3, 12), max_chunks=st.integers(1, 5),
       tokenizer=st.sampled_from(sorted(TOKENIZERS)))
def test_past_the_cap_the_document_is_cut_and_reported(text, max_tokens, max_chunks, tokenizer):
    count = TOKENIZERS[tokenizer]
    config = ChunkConfig(max_tokens, 0.2, max_chunks=max_chunks)
    [whole] = chunk_documents([text], count, ChunkConfig(max_tokens, 0.2, max_chunks=10_000))
    assume(len(whole) > max_chunks)
    cut: list[int] = []
    [chunks] = chunk_documents(["a", text], count, config, cut)[1:]
    assert cut == [1]
    assert chunks == whole[:max_chunks]


@given(text=DOCUMENT, max_tokens=st.integers(3, 12))
def test_text_past_max_chars_is_cut_and_reported(text, max_tokens):
    config = ChunkConfig(max_tokens, 0.2, max_chunks=2)
    long = (text + " ") * (config.max_chars // (len(text) + 1) + 2)
    cut: list[int] = []
    [chunks] = chunk_documents([long], words, config, cut)
    assert cut == [0] and 1 <= len(chunks) <= 2
