//! The generation thread. It owns the llama.cpp model and context; requests arrive on a bounded
//! queue and each occupies one sequence of a shared context, so several conversations advance in
//! one `decode` call per token (batched decoding: more tokens per second in total than one at a
//! time, since each step reads the weights once for all of them). What each sequence decodes, and
//! how much of a cached prompt it keeps, is `prompt`'s decision.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;

use llama_cpp_2::context::params::LlamaContextParams;
use llama_cpp_2::context::LlamaContext;
use llama_cpp_2::llama_backend::LlamaBackend;
use llama_cpp_2::llama_batch::LlamaBatch;
use llama_cpp_2::model::params::LlamaModelParams;
use llama_cpp_2::model::{LlamaChatTemplate, LlamaModel};
use llama_cpp_2::sampling::LlamaSampler;
use llama_cpp_2::token::LlamaToken;

use super::prompt::{self, Prompter};
use super::text::{Defaults, SamplerPlan, StopFilter, Utf8Assembler};
use super::{Job, LocalError, LocalSettings, LocalStats};
use crate::conversation::{Message, Role};
use crate::upstream::{Event, FinishReason, UpstreamError, Usage};

/// Prompt tokens decoded per step, shared by all sequences being prefilled.
const BATCH_TOKENS: usize = 512;
/// Recent tokens the frequency/presence penalties look at.
const PENALTY_WINDOW: i32 = 64;
/// Candidates kept before top_p (llama.cpp's default).
const TOP_K: i32 = 40;

/// llama.cpp's backend may be initialised once per process; every local upstream shares it.
fn backend() -> Result<&'static LlamaBackend, String> {
    static BACKEND: OnceLock<Result<LlamaBackend, String>> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            // llama.cpp's own logging goes through tracing (quiet unless RUST_LOG asks for it).
            llama_cpp_2::send_logs_to_tracing(llama_cpp_2::LogOptions::default());
            LlamaBackend::init().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Loads `model_path` and renders `messages` with its template: for tests and for operators
/// checking what a model is given.
pub fn render_prompt(
    model_path: &std::path::Path,
    messages: &[Message],
) -> Result<String, LocalError> {
    let error = |detail: String| LocalError::Engine {
        path: model_path.to_path_buf(),
        detail,
    };
    super::check_file(model_path)?;
    let backend = backend().map_err(error)?;
    let model = LlamaModel::load_from_file(backend, model_path, &LlamaModelParams::default())
        .map_err(|e| error(e.to_string()))?;
    let template = model
        .chat_template(None)
        .map_err(|e| error(e.to_string()))?;
    prompt::apply_template(&model, &template, messages).map_err(error)
}

/// Starts the engine thread and waits until the model is loaded. The thread ends when `stop` is
/// set, or when the queue closes with nothing left to do.
pub fn spawn(
    name: Arc<str>,
    settings: LocalSettings,
    queue: Receiver<Job>,
    stop: Arc<AtomicBool>,
    stats: Arc<LocalStats>,
) -> Result<JoinHandle<()>, LocalError> {
    let path = settings.model_path.clone();
    let engine_error = |detail: String| LocalError::Engine {
        path: path.clone(),
        detail,
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let engine = std::thread::Builder::new()
        .name("chatapi-local-model".into())
        .spawn(move || {
            let loaded = backend().and_then(|backend| {
                let model = LlamaModel::load_from_file(
                    backend,
                    &settings.model_path,
                    &LlamaModelParams::default(),
                )
                .map_err(|e| format!("could not be loaded: {e}"))?;
                let template = match &settings.chat_template {
                    Some(name) => LlamaChatTemplate::new(name)
                        .map_err(|e| format!("local.chat_template: {e}"))?,
                    None => model.chat_template(None).map_err(|e| {
                        format!("has no chat template of its own ({e}): name one of llama.cpp's in local.chat_template, such as \"gemma\" or \"chatml\"")
                    })?,
                };
                // A template llama.cpp cannot render is refused at start, not on the first call.
                prompt::apply_template(&model, &template, &[Message::new(Role::User, "Hi")])
                    .map_err(|e| format!("cannot write a conversation with its chat template: {e}"))?;
                Ok((backend, model, template))
            });
            match loaded {
                Ok((backend, model, template)) => {
                    let n_ctx = settings.context_tokens.saturating_mul(settings.parallel);
                    let params = LlamaContextParams::default()
                        .with_n_ctx(NonZeroU32::new(n_ctx))
                        .with_n_batch(BATCH_TOKENS as u32)
                        .with_n_seq_max(settings.parallel)
                        .with_n_threads(settings.threads as i32)
                        .with_n_threads_batch(settings.batch_threads as i32);
                    match model.new_context(backend, params) {
                        Ok(ctx) => {
                            let _ = ready_tx.send(Ok(()));
                            Engine::new(name, &model, ctx, template, &settings, stats)
                                .run(&queue, &stop);
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(format!("could not create a context: {e}")));
                        }
                    }
                }
                Err(detail) => {
                    let _ = ready_tx.send(Err(detail));
                }
            }
        })
        .map_err(|e| engine_error(e.to_string()))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(engine),
        Ok(Err(detail)) if detail.starts_with("could not be loaded") => Err(LocalError::Corrupt {
            path: path.clone(),
            detail,
        }),
        Ok(Err(detail)) => Err(engine_error(detail)),
        Err(_) => Err(engine_error("the engine thread ended while loading".into())),
    }
}

enum Phase {
    /// Prompt tokens not yet decoded.
    Prefill {
        tokens: Vec<LlamaToken>,
        done: usize,
    },
    /// Generating: the last sampled token goes in the next batch.
    Generate { last: LlamaToken },
}

struct Slot {
    job: Job,
    /// The whole prompt's length, reused tokens included, for the answer's usage.
    prompt_tokens: u32,
    phase: Phase,
    /// The tokens in this sequence's KV cache, in position order (reused ones first).
    decoded: Vec<LlamaToken>,
    /// Has tokens in the batch being decoded.
    in_batch: bool,
    sampler: LlamaSampler,
    generated: u32,
    max_tokens: u32,
    utf8: Utf8Assembler,
    stops: StopFilter,
    /// Index in the current batch whose logits this slot samples from.
    logits_at: Option<i32>,
    piece: Vec<u8>,
}

struct Prepared {
    sampler: LlamaSampler,
    tokens: Vec<LlamaToken>,
    max_tokens: u32,
    stops: StopFilter,
}

impl Prepared {
    /// `reused`: the prompt's first tokens, already in the sequence's KV cache.
    fn into_slot(self, job: Job, reused: Vec<LlamaToken>) -> Slot {
        Slot {
            job,
            prompt_tokens: self.tokens.len() as u32,
            phase: Phase::Prefill {
                tokens: self.tokens,
                done: reused.len(),
            },
            decoded: reused,
            in_batch: false,
            sampler: self.sampler,
            generated: 0,
            max_tokens: self.max_tokens,
            utf8: Utf8Assembler::default(),
            stops: self.stops,
            logits_at: None,
            piece: Vec::with_capacity(16),
        }
    }
}

struct Engine<'m> {
    model: &'m LlamaModel,
    ctx: LlamaContext<'m>,
    prompter: Prompter<'m>,
    slots: Vec<Option<Slot>>,
    /// What the KV cache of each free sequence still holds from its last answer: the start of the
    /// next prompt of the same call, which then need not be decoded again.
    cached: Vec<Vec<LlamaToken>>,
    stats: Arc<LocalStats>,
    context_tokens: u32,
    reuse_cache: bool,
    /// Sampling where the persona leaves a knob unset.
    defaults: Defaults,
    name: Arc<str>,
}

impl<'m> Engine<'m> {
    fn new(
        name: Arc<str>,
        model: &'m LlamaModel,
        ctx: LlamaContext<'m>,
        template: llama_cpp_2::model::LlamaChatTemplate,
        settings: &LocalSettings,
        stats: Arc<LocalStats>,
    ) -> Self {
        Self {
            model,
            ctx,
            prompter: Prompter::new(name.clone(), model, template, settings.context_tokens),
            slots: (0..settings.parallel).map(|_| None).collect(),
            cached: (0..settings.parallel).map(|_| Vec::new()).collect(),
            stats,
            context_tokens: settings.context_tokens,
            reuse_cache: settings.reuse_cache,
            defaults: settings.sampling,
            name,
        }
    }

    fn run(mut self, queue: &Receiver<Job>, stop: &AtomicBool) {
        let mut batch =
            LlamaBatch::new(BATCH_TOKENS.max(self.slots.len()), self.slots.len() as i32);
        loop {
            if stop.load(Ordering::Acquire) {
                self.stop_all();
                return;
            }
            if !self.admit(queue) {
                return;
            }
            self.drop_cancelled();
            if self.slots.iter().all(Option::is_none) {
                continue;
            }
            batch.clear();
            self.fill(&mut batch);
            if batch.n_tokens() == 0 {
                continue;
            }
            if let Err(e) = self.ctx.decode(&mut batch) {
                let detail = format!("decode failed: {e}");
                for seq in 0..self.slots.len() {
                    // Whatever this batch held for a sequence may or may not be in its cache now.
                    if self.slots[seq].as_ref().is_some_and(|s| s.in_batch) {
                        self.fail(seq, detail.clone());
                    }
                }
                continue;
            }
            self.sample();
        }
    }

    /// Takes waiting jobs into free sequences. Blocks only when nothing is in progress. Returns
    /// false when the queue is closed (the upstream was dropped) and nothing is left to do.
    fn admit(&mut self, queue: &Receiver<Job>) -> bool {
        while self.slots.iter().any(Option::is_none) {
            let idle = self.slots.iter().all(Option::is_none);
            let job = if idle {
                match queue.recv() {
                    Ok(job) => job,
                    Err(_) => return false,
                }
            } else {
                match queue.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => return true,
                    Err(TryRecvError::Disconnected) => return true,
                }
            };
            if job.out.is_closed() {
                continue;
            }
            match self.prepare(&job) {
                Ok(prepared) => {
                    let (seq, reused) = self.reuse(&prepared.tokens);
                    self.stats
                        .record(&self.name, prepared.tokens.len(), reused.len());
                    self.slots[seq] = Some(prepared.into_slot(job, reused));
                }
                Err(error) => {
                    let _ = job.out.send(Err(error));
                }
            }
        }
        true
    }

    /// Renders and tokenizes the prompt and sets up sampling; an error goes back to the caller.
    fn prepare(&self, job: &Job) -> Result<Prepared, UpstreamError> {
        let room = self.context_tokens as usize;
        let plan =
            SamplerPlan::from_sampling(&job.request.sampling, &self.defaults, rand::random());
        // A long call must keep working: history gives way before the answer's room shrinks
        // below a quarter of the context.
        let reserve = (plan.max_tokens as usize).min(room / 4).max(1);
        let (tokens, dropped) = self
            .prompter
            .fit(&job.request.messages, room.saturating_sub(reserve))?;
        if dropped > 0 {
            tracing::info!(upstream = %self.name, dropped_turns = dropped, "oldest turns dropped to fit the local model's context");
        }
        let max_tokens = plan
            .max_tokens
            .min(room.saturating_sub(tokens.len()) as u32);
        let stops = StopFilter::new(job.request.sampling.stop.as_deref().unwrap_or_default());
        Ok(Prepared {
            sampler: sampler(&plan, self.model),
            tokens,
            max_tokens,
            stops,
        })
    }

    /// A caller that hung up has closed its channel: free its sequence now, before another token.
    fn drop_cancelled(&mut self) {
        for seq in 0..self.slots.len() {
            if self.slots[seq]
                .as_ref()
                .is_some_and(|s| s.job.out.is_closed())
            {
                self.release(seq);
            }
        }
    }

    /// Every answer still in progress ends with an error, never as if it were complete.
    fn stop_all(&mut self) {
        for seq in 0..self.slots.len() {
            self.fail(seq, "the local model was stopped".into());
        }
    }

    /// Picks the free sequence whose cache shares the longest start with `tokens`, cuts its cache
    /// back to that shared start, and returns it with the tokens that stay.
    fn reuse(&mut self, tokens: &[LlamaToken]) -> (usize, Vec<LlamaToken>) {
        let reuse_cache = self.reuse_cache;
        let shared = |cached: &[LlamaToken]| {
            if reuse_cache {
                prompt::reusable(cached, tokens)
            } else {
                0
            }
        };
        // With nothing shared anywhere, an empty sequence is taken before another call's cache.
        let Some(seq) = (0..self.slots.len())
            .filter(|&seq| self.slots[seq].is_none())
            .max_by_key(|&seq| {
                let cached = &self.cached[seq];
                (shared(cached), std::cmp::Reverse(cached.len()))
            })
        else {
            return (0, Vec::new());
        };
        let mut kept = std::mem::take(&mut self.cached[seq]);
        let keep = shared(&kept);
        let cut = self
            .ctx
            .clear_kv_cache_seq(Some(seq as u32), Some(keep as u32), None);
        if matches!(cut, Ok(true)) {
            kept.truncate(keep);
        } else {
            // This cache cannot drop a tail: start the sequence afresh.
            let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
            kept.clear();
        }
        (seq, kept)
    }

    /// The answer is over (complete, or its caller hung up): free the sequence and keep its cache
    /// for the next turn of the same call.
    fn release(&mut self, seq: usize) {
        if let Some(slot) = self.slots[seq].take() {
            self.cached[seq] = slot.decoded;
        }
    }

    /// Something went wrong: free the sequence and empty its cache.
    fn discard(&mut self, seq: usize) {
        self.slots[seq] = None;
        self.cached[seq].clear();
        let _ = self.ctx.clear_kv_cache_seq(Some(seq as u32), None, None);
    }

    fn fail(&mut self, seq: usize, detail: String) {
        if let Some(slot) = &self.slots[seq] {
            let _ = slot.job.out.send(Err(UpstreamError::Transport {
                upstream: self.name.clone(),
                detail,
            }));
        }
        self.discard(seq);
    }

    /// One token per generating sequence first (they are what callers are waiting on), then
    /// prompt tokens into the room that is left.
    fn fill(&mut self, batch: &mut LlamaBatch) {
        let capacity = BATCH_TOKENS;
        let mut used = 0usize;
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            slot.logits_at = None;
            slot.in_batch = false;
            if let Phase::Generate { last } = slot.phase {
                if batch
                    .add(last, slot.decoded.len() as i32, &[seq as i32], true)
                    .is_ok()
                {
                    slot.logits_at = Some(batch.n_tokens() - 1);
                    slot.decoded.push(last);
                    slot.in_batch = true;
                    used += 1;
                }
            }
        }
        for (seq, slot) in self.slots.iter_mut().enumerate() {
            let Some(slot) = slot else { continue };
            if let Phase::Prefill { tokens, done } = &mut slot.phase {
                while *done < tokens.len() && used < capacity {
                    let last = *done + 1 == tokens.len();
                    let token = tokens[*done];
                    if batch
                        .add(token, slot.decoded.len() as i32, &[seq as i32], last)
                        .is_err()
                    {
                        break;
                    }
                    if last {
                        slot.logits_at = Some(batch.n_tokens() - 1);
                    }
                    *done += 1;
                    slot.decoded.push(token);
                    slot.in_batch = true;
                    used += 1;
                }
            }
        }
    }

    fn sample(&mut self) {
        for seq in 0..self.slots.len() {
            let Some(slot) = self.slots[seq].as_mut() else {
                continue;
            };
            let Some(at) = slot.logits_at else { continue };
            let token = slot.sampler.sample(&self.ctx, at);
            slot.phase = Phase::Generate { last: token };
            slot.generated += 1;
            let vocab = self.model.vocab();
            let mut finished = vocab.is_eog(token);
            if !finished {
                slot.piece.clear();
                vocab.token_to_piece_into(token, &mut slot.piece, false, None);
                let text = slot.utf8.push(&slot.piece);
                let (text, stopped) = slot.stops.push(&text);
                if !text.is_empty() && slot.job.out.send(Ok(Event::Text(text))).is_err() {
                    self.release(seq);
                    continue;
                }
                finished = stopped;
            }
            if finished || slot.generated >= slot.max_tokens {
                // Text held back as a possible stop-sequence start is part of the answer
                // (after a real stop the filter holds nothing).
                let rest = slot.stops.finish();
                if !rest.is_empty() {
                    let _ = slot.job.out.send(Ok(Event::Text(rest)));
                }
                let reason = if finished {
                    FinishReason::Stop
                } else {
                    FinishReason::Length
                };
                let _ = slot.job.out.send(Ok(Event::Finish(reason)));
                let _ = slot.job.out.send(Ok(Event::Usage(Usage {
                    prompt_tokens: slot.prompt_tokens,
                    completion_tokens: slot.generated,
                })));
                // Dropping the sender ends the caller's stream: the answer is complete.
                self.release(seq);
            }
        }
    }
}

fn sampler(plan: &SamplerPlan, model: &LlamaModel) -> LlamaSampler {
    let mut chain = Vec::new();
    if let Some((repeat, freq, presence)) = plan.penalties {
        chain.push(LlamaSampler::penalties(
            model.n_vocab(),
            PENALTY_WINDOW,
            repeat,
            freq,
            presence,
        ));
    }
    match &plan.random {
        None => chain.push(LlamaSampler::greedy()),
        Some(r) => {
            // llama.cpp's own first cut: top_p alone sorts the whole vocabulary (49k tokens for
            // SmolLM2, 262k for Gemma 3) for every token of every caller.
            chain.push(LlamaSampler::top_k(TOP_K));
            chain.push(LlamaSampler::top_p(r.top_p, 1));
            chain.push(LlamaSampler::temp(r.temperature));
            chain.push(LlamaSampler::dist(r.seed));
        }
    }
    LlamaSampler::chain_simple(chain)
}
