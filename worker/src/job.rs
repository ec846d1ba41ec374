//! One job, start to finish: read the raw upload from media storage (or, for a source given
//! by URL, fetch it first and store it as the raw upload: [`crate::fetch`]), make the
//! thumbnails on a blocking thread, write them to media storage, and say how it went as an
//! [`Outcome`].

use std::sync::Arc;

use bytes::Bytes;
use common::config::Config;
use common::digest::Hasher;
use common::files::raw_id;
use common::media::{MediaType, Sniffed, sniff};
use common::message::{Job, JobVariant, Made, Outcome, Source};
use common::record::VariantFailure;
use common::storage::{Key, Storage, StorageError};
use common::variant::Variant;

use crate::fetch::{FetchError, Fetcher};
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
    let (bytes, media_type, source) = match (job.media_type, &job.source_url) {
        (Some(media_type), _) => match storage.get(Key::raw(raw)).await? {
            Some(bytes) => (bytes, media_type, None),
            None => return Ok(failed(410, "the raw file is gone".to_owned())),
        },
        (None, Some(url)) => match fetch_source(Key::raw(raw), url, storage, config).await? {
            Ok(fetched) => fetched,
            Err(error) => return Ok(failed(error.code, error.message)),
        },
        (None, None) => {
            return Ok(failed(
                400,
                "the job names no media type and no source".to_owned(),
            ));
        }
    };
    let variants = if job.variants.is_empty() {
        // A job from before variants existed: the configured default.
        vec![JobVariant {
            index: 0,
            variant: Variant::default_for(&config.thumbnail),
        }]
    } else {
        job.variants.clone()
    };
    let config = Arc::clone(config);
    let made = tokio::task::spawn_blocking(move || {
        thumbnail::make(&bytes, media_type, &variants, &config.limits)
    })
    .await;
    let thumbnails = match made {
        Ok(Ok(thumbnails)) => thumbnails,
        Ok(Err(error)) => return Ok(failed(error.code(), error.to_string())),
        Err(error) => return Ok(failed(500, format!("the job's thread failed: {error}"))),
    };
    let mut results = Vec::with_capacity(thumbnails.variants.len());
    let mut first_error = None;
    for (job_variant, made) in thumbnails.variants {
        let (index, name) = (job_variant.index, job_variant.variant.name);
        match made {
            Ok(thumbnail) => {
                let key = Key::variant(job.media_id, index);
                storage.put(key, Bytes::from(thumbnail.bytes)).await?;
                results.push(Made {
                    index,
                    name,
                    info: Some(thumbnail.info),
                    error: None,
                });
            }
            Err(error) => {
                tracing::warn!(media_id = %job.media_id, variant = %name, %error, "a variant failed");
                let failure = VariantFailure {
                    code: error.code(),
                    message: error.to_string(),
                };
                first_error.get_or_insert_with(|| failure.clone());
                results.push(Made {
                    index,
                    name,
                    info: None,
                    error: Some(failure),
                });
            }
        }
    }
    if results.iter().all(|made| made.info.is_none())
        && let Some(error) = first_error
    {
        return Ok(failed(error.code, error.message));
    }
    Ok(Outcome::Completed {
        width: thumbnails.source_width,
        height: thumbnails.source_height,
        thumbnails: results,
        source,
    })
}

/// The source of a job that fetches it: already stored by an earlier attempt, or fetched now
/// and stored as the raw upload. The bytes name their media type; an error is the job's
/// failure.
async fn fetch_source(
    raw: Key,
    url: &str,
    storage: &Storage,
    config: &Config,
) -> Result<Result<(Bytes, MediaType, Option<Source>), FetchError>, StorageError> {
    let bytes = match storage.get(raw).await? {
        Some(bytes) => bytes,
        None => {
            let fetched = match Fetcher::shared(&config.sources) {
                Ok(fetcher) => fetcher.fetch(url, config.limits.max_upload_bytes).await,
                Err(error) => Err(error),
            };
            let bytes = match fetched {
                Ok(bytes) => Bytes::from(bytes),
                Err(error) => return Ok(Err(error)),
            };
            storage.put(raw, bytes.clone()).await?;
            bytes
        }
    };
    let media_type = match sniff(&bytes) {
        Sniffed::Image(media_type) => media_type,
        found => {
            return Ok(Err(FetchError {
                code: 415,
                message: format!("the source is {found}, not a supported image"),
            }));
        }
    };
    // Hashing megabytes is CPU work: off the reactor.
    let hashed = bytes.clone();
    let digests = tokio::task::spawn_blocking(move || {
        let mut hasher = Hasher::default();
        hasher.update(&hashed);
        hasher.finish()
    })
    .await
    .map_err(std::io::Error::other)?;
    let source = Source {
        media_type,
        size: bytes.len() as u64,
        md5: digests.md5,
        sha256: digests.sha256,
    };
    Ok(Ok((bytes, media_type, Some(source))))
}

fn failed(code: u16, message: String) -> Outcome {
    Outcome::Failed { code, message }
}
