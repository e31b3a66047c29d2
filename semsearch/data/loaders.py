"""Readers for the official distribution formats, one function per format, each taking a path.

Every reader raises DataError naming the file (and line) when the file is missing, empty or
malformed; a few stray bad lines in an otherwise sound file are skipped with a warning.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from semsearch.data.files import BadLines, read_lines
from semsearch.data.records import Caption, NliPair, ScoredPair, TrainingPair
from semsearch.errors import DataError

NLI_LABELS = ("entailment", "neutral", "contradiction")


def read_stsb(path: Path) -> list[ScoredPair]:
    """STS-B `sts-*.csv`: tab-separated, unquoted; fields 4, 5, 6 are score, sentence1, sentence2
    (some rows carry extra source columns after them)."""
    rows, bad = [], BadLines(path)
    for number, line in read_lines(path):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < 7:
            bad.add(number, f"expected at least 7 tab-separated fields, found {len(fields)}")
            continue
        try:
            score = float(fields[4])
        except ValueError:
            bad.add(number, f"score {fields[4]!r} is not a number")
            continue
        if not 0.0 <= score <= 5.0 or not fields[5].strip() or not fields[6].strip():
            bad.add(number, "score outside 0..5 or an empty sentence")
            continue
        rows.append(ScoredPair(fields[5].strip(), fields[6].strip(), score))
    bad.check(len(rows))
    return rows


def read_snli(path: Path) -> list[NliPair]:
    """SNLI 1.0 jsonl (`snli_1.0_*.jsonl[.gz]`); rows without consensus (`gold_label == "-"`)
    are dropped, as the dataset's authors advise."""
    rows, bad = [], BadLines(path)
    for number, line in read_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            label, premise, hypothesis = (
                record["gold_label"],
                record["sentence1"].strip(),
                record["sentence2"].strip(),
            )
        except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
            bad.add(number, f"not an SNLI record ({type(error).__name__}: {error})")
            continue
        if label == "-":
            continue
        if label not in NLI_LABELS or not premise or not hypothesis:
            bad.add(number, f"unknown gold_label {label!r} or empty sentence")
            continue
        rows.append(NliPair(premise, hypothesis, label))
    bad.check(len(rows))
    return rows


def read_flickr_captions(path: Path) -> list[Caption]:
    """Flickr8k / Flickr30k token files: `<image>.jpg#<k><TAB><caption>` (Flickr8k's first line has
    a space for the tab, so any whitespace after `#<k>` separates)."""
    rows, bad = [], BadLines(path)
    for number, line in read_lines(path):
        if not line.strip():
            continue
        key, _, text = line.partition("\t")
        if not text:
            key, _, text = line.partition(" ")
        image, hash_, k = key.partition("#")
        if not hash_ or not k.isdigit() or not text.strip():
            bad.add(number, "expected '<image>#<k><TAB><caption>'")
            continue
        rows.append(Caption(image, text.strip()))
    bad.check(len(rows))
    return rows


def read_coco_json(path: Path) -> list[Caption]:
    """COCO `captions_*.json[.gz]` annotations: `annotations[].image_id` and `.caption`."""
    text = "\n".join(line for _, line in read_lines(path))
    try:
        annotations = json.loads(text)["annotations"]
        rows = [Caption(str(a["image_id"]), a["caption"].strip()) for a in annotations]
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
        raise DataError(
            f"{path}: not a COCO captions file ({type(error).__name__}: {error})"
        ) from None
    rows = [row for row in rows if row.text]
    if not rows:
        raise DataError(f"{path}: no captions found")
    return rows


def read_caption_lines(path: Path, per_image: int = 5) -> list[Caption]:
    """Karpathy-split caption text (`coco_*_caps.txt`): one caption a line, `per_image`
    consecutive lines describe one image."""
    lines = [text.strip() for _, text in read_lines(path)]
    if not any(lines):
        raise DataError(f"{path}: empty caption file")
    if len(lines) % per_image:
        raise DataError(
            f"{path}: {len(lines)} lines is not a multiple of {per_image} captions per image"
        )
    return [Caption(f"{path.stem}:{i // per_image}", text) for i, text in enumerate(lines) if text]


def read_quora(path: Path) -> list[TrainingPair]:
    """Quora duplicate pairs: `q1<TAB>q2`, no header, every row a duplicate."""
    return _read_tab_pairs(path, columns=(0, 1), source="quora")


def read_mrpc(path: Path) -> list[TrainingPair]:
    """MRPC `msr_paraphrase_*.txt`: `Quality, #1 ID, #2 ID, #1 String, #2 String`, header optional;
    only paraphrases (Quality == 1) are kept."""
    rows, bad = [], BadLines(path)
    for number, line in read_lines(path):
        fields = line.split("\t")
        if not line.strip() or (number == 1 and fields[0].strip() == "Quality"):
            continue
        if len(fields) != 5 or fields[0] not in ("0", "1"):
            bad.add(number, "expected 'Quality<TAB>#1 ID<TAB>#2 ID<TAB>#1 String<TAB>#2 String'")
            continue
        if fields[0] == "1":
            rows.append(TrainingPair(fields[3].strip(), fields[4].strip(), source="mrpc"))
    bad.check(len(rows))
    return rows


def read_pair_file(path: Path) -> list[TrainingPair]:
    """A user's own pairs: TSV (`anchor<TAB>positive[<TAB>negative]`, an optional header naming
    `anchor`) or JSONL (`{"anchor": .., "positive": .., "negative": ..}`)."""
    path = Path(path)
    if path.name.endswith((".jsonl", ".jsonl.gz")):
        rows, bad = [], BadLines(path)
        for number, line in read_lines(path):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                anchor, positive = record["anchor"].strip(), record["positive"].strip()
                negative = (record.get("negative") or "").strip() or None
            except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as error:
                bad.add(number, f"expected an object with anchor and positive ({error})")
                continue
            if not anchor or not positive:
                bad.add(number, "empty anchor or positive")
                continue
            rows.append(TrainingPair(anchor, positive, negative, source=path.name))
        bad.check(len(rows))
        return rows
    return _read_tab_pairs(path, columns=(0, 1, 2), source=path.name, header="anchor")


def _read_tab_pairs(
    path: Path, columns: tuple[int, ...], source: str, header: str | None = None
) -> list[TrainingPair]:
    rows, bad = [], BadLines(path)
    for number, line in read_lines(path):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split("\t")]
        if number == 1 and header and fields[0].lower() == header:
            continue
        if len(fields) < 2 or not fields[0] or not fields[1]:
            bad.add(number, "expected at least two non-empty tab-separated fields")
            continue
        negative = fields[2] if len(columns) > 2 and len(fields) > 2 and fields[2] else None
        rows.append(TrainingPair(fields[columns[0]], fields[columns[1]], negative, source=source))
    bad.check(len(rows))
    return rows


def read_self_pairs(path: Path, source: str) -> list[TrainingPair]:
    """Unlabelled sentences, one a line, each paired with itself: the two passes see different
    dropout masks, which is the whole training signal (SimCSE, Gao et al. 2021)."""
    rows = [TrainingPair(text.strip(), text.strip(), source=source)
            for _, text in read_lines(path) if text.strip()]
    if not rows:
        raise DataError(f"{path}: no sentences")
    return rows


def nli_training_pairs(rows: list[NliPair], source: str = "snli") -> list[TrainingPair]:
    """Entailment pairs, each with a contradiction of the same premise as hard negative when one
    exists; the premise is the group key (its other hypotheses must not share a batch)."""
    contradictions: dict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row.label == "contradiction":
            contradictions[row.premise].append(row.hypothesis)
    pairs = []
    for row in rows:
        if row.label != "entailment":
            continue
        negatives = contradictions.get(row.premise)
        negative = negatives[len(pairs) % len(negatives)] if negatives else None
        pairs.append(TrainingPair(row.premise, row.hypothesis, negative, source, row.premise))
    return pairs


def caption_training_pairs(
    captions: list[Caption], source: str, pairs_per_image: int = 5
) -> list[TrainingPair]:
    """Pairs of captions of one image, the image as group key. With five captions, pairs
    (0,1), (1,2), .. (4,0) use each caption twice; `pairs_per_image` up to 10 takes all of them."""
    by_image: dict[str, list[str]] = defaultdict(list)
    for caption in captions:
        by_image[caption.image].append(caption.text)
    pairs = []
    for image, texts in by_image.items():
        n = len(texts)
        if n < 2:
            continue
        candidates = [(i, (i + step) % n) for step in range(1, n // 2 + 1) for i in range(n)]
        seen, chosen = set(), []
        for i, j in candidates:
            key = (min(i, j), max(i, j))
            if key not in seen:
                seen.add(key)
                chosen.append((i, j))
        for i, j in chosen[:pairs_per_image]:
            pairs.append(TrainingPair(texts[i], texts[j], None, source, f"{source}:{image}"))
    return pairs
