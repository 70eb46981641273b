//! A ready video's timeline: its segments (with their cues) and keyframes.

use super::*;

impl Store {
    pub async fn segments(&self, id: &str) -> Result<Vec<Segment>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT start_s, end_s, transcript, on_screen_text, caption, keyframe, tokens, cues
                 FROM segments WHERE video_id = $1 ORDER BY idx",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Segment {
                        start_s: r.try_get("start_s")?,
                        end_s: r.try_get("end_s")?,
                        transcript: r.try_get("transcript")?,
                        on_screen_text: r.try_get("on_screen_text")?,
                        caption: r.try_get("caption")?,
                        keyframe: small(r.try_get("keyframe")?),
                        tokens: small(r.try_get("tokens")?),
                        // Written by this code only; a row it cannot read has no cues of its own.
                        cues: serde_json::from_str(r.try_get::<&str, _>("cues")?)
                            .unwrap_or_default(),
                    })
                })
                .collect()
        })
    }

    pub async fn keyframes(&self, id: &str) -> Result<Vec<Keyframe>, StoreError> {
        on_pool!(self, |pool| {
            let rows = sqlx::query(
                "SELECT idx, time_s, ocr_text, caption FROM keyframes WHERE video_id = $1 ORDER BY idx",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(Keyframe {
                        index: small(Some(r.try_get::<i64, _>("idx")?)).unwrap_or(0),
                        time_s: r.try_get("time_s")?,
                        ocr_text: r.try_get("ocr_text")?,
                        caption: r.try_get("caption")?,
                    })
                })
                .collect()
        })
    }
}
