"""Evaluation: metrics (pure), the TF-IDF baseline, readers for pairs and BEIR folders, the
evaluation runner, its report, and plots. `semsearch.eval.runner.evaluate` is the entry point."""
