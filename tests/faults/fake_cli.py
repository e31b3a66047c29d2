"""Run the real `semsearch` CLI in a subprocess with the model-free HashEmbedder standing in for
the encoder (the encoder is not what these tests exercise). $FAKE_ENCODE_DELAY seconds of sleep
a batch widen the windows the fault tests kill a writer in; $FAKE_MAX_SEQ_LEN sets the window;
$FAKE_KILL_AT=embed|index_written|between_renames|before_latest makes the process kill -9
itself at that point of a write, first writing the point's name to $FAKE_KILL_MARKER (if set);
$FAKE_KILL_AT=checkpoint kills it just after a build's $FAKE_KILL_CHECKPOINT-th recorded
checkpoint (of every $FAKE_CHECKPOINT_DOCUMENTS documents); $FAKE_ENCODE_LOG gets a line a batch
encoded, its text count (to see what a resumed build encodes again).

    python tests/faults/fake_cli.py index corpus.txt --out idx
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fakes.py

from fakes import HashEmbedder  # noqa: E402


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class SlowHashEmbedder(HashEmbedder):
    def encode(self, texts, batch_size=64, progress=False):
        log = os.environ.get("FAKE_ENCODE_LOG")
        if log:
            with open(log, "a") as handle:
                handle.write(f"{len(texts)}\n")
        if os.environ.get("FAKE_KILL_AT") == "embed":
            _reached("embed")
        delay = float(os.environ.get("FAKE_ENCODE_DELAY") or 0)
        if delay:
            marker = os.environ.get("FAKE_ENCODE_MARKER")
            if marker:
                Path(marker).touch()  # tell the test the writer is embedding now
            time.sleep(delay)
        return super().encode(texts, batch_size, progress)


def load_embedder(model=None, **options):
    return SlowHashEmbedder(max_seq_len=int(os.environ.get("FAKE_MAX_SEQ_LEN") or 32))


def _reached(point: str) -> None:
    """Record that the kill point was reached (the test checks the kill happened there), then
    kill -9 this process."""
    marker = os.environ.get("FAKE_KILL_MARKER")
    if marker:
        Path(marker).write_text(point)
    _die()


def _arm(point: str) -> None:
    """Patch the write path so the process kill -9s itself at `point`."""
    import semsearch.index.folder
    import semsearch.index.writer

    if point == "index_written":
        original = semsearch.index.writer.IndexWriter.write_index

        def write_then_die(self, index):
            original(self, index)
            _reached(point)

        semsearch.index.writer.IndexWriter.write_index = write_then_die
    elif point == "between_renames":
        rename = os.rename

        def rename_then_die(source, target):
            rename(source, target)
            if semsearch.index.folder.OLD_INFIX in Path(target).name:
                _reached(point)

        semsearch.index.folder.os.rename = rename_then_die
    elif point == "before_latest":
        semsearch.index.writer.mark_latest = lambda folder: _reached(point)
    elif point == "checkpoint":
        import semsearch.build_resume

        save = semsearch.build_resume.Progress.save
        wanted = int(os.environ.get("FAKE_KILL_CHECKPOINT") or 1)
        saved = []

        def save_then_die(self, stats, **done):
            save(self, stats, **done)
            saved.append(stats.documents_read)
            if len(saved) == wanted:
                _reached(point)

        semsearch.build_resume.Progress.save = save_then_die
    elif point != "embed":
        raise SystemExit(f"unknown FAKE_KILL_AT {point!r}")


def main() -> None:
    import semsearch.embedder
    from semsearch.cli import main as cli

    semsearch.embedder.load_embedder = load_embedder
    if os.environ.get("FAKE_CHECKPOINT_DOCUMENTS"):
        import semsearch.build_resume

        semsearch.build_resume.CHECKPOINT_DOCUMENTS = int(os.environ["FAKE_CHECKPOINT_DOCUMENTS"])
    if os.environ.get("FAKE_KILL_AT"):
        _arm(os.environ["FAKE_KILL_AT"])
    cli(prog_name="semsearch")


if __name__ == "__main__":
    main()
