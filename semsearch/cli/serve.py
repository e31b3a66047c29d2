"""`semsearch serve`: search and embeddings over HTTP (FastAPI on uvicorn)."""

from __future__ import annotations

import click

from semsearch.cli.common import backend_option, info, precision_option, verbosity

EXAMPLES = """\b
Examples:
  semsearch serve                                  # the latest index, on 127.0.0.1:8000
  semsearch serve --index indexes/docs --port 8080
  SEMSEARCH_API_KEY=secret semsearch serve --workers 4
  semsearch serve --backend onnx --precision int8  # big /v1/embeddings batches, faster
  curl 'http://127.0.0.1:8000/search?q=ocean+tides&k=3'
  curl http://127.0.0.1:8000/v1/embeddings -H 'Content-Type: application/json' \\
       -d '{"input": ["hello world"], "model": "semsearch"}'
"""


@click.command(epilog=EXAMPLES)
@click.option("--index", "index_dir", default=None, metavar="DIR",
              help="Index folder, or a name under indexes/ (default: the latest; without any "
              "index only /v1/embeddings answers).")
@click.option("--model", default=None, metavar="DIR",
              help="Model folder (default: the model the index was built with).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the server to the network.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="Worker processes, each with its own copy of the model and index.")
@click.option("--api-key", default=None, envvar="SEMSEARCH_API_KEY", show_envvar=True,
              help="Require this key (Authorization: Bearer KEY) on every endpoint but /health.")
@click.option("--max-texts", default=64, show_default=True, type=click.IntRange(min=1),
              help="Texts a request may hold (queries or embedding inputs).")
@click.option("--max-chars", default=4096, show_default=True, type=click.IntRange(min=1),
              help="Characters a text may have.")
@click.option("--max-k", default=100, show_default=True, type=click.IntRange(min=1),
              help="Documents a query may ask for.")
@click.option("--device", default="auto", show_default=True,
              help="cuda, mps, cpu, or auto (the numpy path on a CPU, as `semsearch query`).")
@click.option("--rescore", "rescore_model", default=None, metavar="MODEL",
              help="A second phase: MODEL re-scores each query's top documents (default: the "
              "one the index records, if any); a request turns it off with rescore=false.")
@click.option("--no-rescore", is_flag=True,
              help="No second phase, even where the index records a rescoring model.")
@backend_option
@precision_option
def serve(index_dir, model, host, port, workers, api_key, max_texts, max_chars, max_k, device,
          rescore_model, no_rescore, backend, precision):
    """Serve an index and its model over HTTP until Ctrl-C.

    \b
    GET  /search?q=TEXT&k=5   the hits `semsearch query --json` prints
    POST /search              {"queries": [...], "k": 5}
    POST /v1/embeddings       OpenAI-compatible: {"input": [...], "model": "..."}
    GET  /health              model, index, uptime (no key needed)
    GET  /                    a search page;  GET /docs  the OpenAPI page
    """
    import os

    from semsearch.serve import require_serve_extra

    require_serve_extra()
    import uvicorn

    from semsearch.serve.app import CONFIG_ENV, create_app
    from semsearch.serve.state import Limits, ServeConfig

    if no_rescore and rescore_model:
        raise click.UsageError("give --rescore MODEL or --no-rescore, not both")
    config = ServeConfig(index=index_dir, model=model,
                         rescore="none" if no_rescore else rescore_model,
                         device=None if device == "auto" else device, backend=backend,
                         precision=precision, api_key=api_key or None,
                         limits=Limits(max_texts=max_texts, max_chars=max_chars, max_k=max_k))
    if host not in ("127.0.0.1", "localhost", "::1") and not config.api_key:
        info(f"warning: listening on {host} without --api-key; anyone who can reach it can use it")
    # load here so a bad --index or --model fails with one line before the server starts
    app = create_app(config)
    # -q: errors only; -v: uvicorn's startup lines and an access log line a request
    said = verbosity()
    level = "error" if said["quiet"] else ("info" if said["verbose"] else "warning")
    logs = {"log_level": level, "access_log": bool(said["verbose"])}
    served = app.state.served
    model = (f"model {served.embedder.name}" if served.embedder is not None
             else "no model (BM25 alone)")
    second = (f", re-scoring with {served.rescorer.name}" if served.rescorer is not None
              else "")
    info(f"serving {served.index_dir or 'no index (embeddings only)'} with {model}{second} on "
         f"http://{host}:{port}/ (Ctrl-C stops)")
    if workers == 1:
        uvicorn.run(app, host=host, port=port, **logs)
        return
    app.state.served.close()  # each worker loads its own copy
    os.environ[CONFIG_ENV] = config.to_env()
    uvicorn.run("semsearch.serve.app:create_app", factory=True, host=host, port=port,
                workers=workers, **logs)
