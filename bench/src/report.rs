//! Percentiles, and the table the README shows.

use std::time::Duration;

use serde::Serialize;

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Nearest-rank percentile, in milliseconds.
pub fn pct(samples: &[Duration], p: f64) -> f64 {
    if samples.is_empty() {
        return f64::NAN;
    }
    let mut v: Vec<Duration> = samples.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil().max(1.0) as usize;
    ms(v[rank.min(v.len()) - 1])
}

#[derive(Debug, Serialize)]
pub struct Row {
    pub metric: String,
    pub target: String,
    pub chatapi: String,
    pub baseline: String,
    pub peer: String,
    pub met: Option<bool>,
}

pub fn markdown(machine: &str, rows: &[Row]) -> String {
    let mut out = format!("Machine: {machine}\n\n| metric | target | chatapi | mock alone / baseline | FastAPI peer | met |\n|---|---|---|---|---|---|\n");
    for r in rows {
        let met = match r.met {
            Some(true) => "yes",
            Some(false) => "**no**",
            None => "",
        };
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.metric, r.target, r.chatapi, r.baseline, r.peer, met
        ));
    }
    out
}
