//! The worker pool: each worker claims the oldest job in the store's queue, runs the pipeline
//! on it while renewing its lease, and records the end (`ready` or `failed`) in the same
//! transaction that removes the job. A job whose worker died (a crash, a killed process) is
//! claimed again once its lease runs out; after `MAX_ATTEMPTS` starts it fails instead of
//! taking a server down with it in a loop.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::store::Claimed;
use super::{pipeline, JobError, Library};

const MAX_ATTEMPTS: i64 = 3;

pub async fn work(library: Arc<Library>) {
    let lease = library.config.job_lease;
    loop {
        if library.stop.is_cancelled() {
            break;
        }
        match library.store.claim(&library.worker_id, lease).await {
            Ok(Some(job)) => run(&library, job).await,
            Ok(None) => {
                // Woken by a new video; or, now and then, to look for jobs whose worker died.
                tokio::select! {
                    () = library.wake.notified() => {}
                    () = tokio::time::sleep(lease / 3) => {}
                    () = library.stop.cancelled() => break,
                }
            }
            Err(error) => {
                tracing::error!(%error, "video job queue: could not claim a job");
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = library.stop.cancelled() => break,
                }
            }
        }
    }
    if let Err(error) = library.store.release_all(&library.worker_id).await {
        tracing::warn!(%error, "video job queue: jobs not handed back; they resume when their lease runs out");
    }
}

async fn run(library: &Library, job: Claimed) {
    let id = job.video_id;
    let cancel = library.stop.child_token();
    library.running().insert(id.clone(), cancel.clone());
    let renewing = renew(library, &id, &cancel);
    let started = std::time::Instant::now();
    let result = if job.attempts > MAX_ATTEMPTS {
        Err(JobError::Failed(format!(
            "processing was interrupted {MAX_ATTEMPTS} times (the server stopped or crashed while working on this video); upload it again"
        )))
    } else {
        tokio::select! {
            r = pipeline::process(library, &id, &cancel) => r,
            () = renewing => Err(JobError::Cancelled),
        }
    };
    library.running().remove(&id);
    let elapsed = started.elapsed();
    let outcome = match result {
        Ok(done) => {
            match library
                .store
                .finish_ready(
                    &id,
                    &library.worker_id,
                    &done.steps,
                    &done.keyframes,
                    &done.segments,
                    &done.vectors,
                )
                .await
            {
                Ok(true) => {
                    if let Ok(Some(video)) = library.store.get(&id).await {
                        let indexed: Vec<(u32, Vec<f32>)> = done
                            .vectors
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (i as u32, v))
                            .collect();
                        library.vectors.add(&id, &video.tenant, &indexed);
                    }
                    Ok("ready")
                }
                Ok(false) => Ok("deleted"),
                Err(e) => Err(e),
            }
        }
        Err(JobError::Cancelled) => Ok(if library.stop.is_cancelled() {
            "stopped"
        } else {
            "deleted"
        }),
        Err(error) => {
            let sentence = match &error {
                JobError::Failed(why) => why.clone(),
                JobError::Internal(_) | JobError::Store(_) => {
                    tracing::error!(video = %id, %error, "video processing failed on the server's side");
                    "the server failed while processing this video; try again, and tell its operator if it keeps failing".to_string()
                }
                other => other.to_string(),
            };
            // Nothing half-made stays: the row says why, the files go.
            let _ = super::remove_dir(&library.video_dir(&id)).await;
            match library
                .store
                .finish_failed(&id, &library.worker_id, &sentence)
                .await
            {
                Ok(_) => Ok("failed"),
                Err(e) => Err(e),
            }
        }
    };
    match outcome {
        Ok("deleted") => {
            // Only when the row is gone: a lease lost another way means another worker holds
            // the job now, and the files are its.
            if matches!(library.store.get(&id).await, Ok(None)) {
                let _ = super::remove_dir(&library.video_dir(&id)).await;
            }
            tracing::info!(video = %id, "video deleted while processing; its job stopped");
        }
        Ok(outcome) => {
            tracing::info!(video = %id, outcome, seconds = elapsed.as_secs_f64(), "video processed");
            if let Ok(Some(video)) = library.store.get(&id).await {
                super::callback::notify(&video, library.config.allow_private_urls);
            }
        }
        Err(error) => {
            tracing::error!(video = %id, %error, "video job: could not record the result; it runs again after its lease")
        }
    }
}

/// Renews the job's lease until the job ends; finishes (so the job is cancelled) when the lease
/// is lost: the video was deleted, possibly by another process.
async fn renew(library: &Library, id: &str, cancel: &CancellationToken) {
    let every = library.config.job_lease / 3;
    loop {
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = cancel.cancelled() => return std::future::pending().await,
        }
        match library
            .store
            .renew(id, &library.worker_id, library.config.job_lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => tracing::warn!(video = %id, %error, "video job: lease not renewed"),
        }
    }
}
