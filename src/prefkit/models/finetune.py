"""Fine-tuned backbones: a transformers encoder or causal LM trained end to end with the head.

Two poolings turn token states ``(B, T, H)`` into one feature row per text ``(B, H)``:

* ``encoder``: masked mean over the non-padding tokens (the pooling of Sentence-BERT,
  Reimers and Gurevych 2019, "Sentence-BERT: Sentence Embeddings using Siamese
  BERT-Networks"), then L2-normalised. The packaged all-MiniLM-L6-v2 was trained with
  normalised embeddings and the frozen backbone serves unit-norm rows, so fine-tuning
  starts from exactly the frozen features and a head's learning rate means the same
  thing on both;
* ``causal``: the hidden state of the last non-padding token, as in the InstructGPT
  reward model (Ouyang et al. 2022, "Training language models to follow instructions
  with human feedback"). The checkpoint is loaded with ``AutoModel``, i.e. the base
  transformer without its LM head (its final norm included); no normalisation.

Texts are tokenised with the checkpoint's tokenizer and its default special tokens,
truncated on the right at ``max_length`` tokens (the end of a long response is lost:
:attr:`FinetunedBackbone.n_truncated_` counts the texts this happened to) and padded
on the right by this module, so the attention mask, not the token ids, says where each
text ends: tokenizers without a pad token (most causal LMs) pad with ``eos``. Token ids
are cached per text after the first use.

The model runs in float32 on CUDA when available (else the CPU); features come back on
the CPU, where the training loop keeps the head, with gradients flowing through.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from prefkit.errors import PrefkitError
from prefkit.models.backbones import Backbone, Progress, truncation_line
from prefkit.models.features import default_encoder_path

POOLING = {"encoder": "mean", "causal": "last"}
#: Texts per forward pass when no gradient is needed (prediction, ``finish``).
INFER_BATCH = 32


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' progress bars and load reports (e.g. the LM head that
    ``AutoModel`` leaves out) while loading and saving."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def transformer_dir(path: str) -> str:
    """Where the transformers config and weights are under ``path``.

    A sentence-transformers folder keeps them at its root (all-MiniLM-L6-v2) or in the
    module its ``modules.json`` names (``0_Transformer`` in older layouts); anything else
    (a plain checkpoint, a hub id) is returned as is.
    """
    p = Path(path)
    if not p.is_dir():
        return path
    modules = p / "modules.json"
    if modules.is_file():
        try:
            entries = json.loads(modules.read_text())
        except (OSError, ValueError):
            entries = []
        for m in entries:
            if str(m.get("type", "")).endswith("Transformer"):
                sub = p / m.get("path", "")
                if (sub / "config.json").is_file():
                    return str(sub)
    if not (p / "config.json").is_file() and (p / "0_Transformer" / "config.json").is_file():
        return str(p / "0_Transformer")
    return path


def default_path() -> str:
    """The packaged all-MiniLM-L6-v2 (``PREFKIT_ENCODER`` overrides it)."""
    return default_encoder_path("backbone 'encoder' without a path", " (or pass encoder:PATH)")


class FinetunedBackbone(Backbone):
    """A transformers model fine-tuned with the head (see the module docstring).

    Parameters
    ----------
    kind
        ``"encoder"`` (masked mean pooling, unit-norm rows) or ``"causal"`` (last
        non-padding token).
    path
        A local checkpoint folder or hub id; ``None`` (encoder only) is the packaged
        all-MiniLM-L6-v2.
    max_length
        Tokens kept per text (truncation on the right).
    normalize
        L2-normalise the pooled features (default: True for ``encoder``, False for
        ``causal``).
    device
        Torch device; default CUDA when available, else the CPU.
    """

    trainable = True

    def __init__(
        self,
        kind: str,
        path: str | None = None,
        *,
        max_length: int = 256,
        normalize: bool | None = None,
        device: str | torch.device | None = None,
        _load_from: str | None = None,
    ):
        super().__init__()
        if kind not in POOLING:
            raise PrefkitError(f"fine-tuned backbone kind must be encoder or causal, got {kind!r}")
        if kind == "causal" and not path:
            raise PrefkitError("backbone 'causal' needs a model path or hub id: causal:PATH")
        if max_length < 1:
            raise PrefkitError(f"max_length must be at least 1 token, got {max_length}")
        self.kind = kind
        self.path = path
        self.max_length = int(max_length)
        self.pooling = POOLING[kind]
        self.normalize = (kind == "encoder") if normalize is None else bool(normalize)
        self.device = torch.device(
            device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
        )
        source = _load_from or transformer_dir(path or default_path())
        from transformers import AutoModel, AutoTokenizer

        try:
            with quiet_transformers():
                self.tokenizer = AutoTokenizer.from_pretrained(source)
                self.model = AutoModel.from_pretrained(source, dtype=torch.float32)
        except (OSError, ValueError, KeyError) as e:
            raise PrefkitError(f"cannot load the {kind} backbone from {source!r}: {e}") from None
        tok = self.tokenizer
        if tok.pad_token is None and tok.eos_token is not None:
            tok.pad_token = tok.eos_token  # causal LMs: pad with eos (masked out anyway)
        tok.truncation_side = "right"
        self.pad_id = int(tok.pad_token_id) if tok.pad_token_id is not None else 0
        # a text that tokenises to nothing still needs one position to pool
        fallback = tok.eos_token_id if tok.eos_token_id is not None else tok.bos_token_id
        self.empty_ids = np.array([self.pad_id if fallback is None else fallback], dtype=np.int64)
        cfg = self.model.config
        self.dim = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "d_model", 0))
        self.model.to(self.device)
        self.texts: list[str] = []
        self._reset()

    # --- text -> token ids ------------------------------------------------------------------
    def _reset(self) -> None:
        n = len(self.texts)
        self._ids: list[np.ndarray | None] = [None] * n
        self._seen = np.zeros(n, dtype=bool)
        self._truncated = np.zeros(n, dtype=bool)

    def bind(self, texts: list[str], progress: Progress | None = None) -> None:
        """Use ``texts`` (token ids are computed on first use and cached)."""
        if texts is not self.texts and list(texts) != self.texts:
            self.texts = list(texts)
            self._reset()
        if progress:
            progress(len(self.texts), len(self.texts))

    @property
    def n_truncated_(self) -> int:
        """Texts seen so far that were longer than ``max_length`` tokens."""
        return int(self._truncated.sum())

    @property
    def n_seen_(self) -> int:
        """Distinct texts tokenised so far."""
        return int(self._seen.sum())

    def truncation_summary(self) -> str:
        """One line for a training report, e.g. ``"3 of 120 texts (2.5%) were longer
        than max_length=256 tokens and were cut on the right"``."""
        return truncation_line(self.n_truncated_, self.n_seen_, self.max_length)

    def token_ids(self, items: np.ndarray) -> list[np.ndarray]:
        """Token ids of ``texts[i]`` for each item, truncated at ``max_length``."""
        if len(items) and int(items.max()) >= len(self.texts):
            raise RuntimeError("bind() the backbone to the texts first")
        new = np.unique(items[~self._seen[items]])
        if len(new):
            tok = self.tokenizer
            full = tok([self.texts[i] for i in new], truncation=False, verbose=False)["input_ids"]
            long = [j for j, ids in enumerate(full) if len(ids) > self.max_length]
            if long:
                cut = tok(
                    [self.texts[new[j]] for j in long], truncation=True, max_length=self.max_length
                )["input_ids"]
                for j, ids in zip(long, cut, strict=True):
                    full[j] = ids
                self._truncated[new[long]] = True
            for i, ids in zip(new, full, strict=True):
                self._ids[i] = np.asarray(ids, dtype=np.int64) if len(ids) else self.empty_ids
            self._seen[new] = True
        return [self._ids[i] for i in items]

    # --- features ---------------------------------------------------------------------------
    def features(self, items: Tensor) -> Tensor:
        """Pooled features ``(n, dim)`` of ``texts[items]`` (on the CPU; differentiable)."""
        idx = items.detach().cpu().numpy().astype(np.int64).reshape(-1)
        if torch.is_grad_enabled() or len(idx) <= INFER_BATCH:
            return self._forward(self.token_ids(idx))
        parts = [
            self._forward(self.token_ids(idx[s : s + INFER_BATCH]))
            for s in range(0, len(idx), INFER_BATCH)
        ]
        return torch.cat(parts)

    def _forward(self, seqs: list[np.ndarray]) -> Tensor:
        if not seqs:
            return torch.empty(0, self.dim)
        lengths = torch.tensor([len(s) for s in seqs])  # (B,)
        T = int(lengths.max())
        ids = torch.full((len(seqs), T), self.pad_id, dtype=torch.long)  # (B, T) right-padded
        for r, s in enumerate(seqs):
            ids[r, : len(s)] = torch.from_numpy(s)
        mask = (torch.arange(T)[None, :] < lengths[:, None]).long()  # (B, T)
        ids, mask = ids.to(self.device), mask.to(self.device)
        h = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
        if self.pooling == "mean":
            m = mask.unsqueeze(-1).to(h.dtype)  # (B, T, 1)
            x = (h * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, H)
        else:
            last = (lengths - 1).to(self.device)  # (B,) right padding: last real token
            x = h[torch.arange(len(seqs), device=self.device), last]  # (B, H)
        if self.normalize:
            x = F.normalize(x, dim=-1)
        return x.float().cpu()

    # --- persistence ------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": self.path,
            "max_length": self.max_length,
            "dim": self.dim,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "model_type": getattr(self.model.config, "model_type", None),
        }

    def save_weights(self, path: Path) -> None:
        """Model and tokenizer via ``save_pretrained`` (safetensors only)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        with quiet_transformers():
            self.model.save_pretrained(path, safe_serialization=True)
            self.tokenizer.save_pretrained(path)

    @classmethod
    def from_saved(cls, cfg: dict[str, Any], weights_dir: Path | None) -> FinetunedBackbone:
        """Rebuild a saved backbone from ``weights_dir`` alone (the original checkpoint,
        ``cfg["path"]``, is only recorded, never read)."""
        if weights_dir is None or not (Path(weights_dir) / "config.json").is_file():
            raise PrefkitError(
                f"the checkpoint has no fine-tuned {cfg.get('kind')} backbone weights "
                f"(expected a transformers folder at {weights_dir})"
            )
        return cls(
            cfg["kind"],
            cfg.get("path") or (None if cfg["kind"] == "encoder" else str(weights_dir)),
            max_length=cfg["max_length"],
            normalize=cfg.get("normalize"),
            _load_from=str(weights_dir),
        )


__all__ = ["POOLING", "FinetunedBackbone", "transformer_dir"]
