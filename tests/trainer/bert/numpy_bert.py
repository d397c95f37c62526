"""BERT's forward pass in float64 NumPy, written from the equations, as the tests' reference.

Independent of `trainer.bert`: it reads HuggingFace-named arrays directly and shares no code
with the Keras encoder. For token ids `x` (`[batch, seq]`) and mask `m`:

    h0 = LN(E_word[x] + E_pos[0..seq) + E_type[0])
    for each layer:
        a  = softmax(Q K^T / sqrt(d) + (m - 1) * inf) V            (per head, concatenated)
        h' = LN(h + a W_o^T + b_o)
        h  = LN(h' + gelu(h' W_i^T + b_i) W_out^T + b_out)           gelu(z) = z Phi(z)

Linear weights are `[out, in]`, so a Linear layer is `x @ W.T + b`.
"""

import math

import numpy as np

_erf = np.frompyfunc(math.erf, 1, 1)


def gelu(z: np.ndarray) -> np.ndarray:
    """Exact GELU: `z * Phi(z)`, with the normal CDF from `math.erf`."""
    return z * 0.5 * (1.0 + _erf(z / math.sqrt(2.0)).astype(np.float64))


def layer_norm(x: np.ndarray, scale: np.ndarray, shift: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + eps) * scale + shift


def _linear(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    return x @ w[f"{name}.weight"].T + w[f"{name}.bias"]


def _attention(h: np.ndarray, mask: np.ndarray, w: dict, prefix: str, heads: int) -> np.ndarray:
    batch, seq, hidden = h.shape
    size = hidden // heads
    q, k, v = (
        _linear(h, w, f"{prefix}attention.self.{part}")
        .reshape(batch, seq, heads, size)
        .transpose(0, 2, 1, 3)
        for part in ("query", "key", "value")
    )
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size)
    scores = np.where(mask[:, None, None, :] > 0, scores, -np.inf)
    scores = scores - scores.max(axis=-1, keepdims=True)
    probs = np.exp(scores)
    probs = probs / probs.sum(axis=-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(batch, seq, hidden)
    return _linear(context, w, f"{prefix}attention.output.dense")


def bert_forward(weights: dict, config: dict, input_ids, attention_mask) -> np.ndarray:
    """Returns the last hidden state `[batch, seq, hidden]` (float64).

    Args:
      weights: HuggingFace-named arrays; names may carry a `bert.` prefix.
      config: The `config.json` dict.
      input_ids: int array `[batch, seq]`.
      attention_mask: int array `[batch, seq]`.
    """
    w = {k.removeprefix("bert."): np.asarray(v, np.float64) for k, v in weights.items()}
    ids = np.asarray(input_ids)
    mask = np.asarray(attention_mask)
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    seq = ids.shape[1]
    h = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:seq][None]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    h = layer_norm(h, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        attended = _attention(h, mask, w, p, heads)
        h = layer_norm(
            h + attended,
            w[f"{p}attention.output.LayerNorm.weight"],
            w[f"{p}attention.output.LayerNorm.bias"],
            eps,
        )
        inner = gelu(_linear(h, w, f"{p}intermediate.dense"))
        out = _linear(inner, w, f"{p}output.dense")
        h = layer_norm(
            h + out, w[f"{p}output.LayerNorm.weight"], w[f"{p}output.LayerNorm.bias"], eps
        )
    return h


def mean_pool(sequence: np.ndarray, attention_mask) -> np.ndarray:
    """Average of the token vectors where the mask is 1: `[batch, seq, hidden]` -> `[batch,
    hidden]`."""
    m = np.asarray(attention_mask, np.float64)[:, :, None]
    return (sequence * m).sum(axis=1) / m.sum(axis=1)
