"""The encoder as an ONNX graph for ONNX Runtime: token ids and mask in, unit vectors out.

`export_onnx(folder)` writes `onnx/model-fp32.onnx` and `onnx/model-int8.onnx` into the model
folder. Each file carries, in its metadata, the fingerprint of the `model.safetensors` it came
from; `semsearch.encoder.onnx_encoder` refuses (or re-exports) a file whose fingerprint is not the
weights' own, so a retrained model never runs on a stale graph.

The graph is traced from `BertPattern`, a module that computes exactly `model.Encoder.forward`
but in the shape of Hugging Face's BERT (separate q, k, v projections, an additive -10000 mask,
Erf GELU): the shape ONNX Runtime's transformer optimizer recognises, so it fuses attention,
LayerNorm (with the residual add) and GELU (with its bias) into its own kernels. Mean pooling and
L2 normalisation are inside the graph. int8 is ONNX Runtime's dynamic quantization (weights per
output channel, activations per batch) of every matrix product but each block's feed-forward
output (its input, the GELU output, has outliers that per-batch scales crush: as in
`sentence_encoder.quantize_int8`).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from semsearch.encoder.model import Encoder, EncoderConfig
from semsearch.encoder.onnx_files import FINGERPRINT_KEY, ONNX_DIR, onnx_path
from semsearch.encoder.store import CONFIG, WEIGHTS, fingerprint, load_weights, read_config
from semsearch.errors import ModelError

# opset 17: LayerNormalization is a standard op there, and the ORT optimizer's fusions are
# written against graphs of this era (HF's exports)
OPSET = 17


class BertPattern(nn.Module):
    """`Encoder.forward` rewritten op for op in Hugging Face BERT's shape, for tracing."""

    def __init__(self, model: Encoder) -> None:
        super().__init__()
        config = model.config
        if config.experts:
            raise ModelError("ONNX export covers dense feed-forward models; this one is a "
                             "mixture of experts: use --backend torch")
        self.config = config
        self.heads, self.head = config.heads, config.hidden // config.heads
        self.token_embedding = model.token_embedding
        self.position_embedding = model.position_embedding
        self.embedding_norm = model.embedding_norm
        self.final_norm = model.final_norm
        self.blocks = nn.ModuleList()
        H = config.hidden
        for block in model.blocks:
            qkv = block.attention.qkv
            layer = nn.Module()
            for i, name in enumerate(("query", "key", "value")):
                linear = nn.Linear(H, H)
                linear.weight.data = qkv.weight.data[i * H:(i + 1) * H].clone()
                linear.bias.data = qkv.bias.data[i * H:(i + 1) * H].clone()
                setattr(layer, name, linear)
            layer.attention_out = block.attention.out
            layer.norm1, layer.norm2 = block.norm1, block.norm2
            layer.ff_in, layer.ff_out = block.mlp[0], block.mlp[2]
            self.blocks.append(layer)

    def _attention(self, layer: nn.Module, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        B, T, H = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # (B, T, H) -> (B, heads, T, head)
            return t.view(B, T, self.heads, self.head).permute(0, 2, 1, 3)

        q, k, v = heads(layer.query(x)), heads(layer.key(x)), heads(layer.value(x))
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(self.head) + bias
        y = torch.matmul(torch.softmax(scores, dim=-1), v)  # (B, heads, T, head)
        return layer.attention_out(y.permute(0, 2, 1, 3).contiguous().view(B, T, H))

    def _feed_forward(self, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
        h = layer.ff_in(x)
        return layer.ff_out(h * 0.5 * (1.0 + torch.erf(h / math.sqrt(2.0))))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        T = input_ids.shape[1]
        positions = torch.arange(T, dtype=torch.long, device=input_ids.device).unsqueeze(0)
        x = self.token_embedding(input_ids) + self.position_embedding(positions)
        x = self.embedding_norm(x)
        mask = attention_mask.to(x.dtype)
        bias = (1.0 - mask[:, None, None, :]) * -10000.0  # (B, 1, 1, T), BERT's extended mask
        for layer in self.blocks:
            if self.config.prenorm:
                x = x + self._attention(layer, layer.norm1(x), bias)
                x = x + self._feed_forward(layer, layer.norm2(x))
            else:
                x = layer.norm1(x + self._attention(layer, x, bias))
                x = layer.norm2(x + self._feed_forward(layer, x))
        x = self.final_norm(x)
        summed = (x * mask.unsqueeze(-1)).sum(1)
        pooled = summed / mask.sum(1, keepdim=True).clamp(min=1.0)
        return F.normalize(pooled, dim=-1)


def load_encoder(folder: Path) -> Encoder:
    """The folder's fp32 torch Encoder, in eval mode on the CPU."""
    config = read_config(folder)
    try:
        model = Encoder(EncoderConfig(**config["model"]))
        model.load_state_dict(load_weights(folder / WEIGHTS))
    except (KeyError, TypeError, ValueError, RuntimeError) as error:
        raise ModelError(f"{folder}: weights do not match {CONFIG} ({error}); "
                         "retrain the model") from None
    return model.eval()


def export_onnx(folder: str | Path, precisions: tuple[str, ...] = ("fp32", "int8"),
                optimize: bool = True) -> dict[str, Any]:
    """Export the model folder's encoder to ONNX (fp32, then int8 from it) inside the folder.

    Each file is written under a temporary name and renamed into place, so a crash leaves no
    half-written graph. Returns what was written: paths, fused-op counts, the fingerprint.
    """
    import onnx

    folder = Path(folder)
    if not (folder / WEIGHTS).is_file():
        raise ModelError(f"{folder}: {WEIGHTS} is missing; train or import a model first")
    weights_fingerprint = fingerprint(folder / WEIGHTS)
    model = load_encoder(folder)
    out_dir = folder / ONNX_DIR
    try:
        out_dir.mkdir(exist_ok=True)
    except OSError as error:
        raise ModelError(f"{out_dir}: cannot write the ONNX graphs there ({error.strerror}); "
                         "export a copy of the model folder you own") from None
    report: dict[str, Any] = {"model": str(folder), "fingerprint": weights_fingerprint,
                              "opset": OPSET, "files": {}}
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".export.") as scratch:
        raw = Path(scratch) / "raw.onnx"
        _trace(model, raw)
        onnx.checker.check_model(str(raw), full_check=True)
        graph = Path(scratch) / "fp32.onnx"
        fused = _optimize(raw, graph, model.config) if optimize else _copy(raw, graph)
        report["fused_ops"] = fused
        if "fp32" in precisions:
            _publish(graph, onnx_path(folder, "fp32"), weights_fingerprint, "fp32")
            report["files"]["fp32"] = str(onnx_path(folder, "fp32"))
        if "int8" in precisions:
            quantized = Path(scratch) / "int8.onnx"
            report["int8_kept_fp32"] = _quantize(graph if graph.exists()
                                                 else onnx_path(folder, "fp32"), quantized)
            _publish(quantized, onnx_path(folder, "int8"), weights_fingerprint, "int8")
            report["files"]["int8"] = str(onnx_path(folder, "int8"))
    return report


def _trace(model: Encoder, path: Path) -> None:
    """Trace `BertPattern(model)` to ONNX with dynamic batch and sequence axes."""
    import warnings

    pattern = BertPattern(model).eval()
    T = min(8, model.config.max_seq_len)
    ids = torch.ones(2, T, dtype=torch.long)
    mask = torch.ones(2, T, dtype=torch.long)
    mask[1, T // 2:] = 0
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            pattern, (ids, mask), str(path), input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"], opset_version=OPSET, dynamo=False,
            dynamic_axes={"input_ids": {0: "batch", 1: "sequence"},
                          "attention_mask": {0: "batch", 1: "sequence"},
                          "sentence_embedding": {0: "batch"}},
            do_constant_folding=True,
        )


def _optimize(raw: Path, out: Path, config: EncoderConfig) -> dict[str, int]:
    """ONNX Runtime's transformer optimizer (fused attention, LayerNorm, GELU) on `raw`."""
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
    optimized = optimize_model(str(raw), model_type="bert", num_heads=config.heads,
                               hidden_size=config.hidden, opt_level=0, use_gpu=False)
    optimized.save_model_to_file(str(out))
    return {op: count for op, count in optimized.get_fused_operator_statistics().items() if count}


def _copy(raw: Path, out: Path) -> dict[str, int]:
    os.replace(raw, out)
    return {}


def _quantize(graph: Path, out: Path) -> list[str]:
    """ORT dynamic int8 (per-channel weights) of every MatMul/Attention but the feed-forward
    outputs (the MatMuls fed by a GELU), which stay fp32. Returns the names kept fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = onnx.load(str(graph))
    producer = {output: node for node in model.graph.node for output in node.output}
    gelu_ops = {"Gelu", "BiasGelu", "FastGelu", "Mul"}
    kept = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        source = producer.get(node.input[0])
        if source is not None and source.op_type in gelu_ops and _is_gelu(source, producer):
            kept.append(node.name)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs a generic "consider pre-processing" hint
    try:
        quantize_dynamic(str(graph), str(out), per_channel=True, weight_type=QuantType.QInt8,
                         nodes_to_exclude=kept,
                         # contrib ops (fused Attention, SkipLayerNormalization) defeat ONNX shape
                         # inference; every tensor they feed a MatMul is float32
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
    finally:
        root.setLevel(level)
    return kept


def _is_gelu(node: Any, producer: dict[str, Any]) -> bool:
    """A fused GELU op, or the Mul that ends an unfused Erf GELU (x * 0.5 * (1 + erf(x/√2)))."""
    if node.op_type != "Mul":
        return True
    seen, frontier = 0, [node]
    while frontier and seen < 6:  # the Erf sits within a few nodes above the final Mul
        current = frontier.pop()
        seen += 1
        if current.op_type == "Erf":
            return True
        frontier += [producer[i] for i in current.input if i in producer]
    return False


def _publish(source: Path, target: Path, weights_fingerprint: str, precision: str) -> None:
    """Stamp the weights' fingerprint into `source`'s metadata and move it to `target`."""
    import onnx

    model = onnx.load(str(source))
    del model.metadata_props[:]
    for key, value in ((FINGERPRINT_KEY, weights_fingerprint), ("semsearch_precision", precision)):
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    tmp = target.with_name(target.name + ".tmp")
    onnx.save(model, str(tmp))
    os.replace(tmp, target)
