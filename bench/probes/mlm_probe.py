"""Experiment, not a feature: does masked-language-model pre-training help the pair training?

MLM-pretrains the production shape (15% of tokens; 80/10/10 mask/random/keep; a tied output
layer) on the first 350K Wikipedia sentences plus the mixture's own sentences, then runs the
real `train_model` from those weights with the same tokenizer, and scores STS-B dev and test.
It reaches into the trainer (swapping its tokenizer and model factory), so it lives here, not
in the package. One run on an H200 (README "Results"): 3000 MLM steps of 256 sentences, then
the 30K-pair batch-64 recipe: dev 74.66 against 74.41 without, test 68.11 against 68.55.

    SEMSEARCH_DATA=../shared/data python bench/probes/mlm_probe.py mlm3k 3000 \
        data.max_pairs=30000 train.batch_size=64 train.lr=1e-3 train.grad_cache_chunk=0
"""
import gzip
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import semsearch.encoder.train as T
from semsearch.data import build_mixture, load_stsb
from semsearch.encoder import SentenceEncoder
from semsearch.encoder.device import autocast, pick_device
from semsearch.encoder.model import Encoder
from semsearch.encoder.presets import apply_overrides, preset
from semsearch.encoder.tokenizer import Tokenizer
from semsearch.eval.runner import sts_scores

name, mlm_steps = sys.argv[1], int(sys.argv[2])
overrides = dict(a.split("=", 1) for a in sys.argv[3:])
data_dir = Path(os.environ.get("SEMSEARCH_DATA", "../shared/data"))
config = apply_overrides(preset("production"), overrides)
device = pick_device("auto")
torch.manual_seed(0)
t0 = time.perf_counter()
pairs, _ = build_mixture(config.data, data_dir, seed=0)
pair_texts = list({t for p in pairs for t in (p.anchor, p.positive, p.negative) if t})
with gzip.open(data_dir / "wikipedia/sentences.txt.gz", "rt", encoding="utf-8") as handle:
    wiki = [line.rstrip("\n") for _, line in zip(range(350_000), handle)]
wiki = [w for w in wiki if 20 <= len(w) <= 300]
tokenizer = Tokenizer.train(pair_texts + wiki, config.tokenizer.vocab_size, config.tokenizer.lowercase)
mcfg = config.model.__class__(**{**config.model.__dict__, "vocab_size": tokenizer.vocab_size})
model = Encoder(mcfg).to(device)
corpus = tokenizer.encode(pair_texts + wiki, mcfg.max_seq_len)
print(f"[{name}] {len(pair_texts)} pair sentences, {len(wiki)} wiki, vocab {tokenizer.vocab_size}",
      flush=True)

H = mcfg.hidden
head = nn.Sequential(nn.Linear(H, H), nn.GELU(), nn.LayerNorm(H)).to(device)
bias = nn.Parameter(torch.zeros(tokenizer.vocab_size, device=device))
params = list(model.parameters()) + list(head.parameters()) + [bias]
opt = torch.optim.AdamW(params, lr=float(overrides.get("mlm_lr", 1e-3)), weight_decay=0.01)
warm = max(1, mlm_steps // 10)
sched = torch.optim.lr_scheduler.LambdaLR(
    opt, lambda s: min((s + 1) / warm, 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(1, mlm_steps))))))
rng = np.random.default_rng(0)
mask_id = tokenizer.inner.token_to_id("[MASK]")
B = 256
model.train()
for step in range(mlm_steps):
    idx = rng.integers(0, len(corpus), B)
    seqs = [corpus[i] for i in idx]
    L = max(map(len, seqs))
    ids = torch.zeros(B, L, dtype=torch.long)
    for r, s in enumerate(seqs):
        ids[r, : len(s)] = torch.tensor(s)
    att = ids != 0
    special = (ids < 5)
    choose = (torch.rand(B, L) < 0.15) & ~special
    labels = torch.where(choose, ids, torch.full_like(ids, -100))
    roll = torch.rand(B, L)
    inp = ids.clone()
    inp[choose & (roll < 0.8)] = mask_id
    rnd = choose & (roll >= 0.8) & (roll < 0.9)
    inp[rnd] = torch.randint(5, tokenizer.vocab_size, (int(rnd.sum()),))
    inp, att, labels = inp.to(device), att.to(device), labels.to(device)
    with autocast(device, "auto"):
        states = model.token_states(inp, att)
        sel = labels != -100
        h = head(states[sel])
        logits = h @ model.token_embedding.weight.t() + bias
        loss = F.cross_entropy(logits.float(), labels[sel])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()
    sched.step()
    if step % 500 == 0 or step == mlm_steps - 1:
        print(f"[{name}] mlm step {step} loss {loss.item():.3f} {time.perf_counter()-t0:.0f}s", flush=True)
mlm_s = time.perf_counter() - t0

# pair training from the pretrained weights, same tokenizer
T.Tokenizer = type("Tok", (), {"train": staticmethod(lambda *a, **k: tokenizer),
                               "load": staticmethod(Tokenizer.load)})
T.Encoder = lambda cfg: model
pair_overrides = {k: v for k, v in overrides.items() if k != "mlm_lr"}
config = apply_overrides(preset("production"), pair_overrides)
out = Path("runs") / name
summary = T.train_model(config, out, data_dir=data_dir, overwrite=True, progress=False,
                        log=lambda m: print(f"[{name}] {m}", flush=True))
enc = SentenceEncoder.load(out)
scores = {s: sts_scores(enc.encode, load_stsb(s, data_dir))["spearman"] for s in ("dev", "test")}
row = {"name": name, "mlm_steps": mlm_steps, "overrides": overrides, "mlm_minutes": round(mlm_s / 60, 2),
       "train_minutes": round(summary["seconds"] / 60, 2), "steps": summary["steps"],
       "stsb_dev_spearman": scores["dev"], "stsb_test_spearman": scores["test"]}
print(json.dumps(row), flush=True)
with open(f"runs/{name}.jsonl", "a") as f:
    f.write(json.dumps(row) + "\n")
