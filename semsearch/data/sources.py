"""Where each data set lives: a local folder in the official layout first, the hub second.

The folder comes from `--data-dir` or `$SEMSEARCH_DATA`; inside it each set sits in its own
folder as distributed (`stsbenchmark/sts-dev.csv`, `snli/snli_1.0_dev.jsonl.gz`, ...; see
`../shared/data/README.md`). Without a folder, SNLI and STS-B come from the Hugging Face hub
through `datasets` (cached in the user's cache dir) when a network is there.
"""

from __future__ import annotations

import functools
import json
import os
import socket
import urllib.parse
from pathlib import Path

from semsearch.data import loaders, passages
from semsearch.data.files import BadLines, find_file, read_lines
from semsearch.data.records import Caption, NliPair, ScoredPair, TrainingPair
from semsearch.errors import DataError

DATA_ENV = "SEMSEARCH_DATA"

# source -> split -> candidate file names under the data folder (each also tried as .gz)
LAYOUT: dict[str, dict[str, list[str]]] = {
    "snli": {
        split: [f"snli/snli_1.0_{split}.jsonl", f"snli_1.0/snli_1.0_{split}.jsonl",
                f"snli_1.0_{split}.jsonl"]
        for split in ("train", "dev", "test")
    },
    "stsb": {
        split: [f"stsbenchmark/sts-{split}.csv", f"sts-{split}.csv"]
        for split in ("train", "dev", "test")
    },
    "flickr30k": {"all": ["flickr30k/flickr30k_captions.token", "flickr30k/results_20130124.token"]},
    "flickr8k": {"all": ["flickr8k/Flickr8k.token.txt", "Flickr8k.token.txt"]},
    "coco": {
        "val2017": ["coco/captions_val2017.json"],
        "dev": ["coco/coco_dev_caps.txt"],
        "test": ["coco/coco_testall_caps.txt"],
    },
    "quora": {"all": ["quora/quora_duplicate_pairs.tsv"]},
    "mrpc": {"train": ["mrpc/msr_paraphrase_train.txt"]},
    "wikipedia": {"all": ["wikipedia/sentences.txt"]},
    **{name: {"all": ["wikipedia/articles.jsonl"]} for name in (
        "wikititle", "wikisection", "wikiict", "wikinext")},
}
# passage sources: unlabelled articles -> query/passage pairs of one kind (see passages.py)
PASSAGE_SOURCES = {"wikititle": "title", "wikisection": "section", "wikiict": "ict",
                   "wikinext": "next"}
DEFAULT_SPLITS = {
    "snli": ("train",),
    "stsb": ("train",),
    "flickr30k": ("all",),
    "flickr8k": ("all",),
    "coco": ("val2017", "dev", "test"),
    "quora": ("all",),
    "mrpc": ("train",),
    "wikipedia": ("all",),
    **{name: ("all",) for name in PASSAGE_SOURCES},
}
HUB = {"snli": "stanfordnlp/snli", "stsb": "sentence-transformers/stsb"}
HUB_SPLITS = {"train": "train", "dev": "validation", "test": "test"}


def resolve_data_dir(data_dir: str | Path | None = None) -> Path | None:
    """The local data folder: `data_dir`, else $SEMSEARCH_DATA, else None (use the hub)."""
    chosen = data_dir if data_dir not in (None, "") else os.environ.get(DATA_ENV) or None
    if chosen is None:
        return None
    path = Path(chosen).expanduser()
    if not path.is_dir():
        origin = "--data-dir" if data_dir not in (None, "") else f"${DATA_ENV}"
        raise DataError(f"data folder {path} (from {origin}) does not exist; point it at the folder "
                        "holding stsbenchmark/, snli/, ... or unset it to use the hub")
    return path


def locate(source: str, split: str, data_dir: Path) -> Path:
    """The file of `source`/`split` under `data_dir`, or DataError naming where it looked."""
    names = LAYOUT[source][split]
    path = find_file(data_dir, names)
    if path is None:
        raise DataError(f"{source} {split}: none of {', '.join(names)} (or .gz) under {data_dir}; "
                        f"download it there, or drop {source} from the mixture")
    return path


def load_stsb(split: str, data_dir: str | Path | None = None) -> list[ScoredPair]:
    """STS-B pairs of one split (train, dev, test) with gold scores 0..5."""
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        return loaders.read_stsb(locate("stsb", split, folder))
    rows = _hub_rows("stsb", split)
    return [ScoredPair(r["sentence1"], r["sentence2"], 5.0 * float(r["score"])) for r in rows]


def load_snli(split: str, data_dir: str | Path | None = None) -> list[NliPair]:
    """SNLI pairs of one split (train, dev, test), rows without a gold label dropped."""
    folder = resolve_data_dir(data_dir)
    if folder is not None:
        return loaders.read_snli(locate("snli", split, folder))
    names = loaders.NLI_LABELS
    return [NliPair(r["premise"], r["hypothesis"], names[r["label"]])
            for r in _hub_rows("snli", split) if r["label"] in (0, 1, 2)]


def load_captions(source: str, split: str, data_dir: Path) -> list[Caption]:
    """Captions of flickr30k, flickr8k or coco (one split) from the local folder."""
    path = locate(source, split, data_dir)
    if source == "coco":
        return loaders.read_coco_json(path) if split == "val2017" else loaders.read_caption_lines(path)
    captions = loaders.read_flickr_captions(path)
    return captions


def flickr30k_images(split: str, data_dir: Path) -> set[str]:
    """Image names of one Flickr30k split (train, val, test_2016) from its image list."""
    path = locate_any(data_dir, [f"flickr30k/{split}_images.txt"])
    return {line.strip() for _, line in read_lines(path) if line.strip()}


def locate_any(data_dir: Path, names: list[str]) -> Path:
    path = find_file(data_dir, names)
    if path is None:
        raise DataError(f"none of {', '.join(names)} under {data_dir}")
    return path


def load_training_pairs(
    source: str, splits: tuple[str, ...], data_dir: Path | None, stsb_min_score: float,
    caption_pairs_per_image: int, passage_chars: int = 0,
) -> list[TrainingPair]:
    """The training pairs that one source contributes (see `mixture.py` for the whole mix)."""
    if source.startswith("file:"):
        return loaders.read_pair_file(Path(source[len("file:"):]).expanduser())
    if source.startswith("corpus:"):  # the user's documents: every pair kind they give, and
        # every sentence as an ICT query (a user's corpus is small; cap with corpus:PATH@N)
        articles = read_corpus_articles(Path(source[len("corpus:"):]).expanduser())
        return [pair for kind in passages.PAIR_KINDS
                for pair in passages.passage_pairs(articles, kind, passage_chars, "corpus",
                                                   f"corpus:{source[len('corpus:'):]}",
                                                   every_sentence=True)]
    if source == "snli":
        rows = [row for split in splits for row in load_snli(split, data_dir)]
        return loaders.nli_training_pairs(rows, source="snli")
    if source == "stsb":
        rows = [row for split in splits for row in load_stsb(split, data_dir)]
        return [TrainingPair(r.sentence1, r.sentence2, source="stsb")
                for r in rows if r.score >= stsb_min_score]
    if data_dir is None:
        raise DataError(f"{source}: no local data folder; set --data-dir or ${DATA_ENV} to a folder "
                        f"with {LAYOUT[source][splits[0]][0]} (the hub fallback covers snli and "
                        "stsb only)")
    if source in PASSAGE_SOURCES:
        articles = read_articles(locate(source, "all", data_dir))
        return passages.passage_pairs(articles, PASSAGE_SOURCES[source], passage_chars, source,
                                      "wikipedia")
    if source == "wikipedia":  # unlabelled: each sentence is its own positive (SimCSE)
        return [pair for split in splits
                for pair in loaders.read_self_pairs(locate(source, split, data_dir), source)]
    if source in ("quora", "mrpc"):
        reader = loaders.read_quora if source == "quora" else loaders.read_mrpc
        return [pair for split in splits for pair in reader(locate(source, split, data_dir))]
    captions = []
    for split in splits:
        if source == "flickr30k" and split != "all":
            images = flickr30k_images(split, data_dir)
            captions += [c for c in load_captions(source, "all", data_dir) if c.image in images]
        else:
            captions += load_captions(source, split, data_dir)
    return loaders.caption_training_pairs(captions, source, caption_pairs_per_image)


@functools.lru_cache(maxsize=2)
def read_articles(path: Path) -> tuple[passages.Article, ...]:
    """Articles of a WikiExtractor JSONL file (`id`, `title`, `text` with one paragraph a line);
    read once per process, since several passage sources share the file."""
    articles, bad = [], BadLines(path)
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            article = passages.parse_article(str(record["id"]), str(record.get("title") or ""),
                                             record["text"])
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            bad.add(number, f"not an article record ({type(error).__name__}: {error})")
            continue
        articles.append(article)
    bad.check(len(articles))
    return tuple(articles)


def read_corpus_articles(path: Path) -> list[passages.Article]:
    """The documents of a corpus file in any format `semsearch index` reads (text, JSONL, CSV,
    TSV, gzipped or not), as articles: a `title` field when the format has one, paragraphs one
    a line, Markdown headings as sections."""
    from semsearch.corpora import CorpusReader

    articles = [passages.parse_article(doc.id, str(doc.metadata.get("title") or ""), doc.text)
                for doc in CorpusReader(path)]
    if not articles:
        raise DataError(f"corpus {path} holds no documents; give a file that `semsearch index` "
                        "reads (text, JSONL, CSV or TSV)")
    return articles


def _hub_rows(name: str, split: str) -> list[dict]:
    hub_id = HUB[name]
    advice = (f"set ${DATA_ENV} or --data-dir to a folder in the official layout (e.g. "
              f"{LAYOUT[name][split][0]}) or connect to the Hugging Face hub")
    if not hub_reachable():
        raise DataError(f"{name} {split}: no local data folder (--data-dir / ${DATA_ENV} unset) "
                        f"and the Hugging Face hub is not reachable; {advice}")
    try:
        import datasets

        dataset = datasets.load_dataset(hub_id, split=HUB_SPLITS[split])
        return list(dataset)
    except Exception as error:  # noqa: BLE001 - any hub failure gets the same advice
        raise DataError(
            f"{name} {split}: no local data folder (--data-dir / ${DATA_ENV} unset) and the hub "
            f"copy {hub_id} could not be loaded ({type(error).__name__}); {advice}"
        ) from None


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers a TCP connect within `timeout` seconds (checked once;
    False under HF_HUB_OFFLINE / HF_DATASETS_OFFLINE), so an offline machine gets its error at
    once instead of after minutes of download retries."""
    if os.environ.get("HF_HUB_OFFLINE") == "1" or os.environ.get("HF_DATASETS_OFFLINE") == "1":
        return False
    host = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname
    try:
        socket.create_connection((host or "huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False
