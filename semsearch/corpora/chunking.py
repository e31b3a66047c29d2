"""Split documents longer than the encoder's window into overlapping chunks that fit it.

Pure: token counts come from a callable (the encoder's `count_tokens`), so tests can pass a
whitespace counter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

CountTokens = Callable[[list[str]], list[int]]


@dataclass(frozen=True)
class ChunkConfig:
    """How long documents are cut."""

    max_tokens: int  # the encoder window, including its 2 special tokens
    overlap: float = 0.2  # fraction of a window repeated at the start of the next chunk

    def to_dict(self) -> dict:
        return asdict(self)


def chunk_documents(
    texts: Sequence[str], count_tokens: CountTokens, config: ChunkConfig
) -> list[list[str]]:
    """The chunks of each text: [text] when it fits the window, else overlapping word windows."""
    counts = count_tokens(list(texts))
    return [
        [text] if count <= config.max_tokens else split_text(text, count_tokens, config)
        for text, count in zip(texts, counts, strict=True)
    ]


def split_text(text: str, count_tokens: CountTokens, config: ChunkConfig) -> list[str]:
    """Overlapping windows of whole words, each within config.max_tokens tokens.

    Words are costed one at a time; tokenisers that merge across spaces can make a joined window
    a little longer, so windows are re-counted and the budget shrunk until they fit.

    >>> words = lambda texts: [len(t.split()) + 2 for t in texts]
    >>> split_text("a b c d e f g", words, ChunkConfig(max_tokens=5, overlap=0.34))
    ['a b c', 'c d e', 'e f g']
    """
    words = text.split()
    budget = max(1, config.max_tokens - 2)  # room left by the two special tokens
    for _ in range(4):
        chunks = _windows(words, count_tokens, budget, config.overlap)
        longest = max(count_tokens(chunks))
        if longest <= config.max_tokens or budget == 1:
            break
        budget = max(1, budget - (longest - config.max_tokens))
    return chunks


def _windows(
    words: list[str], count_tokens: CountTokens, budget: int, overlap_fraction: float
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
        chunks.append(" ".join(piece for piece, _ in pieces[start:end]))
        if end >= len(pieces):
            break
        # step back over up to `overlap` tokens of the window just written
        back, carried = end, 0
        while back - 1 > start and carried + pieces[back - 1][1] <= overlap:
            back -= 1
            carried += pieces[back][1]
        start = back
    return chunks
