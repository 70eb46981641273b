//! Sampling knobs and their ranges: one rule for a persona's config and a caller's request, so
//! the config depends on no upstream to check a persona.

/// Sampling knobs, passed through untouched; `None` leaves the upstream's own default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sampling {
    pub temperature: Option<f32>,
    pub top_p: Option<f32>,
    pub n: Option<u8>,
    pub max_tokens: Option<u32>,
    pub presence_penalty: Option<f32>,
    pub frequency_penalty: Option<f32>,
    pub stop: Option<Vec<String>>,
    pub seed: Option<i64>,
}

impl Sampling {
    /// OpenAI's ranges for each knob: `Err((field, problem))` for the first out of range. One
    /// rule for a persona's config and a caller's request alike.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        let ranges = [
            ("temperature", self.temperature, 0.0, 2.0),
            ("top_p", self.top_p, 0.0, 1.0),
            ("presence_penalty", self.presence_penalty, -2.0, 2.0),
            ("frequency_penalty", self.frequency_penalty, -2.0, 2.0),
        ];
        for (field, value, lo, hi) in ranges {
            if let Some(x) = value.filter(|x| !(lo..=hi).contains(x) || x.is_nan()) {
                return Err((field, format!("{x} is outside {lo}..={hi}")));
            }
        }
        if self.n == Some(0) {
            return Err(("n", "must be at least 1".into()));
        }
        if self.max_tokens == Some(0) {
            return Err(("max_tokens", "must be at least 1".into()));
        }
        Ok(())
    }
}
