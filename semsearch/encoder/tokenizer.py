"""A WordPiece tokenizer trained with `tokenizers`, saved as `tokenizer.json` (no pickle)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer as HFTokenizer
from tokenizers import decoders, models, normalizers, pre_tokenizers, processors, trainers

from semsearch.errors import DataError, ModelError
from semsearch.progress import Log, Meter, silent, sliced

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = [PAD, UNK, CLS, SEP, MASK]  # PAD is id 0
_SLICE = 4096  # texts between two looks at the clock while learning a vocabulary


class Tokenizer:
    """Text -> token ids with [CLS] .. [SEP] around, truncated to `max_length`."""

    def __init__(self, inner: HFTokenizer) -> None:
        self.inner = inner
        self.pad_id = inner.token_to_id(PAD)
        if self.pad_id != 0:
            raise ModelError("tokenizer.json has no [PAD] at id 0; retrain the model")

    @classmethod
    def train(cls, texts: Iterable[str], vocab_size: int, lowercase: bool = True,
              log: Log = silent) -> Tokenizer:
        """Learn a WordPiece vocabulary of at most `vocab_size` tokens from `texts`.

        Reproducible: the trainer numbers `##x` continuation characters in Rust hash-map order,
        which makes its tie-breaks (and so its vocabulary) vary run to run; handing it every
        `##x` up front, sorted, as reserved tokens fixes their ids and with them every tie.
        Both passes over the texts (about a minute for 400,000 on two cores) say how far they
        are through `log` every few seconds.
        """
        texts = list(texts)
        inner = _empty(lowercase)
        words = set()
        with Meter(len(texts), "tokenizer: words read", log) as meter:
            for part in sliced(texts, _SLICE, meter):
                words.update(w for t in part for w, _ in inner.pre_tokenizer.pre_tokenize_str(
                    inner.normalizer.normalize_str(t)))
        continuations = sorted({"##" + c for w in words for c in w[1:]})
        trainer = trainers.WordPieceTrainer(
            vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS + continuations,
            min_frequency=2, show_progress=False,
        )
        with Meter(len(texts), "tokenizer: texts counted", log) as meter:
            # train_from_iterator takes batches too
            inner.train_from_iterator(sliced(texts, _SLICE, meter), trainer=trainer,
                                      length=len(texts))
        # rebuild so that only the five real specials are special (not the reserved ##x)
        final = _empty(lowercase)
        final.model = models.WordPiece(inner.get_vocab(), unk_token=UNK)
        final.add_special_tokens(SPECIAL_TOKENS)
        final.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", special_tokens=[(CLS, final.token_to_id(CLS)),
                                                       (SEP, final.token_to_id(SEP))],
        )
        return cls(final)

    @classmethod
    def load(cls, path: Path) -> Tokenizer:
        try:
            return cls(HFTokenizer.from_file(str(path)))
        except Exception as error:  # noqa: BLE001 - tokenizers raises a bare Exception
            raise ModelError(f"{path}: not a readable tokenizer.json ({error})") from None

    def save(self, path: Path) -> None:
        self.inner.save(str(path))

    @property
    def vocab_size(self) -> int:
        return self.inner.get_vocab_size()

    def encode(self, texts: list[str], max_length: int | None = None) -> list[list[int]]:
        """Token ids per text; with `max_length`, truncated keeping [SEP] last."""
        try:
            encodings = self.inner.encode_batch(list(texts))
        except TypeError:  # tokenizers' "TextEncodeInput must be Union[...]": say which and why
            raise DataError(_unencodable(texts)) from None
        ids = [e.ids for e in encodings]
        if max_length is not None:
            ids = [seq if len(seq) <= max_length else seq[: max_length - 1] + [seq[-1]] for seq in ids]
        return ids

    def decode(self, ids: list[int]) -> str:
        return self.inner.decode(ids)


def _unencodable(texts: list[str]) -> str:
    """What makes a text one the tokenizer cannot take (a lone surrogate, a non-string)."""
    for number, text in enumerate(texts):
        if not isinstance(text, str):
            return f"text {number} is a {type(text).__name__}, not a string; give texts as str"
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            return (f"text {number} holds a lone surrogate (U+{ord(text[error.start]):04X} at "
                    f"character {error.start}), which is not valid Unicode; decode its bytes "
                    "with errors='replace', or drop the text")
    return "the tokenizer cannot take these texts; give a list of strings"


def _empty(lowercase: bool) -> HFTokenizer:
    inner = HFTokenizer(models.WordPiece(unk_token=UNK))
    inner.normalizer = normalizers.BertNormalizer(lowercase=lowercase, strip_accents=lowercase)
    inner.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    inner.decoder = decoders.WordPiece()
    return inner


@dataclass(frozen=True)
class TokenizerConfig:
    # WordPiece vocabulary to learn (the model's embedding table gets the size actually learned)
    vocab_size: int = 30_000
    # fold case and accents: STS-style similarity rarely hinges on case, and it halves the vocab
    lowercase: bool = True
