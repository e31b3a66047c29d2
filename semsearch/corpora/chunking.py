"""Split documents longer than the encoder's window into overlapping chunks that fit it.

Pure: token counts come from a callable (the encoder's `count_tokens`), so tests can pass a
whitespace counter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

CountTokens = Callable[[list[str]], list[int]]
MAX_CHUNKS = 1000
# upper bound on characters a token covers, for cutting text before tokenising it
CHARS_PER_TOKEN = 16


@dataclass(frozen=True)
class ChunkConfig:
    """How long documents are cut."""

    max_tokens: int  # the encoder window, including its 2 special tokens
    overlap: float = 0.2  # fraction of a window repeated at the start of the next chunk
    # chunks kept of one document; the rest of a longer one is not indexed (and reported), so
    # one huge line cannot take unbounded time and memory. 1,000 windows of 128 tokens is
    # about 100,000 words, a long book
    max_chunks: int = MAX_CHUNKS

    @property
    def max_chars(self) -> int:
        """Characters of a document looked at: enough for max_chunks full windows (a token is
        rarely more than CHARS_PER_TOKEN characters), so text far past the cap is never
        tokenised."""
        return self.max_chunks * self.max_tokens * CHARS_PER_TOKEN

    def to_dict(self) -> dict:
        return asdict(self)


def chunk_documents(
    texts: Sequence[str],
    count_tokens: CountTokens,
    config: ChunkConfig,
    cut: list[int] | None = None,
) -> list[list[str]]:
    """The chunks of each text: [text] when it fits the window, else overlapping word windows,
    at most config.max_chunks of them; the position of each text cut short is added to `cut`.

    >>> words = lambda texts: [len(t.split()) + 2 for t in texts]
    >>> cut = []
    >>> chunk_documents(["a b", "a b c d e f g"], words, ChunkConfig(5, 0.0, max_chunks=2), cut)
    [['a b'], ['a b c', 'd e f']]
    >>> cut
    [1]
    """
    heads = [text[: config.max_chars] for text in texts]
    counts = count_tokens(heads)
    chunked = []
    for position, (text, head, count) in enumerate(zip(texts, heads, counts, strict=True)):
        chunks = [head] if count <= config.max_tokens else split_text(head, count_tokens, config)
        if len(chunks) > config.max_chunks or len(head) < len(text):
            chunks = chunks[: config.max_chunks]
            if cut is not None:
                cut.append(position)
        chunked.append(chunks)
    return chunked


def split_text(text: str, count_tokens: CountTokens, config: ChunkConfig) -> list[str]:
    """Overlapping windows of whole words, each within config.max_tokens tokens.

    Words are costed one at a time; tokenisers that merge across spaces can make a joined window
    a little longer, so windows are re-counted and the budget shrunk until they fit.

    >>> words = lambda texts: [len(t.split()) + 2 for t in texts]
    >>> split_text("a b c d e f g", words, ChunkConfig(max_tokens=5, overlap=0.34))
    ['a b c', 'c d e', 'e f g']
    >>> split_text("a b c d e f g h", words, ChunkConfig(max_tokens=5, overlap=0.34))
    ['a b c', 'c d e', 'e f g', 'f g h']
    """
    words = text.split()
    budget = max(1, config.max_tokens - 2)  # room left by the two special tokens
    for _ in range(4):
        chunks = _windows(words, count_tokens, budget, config.overlap, config.max_chunks + 1)
        longest = max(count_tokens(chunks))
        if longest <= config.max_tokens or budget == 1:
            break
        budget = max(1, budget - (longest - config.max_tokens))
    return chunks


def _windows(
    words: list[str],
    count_tokens: CountTokens,
    budget: int,
    overlap_fraction: float,
    limit: int | None = None,
) -> list[str]:
    # a word alone costs its tokens minus the 2 specials count_tokens adds; never less than 1
    costs = [max(1, count - 2) for count in count_tokens(words)]
    pieces: list[tuple[str, int]] = []
    for word, cost in zip(words, costs, strict=True):
        if cost <= budget:
            pieces.append((word, cost))
        else:  # one "word" longer than the window (a URL, a run without spaces): cut it by size
            step = max(1, len(word) * budget // cost)
            pieces.extend((word[i : i + step], budget) for i in range(0, len(word), step))
    overlap = min(budget - 1, int(budget * overlap_fraction))
    chunks: list[str] = []
    start = 0
    while start < len(pieces):
        end, used = start, 0
        while end < len(pieces) and used + pieces[end][1] <= budget:
            used += pieces[end][1]
            end += 1
        end = max(end, start + 1)
        if end >= len(pieces) and chunks:
            # the last window ends at the text's end and is as full as the others: a short tail
            # (mostly the overlap) would be a vector of a few words that matches queries by chance
            while start > 0 and used + pieces[start - 1][1] <= budget:
                start -= 1
                used += pieces[start][1]
        chunks.append(" ".join(piece for piece, _ in pieces[start:end]))
        if end >= len(pieces) or (limit is not None and len(chunks) >= limit):
            break
        # step back over up to `overlap` tokens of the window just written
        back, carried = end, 0
        while back - 1 > start and carried + pieces[back - 1][1] <= overlap:
            back -= 1
            carried += pieces[back][1]
        start = back
    return chunks
