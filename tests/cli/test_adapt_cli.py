import json

from click.testing import CliRunner

from semsearch.cli import main
from semsearch.encoder.store import load_weights

PASSAGE = ("Gradient descent updates the weights against the gradient of the loss. The step size "
           "is called the learning rate. Too large a step makes the loss diverge. Too small a "
           "step makes training slow.")


def run(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def write_corpus(path, count=80):
    rows = [{"id": f"d{i}", "title": f"Topic {i}", "text": f"{PASSAGE} Note {i} ends here now."}
            for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_adapt_continues_a_model_on_corpus_pairs(tmp_path, tiny_model_dir, data_dir):
    corpus = write_corpus(tmp_path / "docs.jsonl")
    out = tmp_path / "adapted"
    result = run("adapt", str(tiny_model_dir), "--corpus", str(corpus), "--out", str(out),
                 "--set", "train.batch_size=8", "--data-dir", str(data_dir), "-q", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["adapted_from"] == str(tiny_model_dir) and summary["steps"] > 0
    config = json.loads((out / "config.json").read_text())
    assert config["init_from"] == str(tiny_model_dir)
    assert config["data"]["sources"] == [f"corpus:{corpus.resolve()}"]
    assert config["model"] == json.loads((tiny_model_dir / "config.json").read_text())["model"]
    assert (out / "tokenizer.json").read_text() == (tiny_model_dir / "tokenizer.json").read_text()
    before = load_weights(tiny_model_dir / "model.safetensors")
    after = load_weights(out / "model.safetensors")
    assert any(not before[k].equal(after[k]) for k in before)


def test_adapt_refuses_to_overwrite_its_model(tmp_path, tiny_model_dir):
    corpus = write_corpus(tmp_path / "docs.jsonl")
    result = run("adapt", str(tiny_model_dir), "--corpus", str(corpus), "--out",
                 str(tiny_model_dir))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "is MODEL itself" in result.output


def test_train_corpus_adds_a_passage_source(tmp_path):
    corpus = write_corpus(tmp_path / "docs.jsonl", count=2)
    result = run("train", "--preset", "tiny", "--corpus", str(corpus), "--show-config")
    sources = json.loads(result.output)["data"]["sources"]
    assert sources[-1] == f"corpus:{corpus.resolve()}"
