"""The layers hold: the index never loads torch, and --help never loads faiss or torch."""

import subprocess
import sys


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return set(output.stdout.split())


def test_the_index_and_corpus_layers_do_not_import_torch():
    modules = loaded_after("import semsearch.index, semsearch.corpora, semsearch.indexing, semsearch.querying")
    assert "faiss" in modules and "torch" not in modules and "click" not in modules


def test_index_commands_help_is_light():
    modules = loaded_after(
        "from click.testing import CliRunner; from semsearch.cli import main; "
        "[CliRunner().invoke(main, [c, '--help']) for c in ('index', 'query', 'remove')]"
    )
    assert "faiss" not in modules and "torch" not in modules


def test_only_the_index_package_takes_a_write_apart():
    """Every writer goes through semsearch.index.writer.IndexWriter: no module outside
    semsearch/index (nor a benchmark) locks, stages, cleans up, swaps or moves the pointer."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    steps = ("staged_folder", "index_writer", "clean_stale", "check_replaceable", "mark_latest")
    outside = [path for folder in ("semsearch", "bench") for path in (root / folder).rglob("*.py")
               if (root / "semsearch" / "index") not in path.parents]
    offenders = [f"{path.relative_to(root)}: {step}" for path in outside
                 for step in steps if step in path.read_text(encoding="utf-8")]
    assert outside and offenders == []
