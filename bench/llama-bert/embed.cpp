// llama.cpp's BERT path on the texts in a file (one per line), as chatapi would run it through
// llama-cpp-2: segments per second, and the vectors (mean-pooled, L2-normalised) as JSON lines.
// PACK=n puts n texts in one batch (the attention mask then spans them all). LLVERBOSE=1 logs.
#include "llama.h"
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>
int main(int argc, char** argv) {
    if (argc < 4) { fprintf(stderr, "embed MODEL TEXTS THREADS [vectors-out]\n"); return 2; }
    if (!getenv("LLVERBOSE")) llama_log_set([](ggml_log_level, const char*, void*) {}, nullptr);
    llama_backend_init();
    auto t0 = std::chrono::steady_clock::now();
    llama_model* model = llama_model_load_from_file(argv[1], llama_model_default_params());
    if (!model) return 1;
    const llama_vocab* vocab = llama_model_get_vocab(model);
    llama_context_params cp = llama_context_default_params();
    cp.embeddings = true;
    cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
    cp.n_ctx = 4096; cp.n_batch = 4096; cp.n_ubatch = 4096; cp.n_seq_max = 64;
    cp.n_threads = cp.n_threads_batch = atoi(argv[3]);
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) return 1;
    double load = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::vector<std::string> texts; std::ifstream in(argv[2]); std::string line;
    while (std::getline(in, line)) texts.push_back(line);
    int n_embd = llama_model_n_embd(model);
    std::vector<std::vector<float>> out(texts.size());
    auto t1 = std::chrono::steady_clock::now();
    size_t i = 0;
    while (i < texts.size()) {
        llama_batch batch = llama_batch_init(4096, 0, 1);
        std::vector<size_t> in_batch;
        while (i < texts.size() && (int)in_batch.size() < atoi(getenv("PACK") ? getenv("PACK") : "64")) {
            std::vector<llama_token> toks(texts[i].size() + 8);
            int n = llama_tokenize(vocab, texts[i].c_str(), texts[i].size(), toks.data(), toks.size(), true, false);
            if (n < 0) { fprintf(stderr, "tokenize %d\n", n); return 1; }
            if (n > 256) { toks[255] = toks[n - 1]; n = 256; }  // keep [SEP] last, as the reference truncates
            if (batch.n_tokens + n > 4096) break;
            int seq = in_batch.size();
            for (int p = 0; p < n; p++) {
                batch.token[batch.n_tokens] = toks[p]; batch.pos[batch.n_tokens] = p;
                batch.n_seq_id[batch.n_tokens] = 1; batch.seq_id[batch.n_tokens][0] = seq;
                batch.logits[batch.n_tokens] = 1; batch.n_tokens++;
            }
            in_batch.push_back(i++);
        }
        if (llama_encode(ctx, batch) != 0) { fprintf(stderr, "encode failed\n"); return 1; }
        for (size_t s = 0; s < in_batch.size(); s++) {
            const float* e = llama_get_embeddings_seq(ctx, s);
            double norm = 0; for (int d = 0; d < n_embd; d++) norm += e[d] * e[d];
            norm = std::sqrt(norm) + 1e-12;
            out[in_batch[s]].resize(n_embd);
            for (int d = 0; d < n_embd; d++) out[in_batch[s]][d] = e[d] / norm;
        }
        llama_batch_free(batch);
    }
    double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
    printf("load %.3f s, %zu texts in %.3f s: %.1f per second\n", load, texts.size(), took, texts.size() / took);
    if (argc > 4) {
        FILE* f = fopen(argv[4], "w");
        for (auto& v : out) { fputc('[', f); for (int d = 0; d < n_embd; d++) fprintf(f, d ? ",%.7f" : "%.7f", v[d]); fputs("]\n", f); }
        fclose(f);
    }
    llama_free(ctx); llama_model_free(model);
}
