//! One job, start to finish: read the raw upload from media storage (or, for a source given
//! by URL, fetch it first, in a fetch slot, and store it as the raw upload: [`crate::fetch`]),
//! make the thumbnails in a decode slot on a blocking thread (for a video, from the poster
//! frame [`crate::video`] takes), write them to media storage, and say how it went as an
//! [`Outcome`], or why it should be tried again ([`Interrupted`]).

use std::sync::Arc;

use bytes::Bytes;
use common::config::Config;
use common::digest::file_digests;
use common::files::DataDir;
use common::files::raw_id;
use common::media::{MediaType, SNIFF_BYTES};
use common::message::{Job, JobVariant, Made, Outcome, Source};
use common::record::{VariantFailure, VideoInfo};
use common::spool::Spool;
use common::storage::{Key, Storage, StorageError};
use common::variant::Variant;

use crate::decode::Decoded;
use crate::error::ThumbnailError;
use crate::fetch::{FetchError, Fetcher, media_type_of};
use crate::slots::{FetchSlot, Slots};
use crate::thumbnail::{self, Thumbnails};
use crate::{document, video};

/// Why a job goes back to the queue instead of ending: nothing said about the file.
#[derive(Debug, thiserror::Error)]
pub enum Interrupted {
    /// Media storage cannot be reached (after the client's own retries).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A tool ran out of time; the failure to record once no try is left.
    #[error("{}", .0.message)]
    TimedOut(VariantFailure),
}

/// Processes one job: its fetch (if it has a source) in `fetching`, the slot the runner took
/// for it, then its decode in one of `slots`' decode slots.
///
/// Idempotent: processing the same job twice writes the same thumbnail to the same key.
/// Every failure of the job itself is an [`Outcome::Failed`]: deterministic failures (corrupt
/// image, too many pixels) must end the job, not send it round again. What may be no fault
/// of the job (media storage out of reach, a tool out of time) is the `Err`, and the job is
/// tried again.
pub async fn process(
    job: &Job,
    storage: &Storage,
    config: &Arc<Config>,
    slots: &Slots,
    fetching: Option<FetchSlot>,
) -> Result<Outcome, Interrupted> {
    let Some(raw) = raw_id(&job.raw_path) else {
        return Ok(failed(400, format!("invalid raw path {:?}", job.raw_path)));
    };
    let key = Key::raw(raw);
    let (media_type, source) = match (job.media_type, &job.source_url) {
        (Some(media_type), _) => (media_type, None),
        (None, Some(url)) => match fetch_source(key, url, storage, config, fetching).await? {
            Ok(source) => (source.media_type, Some(source)),
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
    let decoding = slots.decode().await;
    let made = if media_type.is_video() {
        video(key, media_type, variants, storage, config).await?
    } else if media_type.is_document() {
        document(key, media_type, variants, storage, config).await?
    } else {
        image(key, media_type, variants, storage, config).await?
    };
    drop(decoding);
    let (thumbnails, probed) = match made {
        Ok(made) => made,
        Err(failure) => return Ok(failed(failure.status, failure.message)),
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
                let failure = VariantFailure::new(error.code(), error.to_string());
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
        return Ok(failed(error.status, error.message));
    }
    let (duration, video) = match probed {
        Some((duration, info)) => (duration, Some(info)),
        None => (None, None),
    };
    Ok(Outcome::Completed {
        width: thumbnails.source_width,
        height: thumbnails.source_height,
        thumbnails: results,
        source,
        duration,
        video,
        placeholder: thumbnails.placeholder.map(Box::new),
        warnings: thumbnails.warnings,
    })
}

/// A video's length and picture stream, as the probe found them.
type Probed = Option<(Option<f64>, VideoInfo)>;

/// The thumbnails made, or why the job failed.
type Making = Result<(Thumbnails, Probed), VariantFailure>;

/// Makes the thumbnails of the image stored as `key`, on a blocking thread.
async fn image(
    key: Key,
    media_type: MediaType,
    variants: Vec<JobVariant>,
    storage: &Storage,
    config: &Arc<Config>,
) -> Result<Making, StorageError> {
    let Some(bytes) = storage.get(key).await? else {
        return Ok(Err(failure(410, "the raw file is gone".to_owned())));
    };
    let config = Arc::clone(config);
    let made = tokio::task::spawn_blocking(move || {
        thumbnail::make(
            &bytes,
            media_type,
            &variants,
            &config.limits,
            &config.thumbnail.placeholders,
        )
    })
    .await;
    Ok(settle(made).map(|thumbnails| (thumbnails, None)))
}

/// Makes the thumbnails of the video stored as `key`: FFmpeg reads it and gives its poster
/// frame and facts, and its preview's frames when a variant is `animated`
/// ([`through_tool`]).
async fn video(
    key: Key,
    media_type: MediaType,
    variants: Vec<JobVariant>,
    storage: &Storage,
    config: &Arc<Config>,
) -> Result<Making, Interrupted> {
    let animated: Vec<Variant> = variants
        .iter()
        .filter(|v| v.variant.animated)
        .map(|v| v.variant.clone())
        .collect();
    let animated = &animated;
    through_tool(
        key,
        media_type,
        variants,
        storage,
        config,
        |path| async move {
            let poster = video::poster(&path, media_type, config).await?;
            let preview = if animated.is_empty() {
                None
            } else {
                let preview =
                    video::preview::preview(&path, media_type, config, &poster, animated).await?;
                Some(preview)
            };
            Ok(Read {
                picture: poster.frame,
                preview,
                probed: Some((poster.duration, poster.info)),
            })
        },
    )
    .await
}

/// Makes the thumbnails of the document (SVG, PDF) stored as `key`: a child process draws
/// it at the largest variant's size ([`document`], [`through_tool`]), each variant planned
/// as `enlarge`.
async fn document(
    key: Key,
    media_type: MediaType,
    variants: Vec<JobVariant>,
    storage: &Storage,
    config: &Arc<Config>,
) -> Result<Making, Interrupted> {
    let requests = document::enlarged(variants.iter().map(|v| v.variant.clone()));
    let variants = variants
        .into_iter()
        .zip(requests.iter().cloned())
        .map(|(job_variant, variant)| JobVariant {
            variant,
            ..job_variant
        })
        .collect();
    through_tool(
        key,
        media_type,
        variants,
        storage,
        config,
        |path| async move {
            let drawn = document::render(&path, media_type, &requests, config).await?;
            Ok(Read {
                picture: drawn,
                preview: None,
                probed: None,
            })
        },
    )
    .await
}

/// What a tool read of a file: the picture, a video's preview, a video's facts.
struct Read {
    picture: Decoded,
    preview: Option<video::preview::Preview>,
    probed: Probed,
}

/// Makes the thumbnails of the file stored as `key` from what a tool (FFmpeg, the document
/// renderer) reads of it as a local file (a copy, when media storage is S3): `read` gives
/// the picture, a video's preview and facts; they are resized and encoded on a blocking
/// thread. A tool out of time is [`Interrupted::TimedOut`].
async fn through_tool<F, Fut>(
    key: Key,
    media_type: MediaType,
    variants: Vec<JobVariant>,
    storage: &Storage,
    config: &Arc<Config>,
    read: F,
) -> Result<Making, Interrupted>
where
    F: FnOnce(std::path::PathBuf) -> Fut,
    Fut: Future<Output = Result<Read, ThumbnailError>>,
{
    let spool_dir = spool_dir(config).await?;
    let Some(file) = storage.local(key, &spool_dir).await? else {
        return Ok(Err(failure(410, "the raw file is gone".to_owned())));
    };
    let Read {
        picture,
        preview,
        probed,
    } = match read(file.path().to_path_buf()).await {
        Ok(read) => read,
        Err(error @ ThumbnailError::TimedOut(_)) => {
            return Err(Interrupted::TimedOut(failure(
                error.code(),
                error.to_string(),
            )));
        }
        Err(error) => return Ok(Err(failure(error.code(), error.to_string()))),
    };
    drop(file);
    let config = Arc::clone(config);
    let made = tokio::task::spawn_blocking(move || {
        thumbnail::make_from(
            picture,
            preview,
            media_type,
            &variants,
            &config.limits,
            &config.thumbnail.placeholders,
        )
    })
    .await;
    Ok(settle(made).map(|thumbnails| (thumbnails, probed)))
}

/// The pipeline's answer from its blocking thread, with its failure as the job's.
fn settle(
    made: Result<Result<Thumbnails, ThumbnailError>, tokio::task::JoinError>,
) -> Result<Thumbnails, VariantFailure> {
    match made {
        Ok(Ok(thumbnails)) => Ok(thumbnails),
        Ok(Err(error)) => Err(failure(error.code(), error.to_string())),
        Err(error) => Err(failure(500, format!("the job's thread failed: {error}"))),
    }
}

/// This process's spool directory under the data directory (for local copies of objects).
async fn spool_dir(config: &Config) -> Result<std::path::PathBuf, StorageError> {
    let spool = Spool::new(&DataDir::new(&config.data_dir));
    Ok(tokio::task::spawn_blocking(move || spool.dir())
        .await
        .map_err(std::io::Error::other)??)
}

/// The host a source's fetch counts against (as written; empty for a URL that does not
/// parse, which its fetch refuses).
pub fn source_host(url: &str) -> String {
    url::Url::parse(url)
        .ok()
        .and_then(|url| url.host_str().map(str::to_owned))
        .unwrap_or_default()
}

/// The source of a job that fetches it: already stored by an earlier attempt, or fetched now
/// in its fetch slot (spooled, within the size limit of what it is: [`Fetcher::fetch`]) and
/// stored as the raw upload. An error is the job's failure.
async fn fetch_source(
    raw: Key,
    url: &str,
    storage: &Storage,
    config: &Config,
    fetching: Option<FetchSlot>,
) -> Result<Result<Source, FetchError>, StorageError> {
    let data = DataDir::new(&config.data_dir);
    if let Some(stored) = storage.local(raw, &spool_dir(config).await?).await? {
        // Hashing what may be a long video is CPU and disk work: off the reactor.
        let path = stored.path().to_owned();
        let (digests, size, head) =
            tokio::task::spawn_blocking(move || file_digests(&path, SNIFF_BYTES))
                .await
                .map_err(std::io::Error::other)??;
        let media_type = match media_type_of(&head) {
            Ok(media_type) => media_type,
            Err(error) => return Ok(Err(error)),
        };
        return Ok(Ok(Source {
            media_type,
            size,
            md5: digests.md5,
            sha256: digests.sha256,
        }));
    }
    let fetched = match Fetcher::shared(&config.sources) {
        Ok(fetcher) => fetcher.fetch(url, &Spool::new(&data), &config.limits).await,
        Err(error) => Err(error),
    };
    drop(fetching);
    let fetched = match fetched {
        Ok(fetched) => fetched,
        Err(error) => return Ok(Err(error)),
    };
    let spooled = fetched.spooled;
    let source = Source {
        media_type: fetched.media_type,
        size: spooled.size,
        md5: spooled.digests.md5.clone(),
        sha256: spooled.digests.sha256.clone(),
    };
    storage.put_file(raw, spooled.file).await?;
    Ok(Ok(source))
}

fn failure(code: u16, message: String) -> VariantFailure {
    VariantFailure::new(code, message)
}

fn failed(code: u16, message: String) -> Outcome {
    Outcome::Failed { code, message }
}
