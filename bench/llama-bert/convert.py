# all-MiniLM-L6-v2 (safetensors + tokenizer.json) -> GGUF for llama.cpp's BERT path, F32,
# the way llama.cpp's own BertModel converter does it (phantom-space WPM vocab, mean pooling).
import json, sys, numpy as np, gguf
from safetensors.numpy import load_file
src, out = sys.argv[1], sys.argv[2]
cfg = json.load(open(f"{src}/config.json"))
tok = json.load(open(f"{src}/tokenizer.json"))
vocab = sorted(tok["model"]["vocab"].items(), key=lambda kv: kv[1])
w = gguf.GGUFWriter(out, "bert")
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_block_count(cfg["num_hidden_layers"])
w.add_head_count(cfg["num_attention_heads"])
w.add_layer_norm_eps(cfg["layer_norm_eps"])
w.add_causal_attention(False)
w.add_pooling_type(gguf.PoolingType.MEAN)
w.add_file_type(gguf.LlamaFileType.ALL_F32)
w.add_token_type_count(cfg.get("type_vocab_size", 1))
def phantom(t):
    if t.startswith("[") and t.endswith("]"): return t
    if t.startswith("##"): return t[2:]
    return "\u2581" + t
tokens = [phantom(t) for t, _ in vocab]
special = {a["content"] for a in tok.get("added_tokens", []) if a.get("special")}
types = [gguf.TokenType.CONTROL if t in special else gguf.TokenType.NORMAL for t, _ in vocab]
w.add_tokenizer_model("bert")
w.add_tokenizer_pre("default")
w.add_token_list(tokens)
w.add_token_types(types)
ids = dict(vocab)
w.add_bos_token_id(ids["[CLS]"]); w.add_sep_token_id(ids["[SEP]"]); w.add_pad_token_id(ids["[PAD]"])
w.add_unk_token_id(ids["[UNK]"]); w.add_mask_token_id(ids["[MASK]"])
names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, cfg["num_hidden_layers"])
for name, t in load_file(f"{src}/model.safetensors").items():
    if name.startswith("pooler.") or name.endswith("position_ids"):
        continue
    new = names.get_name(name, try_suffixes=(".weight", ".bias"))
    if new is None:
        sys.exit(f"cannot map {name}")
    w.add_tensor(new, t.astype(np.float32))
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print("wrote", out)
