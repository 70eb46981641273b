//! What a tenant may add before anything is read or fetched: its quotas (videos, bytes, videos
//! waiting or processing), a place among the uploads received at once, and free disk under the
//! storage folder. Checked when an upload or a link arrives, and again when an upload has
//! arrived (its real size); concurrent uploads of one tenant can pass the first check together,
//! by at most `videos.max_concurrent_uploads` videos.

use tokio::sync::OwnedSemaphorePermit;

use super::{Library, LibraryError};

#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this account has {have} videos, its limit (videos.tenant_max_videos); delete some first"
    )]
    Videos { have: u64 },
    #[error("this account's videos take {have} bytes and this one would pass its limit of {limit} bytes (videos.tenant_max_bytes); delete some first")]
    Bytes { have: u64, limit: u64 },
    #[error("this account has {have} videos waiting or being processed, its limit (videos.tenant_max_queued); try again when some are done")]
    Queued { have: u64 },
    #[error("too many uploads are arriving at once; try again shortly")]
    Busy,
    #[error("the server is short of disk space for videos; try again later")]
    DiskFull,
    #[error(transparent)]
    Library(#[from] LibraryError),
}

/// Held while an upload arrives: one of `videos.max_concurrent_uploads`.
pub struct UploadPlace {
    _permit: OwnedSemaphorePermit,
}

impl Library {
    /// Whether `tenant` may add a video of `bytes` (0: not known yet), and room on the disk.
    pub async fn admit(&self, tenant: &str, bytes: u64) -> Result<(), Refusal> {
        let c = &self.config;
        let usage = self.store.usage(tenant).await.map_err(LibraryError::from)?;
        if c.tenant_max_videos > 0 && usage.videos >= c.tenant_max_videos {
            return Err(Refusal::Videos { have: usage.videos });
        }
        if c.tenant_max_queued > 0 && usage.queued >= c.tenant_max_queued {
            return Err(Refusal::Queued { have: usage.queued });
        }
        if c.tenant_max_bytes > 0 && usage.bytes.saturating_add(bytes) > c.tenant_max_bytes {
            return Err(Refusal::Bytes {
                have: usage.bytes,
                limit: c.tenant_max_bytes,
            });
        }
        let free = free_disk(&self.dir).await;
        if free.is_some_and(|free| free < c.min_free_disk.saturating_add(bytes)) {
            tracing::warn!(
                free,
                floor = c.min_free_disk,
                "videos: refused for lack of disk"
            );
            return Err(Refusal::DiskFull);
        }
        Ok(())
    }

    /// `admit`, and a place among the uploads arriving at once, held until the upload is in.
    pub async fn admit_upload(&self, tenant: &str, bytes: u64) -> Result<UploadPlace, Refusal> {
        let place = self
            .uploads
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)?;
        self.admit(tenant, bytes).await?;
        Ok(UploadPlace { _permit: place })
    }
}

/// Bytes free to unprivileged users on the file system of `dir`; `None` if it cannot be asked.
async fn free_disk(dir: &std::path::Path) -> Option<u64> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || rustix::fs::statvfs(&dir).ok())
        .await
        .ok()
        .flatten()
        .map(|s| s.f_bavail.saturating_mul(s.f_frsize))
}
