"""What every command shares: --version, -q/-v, progress bars only on a terminal, a library
logger without handlers."""

import subprocess
import sys

import pytest
from click.testing import CliRunner
from fakes import HashEmbedder

from semsearch import __version__
from semsearch.cli import COMMANDS, LazyGroup, common, main


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_version():
    assert run("--version").output.strip().endswith(__version__)


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_quiet_and_verbose(name):
    command = LazyGroup().get_command(None, name)
    if command is None:
        pytest.skip(f"{name} is not in this tree yet")
    help_text = run(name, "--help").output
    assert "-q, --quiet" in help_text and "-v, --verbose" in help_text
    assert "Examples:" in help_text


def test_quiet_silences_messages_but_not_results(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEXES", str(tmp_path / "indexes"))
    monkeypatch.setattr("semsearch.embedder.load_embedder",
                        lambda model, **options: HashEmbedder())
    (tmp_path / "pets.txt").write_text("cats purr\ndogs bark\n")
    runner = CliRunner()
    loud = runner.invoke(main, ["index", "pets.txt"])
    assert loud.exit_code == 0 and "wrote" in loud.stderr
    quiet = runner.invoke(main, ["index", "pets.txt", "-q"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    also_quiet = runner.invoke(main, ["-q", "query", "cats", "-k", "1"])
    assert also_quiet.stderr == "" and "cats purr" in also_quiet.stdout
    assert "wrote" in runner.invoke(main, ["index", "pets.txt"]).stderr  # reset each run


def test_progress_only_on_a_terminal_and_not_with_tqdm_disable(monkeypatch):
    common.set_verbosity()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True, raising=False)
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert common.progress_enabled()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not common.progress_enabled()
    monkeypatch.setattr(sys.stderr, "isatty", lambda: False, raising=False)
    monkeypatch.delenv("TQDM_DISABLE")
    assert not common.progress_enabled()


def test_the_library_logs_through_a_named_logger_without_handlers():
    code = ("import logging, semsearch.indexing, semsearch.querying, semsearch.embed_corpus, semsearch.model_card; "
            "import semsearch.serve; logger = logging.getLogger('semsearch'); "
            "print(len(logger.handlers), logging.getLogger().handlers == [])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "True"]
