"""A tiny random-weight llama-architecture GGUF model that a real llama-server loads (~9 MB).

The tokenizer (every `tokenizer.*` key) is copied from one of llama.cpp's vocab-only GGUF files
(`models/ggml-vocab-llama-spm.gguf` in the llama-cpp-python sdist: SentencePiece, 32,000 tokens);
the weights are random with a fixed seed: 2 layers, n_embd 64, feed-forward 128, 4 heads / 2 KV
heads, F16. The output rows of end-of-generation, control, unknown, unused and byte tokens are
zero, so their logit is 0 while the best of 32,000 random logits is well above it: greedy decoding
never stops early and always runs to max_tokens, which keeps token counts exact and comparable.
A ChatML template makes /v1/chat/completions work. Needs the `gguf` package and numpy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML = ("{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content']"
          " + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|im_start|>assistant\\n' }}{% endif %}")
NOT_PICKED = (2, 3, 5, 6)  # token types: unknown, control, unused, byte


def _value(field: Any) -> tuple[Any, Any, Any]:
    """A reader field -> (python value, value type, array item type)."""
    from gguf import GGUFValueType

    vtype = field.types[0]
    if vtype == GGUFValueType.ARRAY:
        sub = field.types[1]
        if sub == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", errors="surrogateescape") for i in field.data], vtype, sub
        return [field.parts[i].tolist()[0] for i in field.data], vtype, sub
    if vtype == GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8"), vtype, None
    return field.parts[field.data[0]].tolist()[0], vtype, None


def make_model(vocab: Path, out: Path, *, name: str = "tiny-random", layers: int = 2, embd: int = 64,
               ff: int = 128, heads: int = 4, kv_heads: int = 2, ctx: int = 4096, seed: int = 0) -> Path:
    import numpy as np
    from gguf import GGUFReader, GGUFValueType, GGUFWriter
    from gguf.constants import LlamaFileType

    reader = GGUFReader(str(vocab))
    tok_fields = {k: f for k, f in reader.fields.items() if k.startswith("tokenizer.")}
    if "tokenizer.ggml.tokens" not in tok_fields:
        raise ValueError(f"{vocab}: no tokenizer.ggml.tokens (not a vocab GGUF)")
    tokens = _value(tok_fields["tokenizer.ggml.tokens"])[0]
    types = _value(tok_fields["tokenizer.ggml.token_type"])[0] if "tokenizer.ggml.token_type" in tok_fields else []
    n_vocab = len(tokens)
    tmp = out.with_suffix(".tmp")
    w = GGUFWriter(str(tmp), "llama")
    w.add_name(name)
    w.add_file_type(LlamaFileType.MOSTLY_F16)
    w.add_context_length(ctx)
    w.add_embedding_length(embd)
    w.add_block_count(layers)
    w.add_feed_forward_length(ff)
    w.add_head_count(heads)
    w.add_head_count_kv(kv_heads)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_dimension_count(embd // heads)
    w.add_rope_freq_base(10000.0)
    w.add_vocab_size(n_vocab)
    for key, field in tok_fields.items():
        if key == "tokenizer.chat_template":
            continue
        value, vtype, sub = _value(field)
        if vtype == GGUFValueType.ARRAY and sub == GGUFValueType.STRING:
            w.add_array(key, value)
        elif vtype == GGUFValueType.ARRAY:
            w.add_key_value(key, value, vtype, sub_type=sub)
        else:
            w.add_key_value(key, value, vtype)
    w.add_chat_template(CHATML)

    rng = np.random.default_rng(seed)
    n_kv = kv_heads * (embd // heads)

    def mat(rows: int, cols: int, std: float) -> Any:
        return (rng.standard_normal((rows, cols)) * std).astype(np.float16)

    def ones(n: int) -> Any:
        return np.ones(n, dtype=np.float32)

    w.add_tensor("token_embd.weight", mat(n_vocab, embd, 1.0))
    for i in range(layers):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", ones(embd))
        w.add_tensor(p + "attn_q.weight", mat(embd, embd, 0.1))
        w.add_tensor(p + "attn_k.weight", mat(n_kv, embd, 0.1))
        w.add_tensor(p + "attn_v.weight", mat(n_kv, embd, 0.1))
        w.add_tensor(p + "attn_output.weight", mat(embd, embd, 0.1))
        w.add_tensor(p + "ffn_norm.weight", ones(embd))
        w.add_tensor(p + "ffn_gate.weight", mat(ff, embd, 0.1))
        w.add_tensor(p + "ffn_up.weight", mat(ff, embd, 0.1))
        w.add_tensor(p + "ffn_down.weight", mat(embd, ff, 0.1))
    w.add_tensor("output_norm.weight", ones(embd))
    output = mat(n_vocab, embd, 0.5)
    for tid, ttype in enumerate(types):
        if ttype in NOT_PICKED:
            output[tid, :] = 0
    w.add_tensor("output.weight", output)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    tmp.replace(out)
    return out
