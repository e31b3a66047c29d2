from semsearch.encoder.tokenizer import Tokenizer

TEXTS = ["A man is playing a guitar.", "A woman is slicing an onion.", "Two dogs run in a park.",
         "The cat sleeps on the sofa."] * 20


def test_round_trip_and_save_load(tmp_path):
    tokenizer = Tokenizer.train(TEXTS, vocab_size=200)
    ids = tokenizer.encode(["a man is playing a guitar."])[0]
    assert tokenizer.decode(ids) == "a man is playing a guitar."
    tokenizer.save(tmp_path / "tokenizer.json")
    again = Tokenizer.load(tmp_path / "tokenizer.json")
    assert again.encode(TEXTS[:4]) == tokenizer.encode(TEXTS[:4])
    assert again.vocab_size == tokenizer.vocab_size <= 200


def test_pad_is_zero_and_specials_wrap():
    tokenizer = Tokenizer.train(TEXTS, vocab_size=200)
    assert tokenizer.pad_id == 0
    ids = tokenizer.encode(["a cat"])[0]
    assert tokenizer.inner.id_to_token(ids[0]) == "[CLS]"
    assert tokenizer.inner.id_to_token(ids[-1]) == "[SEP]"


def test_truncation_keeps_sep_last():
    tokenizer = Tokenizer.train(TEXTS, vocab_size=200)
    full = tokenizer.encode([TEXTS[0]])[0]
    cut = tokenizer.encode([TEXTS[0]], max_length=4)[0]
    assert len(cut) == 4 and cut[:3] == full[:3] and cut[-1] == full[-1]


def test_unknown_characters_map_to_unk():
    tokenizer = Tokenizer.train(TEXTS, vocab_size=200)
    ids = tokenizer.encode(["ж"])[0]
    assert tokenizer.inner.id_to_token(ids[1]) == "[UNK]"


def test_training_is_reproducible():
    texts = [f"{w} {v} number {i}" for i, (w, v) in enumerate(
        zip(["alpha", "beta", "gamma", "delta"] * 40, ["one", "two", "three"] * 54))]
    vocabs = {tuple(sorted(Tokenizer.train(texts, 60).inner.get_vocab().items()))
              for _ in range(3)}
    assert len(vocabs) == 1
