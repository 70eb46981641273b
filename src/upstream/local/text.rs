//! Turning generated token bytes into text deltas: a token can end in the middle of a UTF-8
//! character (emoji are often split over several tokens), and a stop sequence can straddle tokens.
//! Neither half-character nor the start of a stop sequence may reach the caller.

/// Accumulates token bytes and releases only complete UTF-8 characters.
#[derive(Debug, Default)]
pub struct Utf8Assembler {
    pending: Vec<u8>,
}

impl Utf8Assembler {
    /// Adds `bytes` and returns the text now complete; an incomplete tail waits for the next call,
    /// bytes that can never be valid become U+FFFD.
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let mut out = String::new();
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(text) => {
                    out.push_str(text);
                    self.pending.clear();
                    return out;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    out.push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Incomplete character at the end: keep it for the next token.
                        None => {
                            self.pending.drain(..valid);
                            return out;
                        }
                        Some(bad) => {
                            out.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + bad);
                        }
                    }
                }
            }
        }
    }
}

/// Holds back text that might be the start of a stop sequence until it is known not to be.
#[derive(Debug, Default)]
pub struct StopFilter {
    stops: Vec<String>,
    held: String,
}

impl StopFilter {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.iter().filter(|s| !s.is_empty()).cloned().collect(),
            held: String::new(),
        }
    }

    /// Returns the text safe to send, and whether a stop sequence was reached (generation ends;
    /// the stop sequence itself is never sent).
    pub fn push(&mut self, text: &str) -> (String, bool) {
        self.held.push_str(text);
        if let Some(at) = self
            .stops
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
        {
            let out = self.held[..at].to_string();
            self.held.clear();
            return (out, true);
        }
        let keep = self.partial_stop_len();
        let split = self.held.len() - keep;
        let out = self.held[..split].to_string();
        self.held.drain(..split);
        (out, false)
    }

    /// What is still held back when generation ends for another reason.
    pub fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }

    /// Length of the longest tail of `held` that is a proper prefix of some stop sequence.
    fn partial_stop_len(&self) -> usize {
        let mut best = 0;
        for stop in &self.stops {
            for (i, _) in self.held.char_indices() {
                let tail = &self.held[i..];
                if tail.len() > best && tail.len() < stop.len() && stop.starts_with(tail) {
                    best = tail.len();
                }
            }
        }
        best
    }
}

/// How one request samples, decided from the persona's knobs before any llama.cpp object exists.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplerPlan {
    /// `None`: greedy (temperature 0 asks for the single most likely answer).
    pub random: Option<RandomSampling>,
    /// (repeat, frequency, presence) penalties over the recent window; `None` when all are
    /// neutral (1, 0, 0).
    pub penalties: Option<(f32, f32, f32)>,
    pub max_tokens: u32,
}

/// The embedded model's sampling where the persona leaves a knob unset (`[local]`): its model
/// card's, not llama.cpp's generic 0.8 / 0.95, which made SmolLM2-135M answer "What is the
/// capital of France?" right 2 times in 5 (6 in 6 at the card's 0.2 / 0.9).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Defaults {
    pub temperature: f32,
    pub top_p: f32,
    /// Over the last 64 tokens; above 1 a small model's loop ("They are. They are.") ends.
    pub repeat_penalty: f32,
}

impl Defaults {
    /// llama.cpp's own (what its `llama-cli` uses): for timing against it.
    pub const LLAMA_CPP: Defaults = Defaults {
        temperature: DEFAULT_TEMPERATURE,
        top_p: DEFAULT_TOP_P,
        repeat_penalty: 1.0,
    };
}

#[derive(Debug, Clone, PartialEq)]
pub struct RandomSampling {
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u32,
}

/// llama.cpp's own sampling (`Defaults::LLAMA_CPP`), and the answer's length where the persona
/// sets none.
const DEFAULT_TEMPERATURE: f32 = 0.8;
const DEFAULT_TOP_P: f32 = 0.95;
pub const DEFAULT_MAX_TOKENS: u32 = 512;

impl SamplerPlan {
    pub fn from_sampling(
        s: &crate::upstream::Sampling,
        defaults: &Defaults,
        random_seed: u32,
    ) -> Self {
        let temperature = s.temperature.unwrap_or(defaults.temperature);
        let random = (temperature > 0.0).then(|| RandomSampling {
            temperature,
            top_p: s.top_p.unwrap_or(defaults.top_p),
            // OpenAI's seed is an i64; llama.cpp's a u32. Keep the low bits: same seed, same answer.
            seed: s.seed.map_or(random_seed, |seed| seed as u32),
        });
        let freq = s.frequency_penalty.unwrap_or(0.0);
        let presence = s.presence_penalty.unwrap_or(0.0);
        let repeat = defaults.repeat_penalty;
        Self {
            random,
            penalties: (repeat != 1.0 || freq != 0.0 || presence != 0.0)
                .then_some((repeat, freq, presence)),
            max_tokens: s.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::Sampling;

    #[test]
    fn multibyte_characters_split_across_tokens_are_whole() {
        let text = "é中😀!";
        let bytes = text.as_bytes();
        let mut a = Utf8Assembler::default();
        let mut out = String::new();
        for b in bytes {
            let piece = a.push(std::slice::from_ref(b));
            assert!(piece.chars().all(|c| c != char::REPLACEMENT_CHARACTER));
            out.push_str(&piece);
        }
        assert_eq!(out, text);
        // The emoji's four bytes, split 1 + 3: nothing, then the whole character.
        let mut a = Utf8Assembler::default();
        assert_eq!(a.push(&"😀".as_bytes()[..1]), "");
        assert_eq!(a.push(&"😀".as_bytes()[1..]), "😀");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut a = Utf8Assembler::default();
        assert_eq!(a.push(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn stop_sequences_are_cut_and_never_sent_even_across_pieces() {
        let mut f = StopFilter::new(&["\nUser:".to_string()]);
        assert_eq!(f.push("Hello"), ("Hello".into(), false));
        assert_eq!(f.push(" there\nUs"), (" there".into(), false));
        assert_eq!(f.push("er: hi"), (String::new(), true));

        let mut f = StopFilter::new(&["###".to_string()]);
        assert_eq!(f.push("a#"), ("a".into(), false));
        assert_eq!(
            f.push("b"),
            ("#b".into(), false),
            "a false start is released"
        );
        assert_eq!(f.push("#"), (String::new(), false));
        assert_eq!(f.finish(), "#");
    }

    #[test]
    fn after_a_stop_nothing_is_held() {
        // The engine sends whatever `finish` returns whenever generation ends; after a real
        // stop that must be nothing, or text past the stop sequence would leak.
        let mut f = StopFilter::new(&["###".to_string()]);
        assert_eq!(f.push("end##"), ("end".into(), false));
        assert_eq!(f.push("# and more #"), (String::new(), true));
        assert_eq!(f.finish(), "");
    }

    #[test]
    fn sampling_plans() {
        let greedy = SamplerPlan::from_sampling(
            &Sampling {
                temperature: Some(0.0),
                ..Sampling::default()
            },
            &Defaults::LLAMA_CPP,
            7,
        );
        assert_eq!(greedy.random, None);
        assert_eq!(greedy.max_tokens, DEFAULT_MAX_TOKENS);

        let s = Sampling {
            temperature: Some(0.5),
            top_p: Some(0.9),
            seed: Some(42),
            max_tokens: Some(64),
            presence_penalty: Some(0.3),
            ..Sampling::default()
        };
        let plan = SamplerPlan::from_sampling(&s, &Defaults::LLAMA_CPP, 7);
        assert_eq!(
            plan.random,
            Some(RandomSampling {
                temperature: 0.5,
                top_p: 0.9,
                seed: 42
            })
        );
        assert_eq!(plan.penalties, Some((1.0, 0.0, 0.3)));
        assert_eq!(plan.max_tokens, 64);

        let defaults = SamplerPlan::from_sampling(&Sampling::default(), &Defaults::LLAMA_CPP, 7);
        assert_eq!(defaults.random.unwrap().seed, 7, "no seed: a random one");
        assert_eq!(defaults.penalties, None);

        let card = Defaults {
            temperature: 0.2,
            top_p: 0.9,
            repeat_penalty: 1.1,
        };
        let plan = SamplerPlan::from_sampling(&Sampling::default(), &card, 7);
        let random = plan.random.unwrap();
        assert_eq!((random.temperature, random.top_p), (0.2, 0.9));
        assert_eq!(plan.penalties, Some((1.1, 0.0, 0.0)));
        let set = Sampling {
            temperature: Some(0.7),
            ..Sampling::default()
        };
        let plan = SamplerPlan::from_sampling(&set, &card, 7);
        assert_eq!(
            plan.random.unwrap().temperature,
            0.7,
            "the persona's own wins"
        );
    }
}
