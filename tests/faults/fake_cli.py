"""Run the real `semsearch` CLI in a subprocess with the model-free HashEmbedder standing in for
the encoder (the encoder is not what these tests exercise). $FAKE_ENCODE_DELAY seconds of sleep
a batch widen the windows the fault tests kill a writer in; $FAKE_MAX_SEQ_LEN sets the window.

    python tests/faults/fake_cli.py index corpus.txt --out idx
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for fakes.py

from fakes import HashEmbedder  # noqa: E402


class SlowHashEmbedder(HashEmbedder):
    def encode(self, texts, batch_size=64, progress=False):
        delay = float(os.environ.get("FAKE_ENCODE_DELAY") or 0)
        if delay:
            marker = os.environ.get("FAKE_ENCODE_MARKER")
            if marker:
                Path(marker).touch()  # tell the test the writer is embedding now
            time.sleep(delay)
        return super().encode(texts, batch_size, progress)


def load_embedder(model=None, device=None, texts=None, precision="fp32"):
    return SlowHashEmbedder(max_seq_len=int(os.environ.get("FAKE_MAX_SEQ_LEN") or 32))


def main() -> None:
    import semsearch.search
    from semsearch.cli import main as cli

    semsearch.search.load_embedder = load_embedder
    cli(prog_name="semsearch")


if __name__ == "__main__":
    main()
