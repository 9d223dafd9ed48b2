"""Sentence encoders for frozen features: sentence-transformers, optionally quantized.

Every mode returns ``(n, d)`` float32 rows of unit norm, pooled exactly as the
sentence-transformers model pools (its own pooling modules run on the token states) and
normalised in float32. ``QUANTIZE`` modes:

* ``"none"``: the model as sentence-transformers ships it (fp32).
* ``"int8"``: PyTorch dynamic quantization of every ``nn.Linear`` (int8 weights, one
  scale per output channel; activations quantized per batch at run time), after Jacob et
  al. (2018), "Quantization and Training of Neural Networks for Efficient
  Integer-Arithmetic-Only Inference", as ``torch.ao.quantization.quantize_dynamic`` does
  it. No extra dependency, but only about 1.5x faster than fp32 on two cores and the
  rows drift from fp32 (mean cosine about 0.98).
* ``"onnx-int8"``: the transformer exported to ONNX once (BERT models get ONNX
  Runtime's fused attention, LayerNorm and GELU ops), its ``MatMul`` and attention
  weights quantized to int8 per output channel with ONNX Runtime's dynamic quantization
  (``onnxruntime.quantization.quantize_dynamic``; uint8 activations quantized per batch,
  int8 GEMMs), the embedding table kept fp32, run by ONNX Runtime (https://onnxruntime.ai)
  with all graph optimizations and as many intra-op threads as torch uses. Texts are
  sorted by token count and batched so padding stays small. About 2x the fp32
  throughput or more on two cores (see ``docs/rm/speed.md``); rows agree with fp32 to
  a mean cosine of 0.994 (min 0.98) on HH-RLHF texts. Needs ``onnxruntime`` and ``onnx``.
  On x86 CPUs without VNNI, ONNX Runtime's uint8 x int8 kernels can saturate and lose
  more accuracy.
* ``"bf16"``: weights and activations in bfloat16 (no extra dependency); rows agree with
  fp32 to a cosine of 0.9999. Fast only on CPUs with native bf16 matrix units (AMX or
  AVX512-BF16); elsewhere it is *slower* than fp32.

Both int8 modes pick activation scales per batch at run time, so a text's row moves
slightly with the texts it is batched with (the other modes' rows do not, to float
rounding).

The converted ONNX model is built once and kept under ``<cache>/encoders/<key>/``
(``<cache>`` = the embedding cache root's parent, see
:func:`prefkit.models.features.default_cache_root`; ``<key>`` from
:meth:`EncoderSpec.key`, so a changed model file gets a new conversion), written to a
temporary folder and renamed into place so a crash never leaves a torn file.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from prefkit.errors import PrefkitError
from prefkit.models.features import EncoderSpec, default_cache_root, embed_extra_error

Encoder = Callable[[Sequence[str]], np.ndarray]
QUANTIZE = ("none", "int8", "onnx-int8", "bf16")
#: Version of the ONNX conversion recipe (bump to invalidate converted models on disk).
ONNX_FORMAT = 2


def load_encoder(spec: EncoderSpec, *, cache_root: str | Path | None = None) -> Encoder:
    """An encoder ``texts -> (n, d) float32`` with unit-norm rows for ``spec``.

    Parameters
    ----------
    spec
        The model, quantization mode (one of :data:`QUANTIZE`), token limit and batch size.
    cache_root
        Where converted models are kept (``onnx-int8``); default
        ``default_cache_root().parent / "encoders"``.
    """
    if spec.quantize not in QUANTIZE:
        raise PrefkitError(
            f"unknown quantize mode {spec.quantize!r}; choose one of: {', '.join(QUANTIZE)}"
        )
    if spec.quantize == "onnx-int8":
        _require_onnx()
    model = _sentence_transformer(spec)
    if spec.quantize == "onnx-int8":
        return _onnx_encoder(model, spec, converted_path(spec, cache_root=cache_root, model=model))
    if spec.quantize == "int8":
        model = _torch_int8(model)
    elif spec.quantize == "bf16":
        import torch

        model = model.to(torch.bfloat16)
    return _st_encoder(model, spec)


def converted_path(
    spec: EncoderSpec, *, cache_root: str | Path | None = None, model: Any = None
) -> Path:
    """The converted ONNX model for ``spec`` (``onnx-int8``), building it if absent."""
    if spec.quantize != "onnx-int8":
        raise PrefkitError(f"quantize mode {spec.quantize!r} has no converted model")
    root = Path(cache_root) if cache_root else default_cache_root().parent / "encoders"
    # the conversion does not depend on the token limit or the batch size
    folder = root / replace(spec, max_length=0, batch_size=0).key()
    dest = folder / f"model-{spec.quantize}-v{ONNX_FORMAT}.onnx"
    if dest.exists():
        return dest
    _require_onnx()
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model = model if model is not None else _sentence_transformer(spec)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir()
    quiet = logging.root.manager.disable  # ORT's quantizer and fuser warn via logging
    logging.disable(logging.WARNING)
    try:
        _export_onnx(model, tmp / "fp32.onnx")
        quantize_dynamic(
            tmp / "fp32.onnx",
            tmp / "int8.onnx",
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul", "Attention"],
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},  # fused ops
        )
        os.replace(tmp / "int8.onnx", dest)
    finally:
        logging.disable(quiet)
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


# --- loading -------------------------------------------------------------------------------
def _sentence_transformer(spec: EncoderSpec) -> Any:
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise embed_extra_error("frozen features") from None
    from prefkit.models.finetune import quiet_transformers

    with quiet_transformers():
        model = SentenceTransformer(spec.resolved_path(), device="cpu")
    model.max_seq_length = spec.max_length
    return model.eval()


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise PrefkitError(
            "quantize='onnx-int8' needs onnxruntime and onnx: "
            "pip install 'prefkit[embed]' (or pip install onnxruntime onnx)"
        ) from None


def _dim(model: Any) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def _st_encoder(model: Any, spec: EncoderSpec) -> Encoder:
    """sentence-transformers ``encode`` (sorts by length itself), rows renormalised in fp32."""
    import torch

    def encode(texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, _dim(model)), dtype=np.float32)
        out = model.encode(list(texts), batch_size=spec.batch_size, convert_to_tensor=True)
        out = torch.nn.functional.normalize(out.float(), dim=-1)  # (n, d)
        return np.ascontiguousarray(out.cpu().numpy(), dtype=np.float32)

    return encode


def _torch_int8(model: Any) -> Any:
    import torch

    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError:  # pragma: no cover - removed in some future torch
        raise PrefkitError(
            "quantize='int8' needs torch.ao.quantization; use quantize='onnx-int8'"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(
            model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8
        )


# --- ONNX Runtime ----------------------------------------------------------------------------
def _input_names(model: Any) -> list[str]:
    known = ("input_ids", "attention_mask", "token_type_ids")
    names = [n for n in model.tokenizer.model_input_names if n in known]
    if "input_ids" not in names or "attention_mask" not in names:
        raise PrefkitError("onnx-int8 needs a tokenizer that gives input_ids and attention_mask")
    return names


def _transformer(model: Any) -> Any:
    first = model[0]
    auto = getattr(first, "auto_model", None)
    if auto is None:
        raise PrefkitError(
            "onnx-int8 supports sentence-transformers models whose first module is a "
            "Hugging Face transformer"
        )
    return auto


def _export_onnx(model: Any, dest: Path) -> None:
    """Write the transformer (token ids -> last hidden states) of ``model`` to ``dest``
    as fp32 ONNX; BERT models get ONNX Runtime's fused attention/LayerNorm/GELU ops."""
    import torch

    auto = _transformer(model)
    names = _input_names(model)

    class Body(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.auto = auto

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.auto(**dict(zip(names, inputs, strict=True))).last_hidden_state

    enc = model.tokenizer(
        ["an example input", "a second, longer example input for tracing"],
        padding=True,
        return_tensors="pt",
    )
    args = tuple(enc[n].to(torch.int64) for n in names)
    axes = {n: {0: "batch", 1: "tokens"} for n in names}
    axes["token_embeddings"] = {0: "batch", 1: "tokens"}
    before = auto.config._attn_implementation
    auto.config._attn_implementation = "eager"  # traces to plain ONNX ops
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                Body().eval(),
                args,
                str(dest),
                dynamo=False,
                input_names=names,
                output_names=["token_embeddings"],
                dynamic_axes=axes,
                opset_version=17,
            )
    finally:
        auto.config._attn_implementation = before
    if auto.config.model_type == "bert":  # fuse attention, LayerNorm and GELU kernels
        from onnxruntime.transformers.optimizer import optimize_model

        fused = optimize_model(
            str(dest),
            model_type="bert",
            num_heads=auto.config.num_attention_heads,
            hidden_size=auto.config.hidden_size,
        )
        fused.save_model_to_file(str(dest))


def _onnx_encoder(model: Any, spec: EncoderSpec, path: Path) -> Encoder:
    import onnxruntime as ort
    import torch

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    tokenizer = model.tokenizer
    names = _input_names(model)
    pad_id = tokenizer.pad_token_id or 0
    post = list(model)[1:]  # pooling (+ normalize) modules, run as sentence-transformers does
    dim = _dim(model)

    def encode(texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), dim), dtype=np.float32)  # (n, d)
        if len(texts) == 0:
            return out
        enc = tokenizer(
            [str(t).strip() for t in texts], truncation=True, max_length=spec.max_length
        )
        lens = np.array([len(ids) for ids in enc["input_ids"]])
        order = np.argsort(-lens, kind="stable")
        for start in range(0, len(texts), spec.batch_size):
            rows = order[start : start + spec.batch_size]
            width = int(lens[rows].max())
            feeds = {}
            for name in names:
                arr = np.full((len(rows), width), pad_id if name == "input_ids" else 0, np.int64)
                for j, i in enumerate(rows):  # right padding, as the tokenizer pads
                    arr[j, : lens[i]] = enc[name][i]
                feeds[name] = arr  # (B, T)
            (hidden,) = session.run(["token_embeddings"], feeds)  # (B, T, H)
            features: dict[str, Any] = {
                "token_embeddings": torch.from_numpy(hidden),
                "attention_mask": torch.from_numpy(feeds["attention_mask"]),
            }
            with torch.inference_mode():
                for module in post:
                    features = module(features)
            vecs = torch.nn.functional.normalize(features["sentence_embedding"].float(), dim=-1)
            out[rows] = vecs.numpy()  # (B, d)
        return out

    return encode


__all__ = ["ONNX_FORMAT", "QUANTIZE", "Encoder", "converted_path", "load_encoder"]
