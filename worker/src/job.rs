//! One job, start to finish: read the raw upload from media storage, make the thumbnail on a
//! blocking thread, write it to media storage, and say how it went as an [`Outcome`].

use std::sync::Arc;

use bytes::Bytes;
use common::config::Config;
use common::files::raw_id;
use common::message::{Job, Outcome};
use common::storage::{Key, Storage, StorageError};

use crate::thumbnail;

/// Processes one job.
///
/// Idempotent: processing the same job twice writes the same thumbnail to the same key.
/// Every failure of the job itself is an [`Outcome::Failed`]: deterministic failures (corrupt
/// image, too many pixels) must end the job, not send it round again. Media storage that
/// cannot be reached (after the client's own retries) is the `Err`: not the job's fault, so
/// the job goes back to the queue instead of failing.
pub async fn process(
    job: &Job,
    storage: &Storage,
    config: &Arc<Config>,
) -> Result<Outcome, StorageError> {
    let Some(raw) = raw_id(&job.raw_path) else {
        return Ok(failed(400, format!("invalid raw path {:?}", job.raw_path)));
    };
    let Some(bytes) = storage.get(Key::raw(raw)).await? else {
        return Ok(failed(410, "the raw file is gone".to_owned()));
    };
    let (media_type, config) = (job.media_type, Arc::clone(config));
    let made = tokio::task::spawn_blocking(move || {
        thumbnail::make(&bytes, media_type, &config.thumbnail, &config.limits)
    })
    .await;
    let thumbnail = match made {
        Ok(Ok(thumbnail)) => thumbnail,
        Ok(Err(error)) => return Ok(failed(error.code(), error.to_string())),
        Err(error) => return Ok(failed(500, format!("the job's thread failed: {error}"))),
    };
    storage
        .put(Key::thumbnail(job.media_id), Bytes::from(thumbnail.bytes))
        .await?;
    Ok(Outcome::Completed {
        width: thumbnail.source_width,
        height: thumbnail.source_height,
        thumbnail: thumbnail.info,
    })
}

fn failed(code: u16, message: String) -> Outcome {
    Outcome::Failed { code, message }
}
